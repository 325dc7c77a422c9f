/**
 * Directory entries and the commit log of a local lake. A file's fsync does not make its
 * directory entry durable, nor does fsyncing a directory make that directory's own entry in
 * its parent durable: after a power loss, a partition directory created for a commit (and
 * the data file renamed into it) can be gone although the log entry, made durable after it,
 * names the file; a lake whose `_tributary/log/` entry is lost loses its whole log. So every
 * directory the lake creates must have its parent fsynced before the log entry that needs it.
 *
 * A power loss cannot be simulated here. What is checked is the order of the real system
 * calls a session makes on a fresh lake directory, traced with `strace` in a child process
 * (no fs mocking); the case is skipped where `strace` cannot run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { duckQuery, repoRoot } from './helpers.js';
import { parseStraceCalls, straceRuns } from '@tributary/conformance';


/** Opens a session on the missing lake directory argv[1], writes two tenants' days and a refused record, commits, closes as completed. */
const child = `
import { createConnectorContext, parseConfig } from '@tributary/core';
import { lakeDestination } from '@tributary/destination-lake';
const path = process.argv[1];
const stream = { key: 'clicks', name: 'clicks', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: [], resuming: false,
  jsonSchema: { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, event_time: { type: 'string', format: 'date-time' } } } };
const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, { path }), [stream]);
await session.write({ stream: 'clicks', emittedAt: 0, records: [
  { id: 1, tenant_id: 't1', customer_id: 'c', event_time: '2024-01-01T00:00:00Z' },
  { id: 2, tenant_id: 't2', customer_id: 'c', event_time: '2024-01-02T00:00:00Z' },
  { id: 3, customer_id: 'c', event_time: '2024-01-02T00:00:00Z' },
] });
await session.commit();
await session.close({ completed: true });
`;

let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tributary-lake-fsync-'));
});
afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

it.skipIf(!straceRuns())('every directory and file a commit creates in a fresh lake is durable in its parent before the log entry naming it', async () => {
  const lake = join(workDir, 'lake');
  const trace = join(workDir, 'trace.txt');
  const run = spawnSync(
    'strace',
    ['-f', '-y', '-qq', '-o', trace, '-e', 'trace=mkdir,mkdirat,fsync,fdatasync,rename,renameat,renameat2,link,linkat', process.execPath, '--conditions=tributary-source', '--import', 'tsx', '--input-type=module', '-e', child, lake],
    { encoding: 'utf8', timeout: 60_000, cwd: repoRoot },
  );
  expect(run.status, run.stderr).toBe(0);

  // The session's own temp dir (inside the lake, to publish by rename) need not survive a crash.
  const scratch = join(lake, '_tributary', 'tmp');
  const counts = (path: string): boolean => (path === lake || path.startsWith(lake + '/')) && path !== scratch && !path.startsWith(scratch + '/');
  const logDir = join(lake, '_tributary', 'log');
  /** Directories whose entries changed and are not yet fsynced, with what changed them. */
  const unsynced = new Map<string, string[]>();
  const changed = (directory: string, change: string): void => void unsynced.set(directory, [...(unsynced.get(directory) ?? []), change]);
  const late: string[] = [];
  const created: string[] = [];
  let entries = 0;
  for (const call of parseStraceCalls(await readFile(trace, 'utf8'))) {
    if (!call.ok) continue;
    if (call.name === 'fsync' || call.name === 'fdatasync') {
      unsynced.delete(call.paths[0]!);
      continue;
    }
    const target = call.name.startsWith('mkdir') ? call.paths[0] : call.paths[1];
    if (target === undefined || !counts(target)) continue;
    if (call.name.startsWith('link') && dirname(target) === logDir) {
      // The log entry: everything it relies on must be durable by now (its own directory is fsynced right after).
      entries++;
      for (const [directory, changes] of unsynced) for (const change of changes) late.push(`${change}: ${directory} not fsynced before log entry ${entries}`);
      unsynced.clear();
      changed(logDir, `log entry ${entries}`);
      continue;
    }
    if (call.name.startsWith('mkdir')) created.push(target);
    changed(dirname(target), `${call.name.startsWith('mkdir') ? 'creating' : 'placing'} ${target}`);
  }
  for (const [directory, changes] of unsynced) for (const change of changes) late.push(`${change}: ${directory} never fsynced`);

  // What the session is known to do, so the check above cannot pass vacuously.
  expect(entries).toBe(2); // the append, then the completion
  for (const path of ['', '_tributary', '_tributary/log', 'data/clicks/tenant_id=t1/event_date=2024-01-01', 'data/clicks/tenant_id=t2/event_date=2024-01-02', '_quarantine/clicks']) {
    expect(created).toContain(join(lake, path));
  }
  expect(late).toEqual([]);
  // And the lake holds what the session committed.
  expect(await duckQuery(`SELECT tenant_id, count(*) AS n FROM read_parquet('${lake}/data/clicks/*/*/*.parquet') GROUP BY 1 ORDER BY 1`)).toEqual([
    { tenant_id: 't1', n: 1 },
    { tenant_id: 't2', n: 1 },
  ]);
});
