/**
 * Two sessions on one directory. Before the lock, a second sync (another connection, or a
 * `tributary write`) into a directory a sync was writing cut the first one's unacknowledged
 * lines back on open, and each recorded committed lengths counting the other's bytes: both
 * ended `completed`, the file held every record twice and the manifest half the file, and the
 * next sync cut a line in half and could not open the directory any more. Now the second
 * session is refused while the first one's process runs, and the lock is free once that
 * process is gone, SIGKILL included.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runCli } from '@tributary/conformance';

const holderScript = join(dirname(fileURLToPath(import.meta.url)), 'support', 'probe4-lock-holder.ts');
const CONTACTS = 50;

let workDir = '';
let holder: ChildProcess | undefined;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tributary-probe4-lock-'));
});
afterEach(async () => {
  if (holder && holder.exitCode === null && holder.signalCode === null) {
    holder.kill('SIGKILL');
    await once(holder, 'exit');
  }
  holder = undefined;
  await rm(workDir, { recursive: true, force: true });
});

/** Starts the holder on `<workDir>/out`; resolves once its session is open and has appended uncommitted lines. */
async function startHolder(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', holderScript, join(workDir, 'out')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) if (line.includes('"open":true')) break;
  return child;
}

async function jsonLines(relative: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(workDir, 'out', relative), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

it('a sync into a directory another process has a session on is refused (exit 2), and runs once that process was SIGKILLed', async () => {
  await writeFile(
    join(workDir, 'contacts.yaml'),
    JSON.stringify({
      connection: 'contacts',
      source: { connector: 'sample', config: { seed: 3, tenants: 1, counts: { companies: 5, contacts: CONTACTS, deals: 5, activities: 5 } } },
      destination: { connector: 'local', config: { directory: './out' } },
      streams: [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
    }),
  );
  holder = await startHolder();

  const refused = await runCli(['sync', 'contacts.yaml', '--json'], workDir);
  expect(refused.code, refused.stdout + refused.stderr).toBe(2);
  expect(refused.stdout + refused.stderr).toContain('is being written by another process');
  expect(await jsonLines('contacts.jsonl')).toEqual([]);
  // The holder's uncommitted lines were left alone.
  expect((await jsonLines('notes.jsonl')).map((r) => r.id)).toEqual([1, 2]);

  holder.kill('SIGKILL');
  await once(holder, 'exit');
  const after = await runCli(['sync', 'contacts.yaml', '--json'], workDir);
  expect(after.code, after.stdout + after.stderr).toBe(0);
  const ids = (await jsonLines('contacts.jsonl')).map((r) => r.id);
  expect(ids).toHaveLength(CONTACTS);
  expect(new Set(ids).size).toBe(CONTACTS);
});
