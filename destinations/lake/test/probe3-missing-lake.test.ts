import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { lakeDestination } from '../src/index.js';
import { openLakeReader, queryLake } from '../src/reader.js';
import { clickStream, runCli, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-missing-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

/** Writes `<name>.json`, a lake config whose `path` is `lakePath` (relative to `root`, where the CLI runs). */
async function lakeConfigFile(name: string, lakePath: string): Promise<string> {
  await writeFile(join(root, `${name}.json`), JSON.stringify({ path: lakePath }));
  return `${name}.json`;
}

const COMMANDS = [['query', 'select 1 AS x'], ['status'], ['as-of', '--stream', 'clicks'], ['compact'], ['retention', '--keep-days', '1']];

it('every lake command refuses a local path that does not exist (exit code 2), instead of answering as an empty lake', async () => {
  const config = await lakeConfigFile('typo', './lakee');
  for (const args of COMMANDS) {
    const result = await runCli(['lake', ...args, '--config', config], root);
    expect([result.code, result.stdout], args.join(' ')).toEqual([2, '']);
    expect(result.stderr, args.join(' ')).toMatch(/No lake at .*lakee: the directory does not exist; check `path`/);
  }
  // Nor did any of them create it.
  await expect(stat(join(root, 'lakee'))).rejects.toMatchObject({ code: 'ENOENT' });
  await expect(queryLake({ path: join(root, 'lakee') }, 'select 1')).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/No lake at/) });
});

it('a directory no sync has written to is refused, and compaction leaves its data/ alone', async () => {
  // Not a lake, but it holds a Hive-partitioned data set under data/ (another tool's export,
  // two hours old): compaction took its file for an orphan of a crashed commit and deleted it.
  const notLake = join(root, 'project');
  const partition = join(notLake, 'data', 'events', 'tenant_id=a');
  await mkdir(partition, { recursive: true });
  await writeFile(join(partition, 'part-0.parquet'), 'not the lake\'s');
  const old = new Date(Date.now() - 2 * 3_600_000);
  await utimes(join(partition, 'part-0.parquet'), old, old);
  const config = await lakeConfigFile('project', './project');
  for (const args of [['compact'], ['query', 'select 1 AS x'], ['status']]) {
    const result = await runCli(['lake', ...args, '--config', config], root);
    expect(result.code, args.join(' ')).toBe(2);
    expect(result.stderr, args.join(' ')).toMatch(/No lake at .*project: the directory has no _tributary\/ \(no sync has written to it\)/);
  }
  expect(await readdir(partition)).toEqual(['part-0.parquet']);
  expect(await readdir(notLake)).toEqual(['data']);
});

it('a sync into a new directory creates the lake, and a lake opened but not yet committed to reads as empty', async () => {
  // Opened by a session that committed nothing (it created _tributary/ on opening): an empty lake, not a mistyped path.
  const fresh = { path: join(root, 'fresh', 'lake') };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, fresh), [clickStream()]);
  await session.close({ completed: false });
  const config = await lakeConfigFile('fresh', './fresh/lake');
  const status = await runCli(['lake', 'status', '--config', config], root);
  expect([status.code, status.stderr]).toEqual([0, '']);
  expect(status.stdout).toMatch(/at commit 0\n\(no rows\)/);
  const empty = await runCli(['lake', 'query', 'select 1 AS x', '--config', config, '--format', 'jsonl'], root);
  expect([empty.code, empty.stdout]).toEqual([0, '{"x":1}\n']);

  // Then a sync's rows, into the same directory.
  expect(await writeSession(fresh, clickStream(), [[{ id: 1, tenant_id: 't', customer_id: 'c', event_time: '2024-01-01T00:00:00Z' }]])).toEqual([]);
  const count = await runCli(['lake', 'query', 'select count(*) AS n from clicks', '--config', config, '--format', 'jsonl'], root);
  expect([count.code, count.stdout]).toEqual([0, '{"n":1}\n']);
  for (const args of [['compact'], ['retention', '--keep-days', '1']]) expect((await runCli(['lake', ...args, '--config', config], root)).code, args.join(' ')).toBe(0);

  // A sync into a directory that does not exist yet creates it (the writer is not refused).
  const created = { path: join(root, 'created', 'deep', 'lake') };
  expect(await writeSession(created, clickStream(), [[{ id: 2, tenant_id: 't', customer_id: 'c', event_time: '2024-01-02T00:00:00Z' }]])).toEqual([]);
  const reader = await openLakeReader(created);
  try {
    expect(await reader.query('select id from clicks')).toEqual([{ id: 2 }]);
  } finally {
    await reader.close();
  }
});
