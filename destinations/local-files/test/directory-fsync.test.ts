/**
 * Directory entries and the commit protocol. A file's fsync does not make its directory
 * entry durable: after a power loss a new file (committed bytes and all) or a rename can be
 * gone although the manifest, fsynced later, names it. So every entry the destination
 * creates or renames must have its directory fsynced before the next manifest write.
 *
 * A power loss cannot be simulated here. What is checked is the order of the real system
 * calls a session makes, traced with `strace` in a child process (no fs mocking); the case
 * is skipped where `strace` cannot run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { parseStraceCalls, straceRuns } from '@tributary/conformance';

const runner = join(dirname(fileURLToPath(import.meta.url)), 'support', 'fresh-directory-session.ts');

let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tributary-local-fsync-'));
});
afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

it.skipIf(!straceRuns())('every file, directory and rename a session makes is fsynced in its directory before the next manifest write', async () => {
  const out = join(workDir, 'out');
  const trace = join(workDir, 'trace.txt');
  const child = spawnSync(
    'strace',
    ['-f', '-y', '-qq', '-o', trace, '-e', 'trace=openat,mkdir,mkdirat,fsync,rename,renameat,renameat2', process.execPath, '--conditions=tributary-source', '--import', 'tsx', runner, out],
    { encoding: 'utf8', timeout: 60_000 },
  );
  expect(child.status, child.stderr).toBe(0);

  const manifest = join(out, '_tributary', 'manifest.json');
  const inOut = (path: string): boolean => path === out || path.startsWith(out + '/');
  const isManifestTemp = (path: string): boolean => dirname(path) === join(out, '_tributary') && path.endsWith('.tmp');
  /** Directories whose entries changed and are not yet fsynced, with what changed them. */
  const unsynced = new Map<string, string[]>();
  const changed = (directory: string, change: string): void => void unsynced.set(directory, [...(unsynced.get(directory) ?? []), change]);
  const created = new Set<string>();
  const late: string[] = [];
  let manifestWrites = 0;
  for (const call of parseStraceCalls(await readFile(trace, 'utf8'))) {
    const [path, to] = call.paths as [string | undefined, string | undefined];
    if (!call.ok || path === undefined) continue;
    if (call.name === 'fsync') unsynced.delete(path);
    else if (!inOut(path)) continue;
    else if (call.name.startsWith('mkdir') || (call.name === 'openat' && call.creates && !created.has(path) && !isManifestTemp(path))) {
      created.add(path);
      changed(dirname(path), `creating ${path}`);
    } else if (call.name.startsWith('rename') && to === manifest) {
      // The manifest write (core's writeFileAtomic fsyncs its own rename).
      manifestWrites++;
      for (const [directory, changes] of unsynced) for (const change of changes) late.push(`${change}: ${directory} not fsynced before manifest write ${manifestWrites}`);
      unsynced.clear();
    } else if (call.name.startsWith('rename') && to !== undefined) {
      changed(dirname(path), `renaming ${path} to ${to}`);
      if (dirname(to) !== dirname(path)) changed(dirname(to), `renaming ${path} to ${to}`);
    }
  }
  for (const [directory, changes] of unsynced) for (const change of changes) late.push(`${change}: ${directory} never fsynced`);

  // What the session is known to do, so the check above cannot pass vacuously.
  expect([...created].sort()).toEqual(
    [out, join(out, '_tributary'), join(out, '_quarantine'), join(out, '_staging'), join(out, 'people.jsonl'), join(out, '_quarantine', 'people.jsonl'), join(out, '_staging', 'companies.jsonl'), join(out, '_quarantine', 'companies.jsonl')].sort(),
  );
  expect(manifestWrites).toBeGreaterThanOrEqual(2); // the new files' lengths, the commit, then the close's
  expect(late).toEqual([]);
  // And the files hold what the session committed.
  expect(await readFile(join(out, 'people.jsonl'), 'utf8')).toBe('{"id":1}\n');
  expect(await readFile(join(out, 'companies.jsonl'), 'utf8')).toBe('{"id":7}\n');
});
