import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, type RecordData } from '@tributary/core';
import { applyRetention, lakeConfigSchema, loadLakeState, openStore, queryLake, readStreamRows } from '../src/index.js';
import { clickStream, duckQuery, runCli, writeSession } from './helpers.js';

// A sync that crashed after its commit is replayed by its resume, which drops the records it
// already stored by event id (and quarantined records by their identity): only the files of
// the sessions since the stream's last completed sync are read for that. Retention between
// the crash and the resume must not remove those files, or the resume writes the expired
// rows again. It leaves them (reported as deferred) until the stream's sync completed.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-rr-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = clickStream();
const click = (id: number, day: string): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: `${day}T10:00:00Z` });
const old = [click(1, '2024-01-01'), click(2, '2024-01-02'), { id: 'bad', tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }];
const cutoff = '2024-06-01T00:00:00Z';

it('retention between a crash after the commit and the resume: the expired rows do not come back, nothing newer is lost', async () => {
  const config = { path: join(root, 'lake') };
  // The crashed sync: committed, never completed (as a SIGKILL after the commit leaves it).
  await writeSession(config, stream, [old], false);
  const retentionAt = Date.now();
  const first = await applyRetention(config, { before: cutoff, graceMs: 0 });
  // The resume replays the same records, then new ones, and completes.
  const rejected = await writeSession(config, stream, [old, [click(3, '2024-07-01')]]);
  expect(rejected).toHaveLength(1);
  const ids = async (): Promise<number[]> => (await readStreamRows(config, { stream: 'clicks' })).map((r) => Number(r.payload.id)).sort();
  expect(await ids()).toEqual([1, 2, 3]);
  // Rows 1 and 2 are the crashed sync's (stored before the retention ran), not written again by the resume.
  const rewritten = (await readStreamRows(config, { stream: 'clicks' })).filter((r) => Number(r.payload.id) < 3 && Date.parse(String(r.ingest_time)) >= retentionAt);
  expect(rewritten.map((r) => r.payload.id)).toEqual([]);
  expect(first).toMatchObject({ filesRemoved: 0, filesDeferred: 2, rowsDeferred: 2 });
  // The bad record was reported again, not stored twice.
  expect(await queryLake(config, 'SELECT count(*)::INT AS n FROM quarantine')).toEqual([{ n: 1 }]);

  // The stream completed: a later run removes the expired rows; the newer one stays.
  const second = await applyRetention(config, { before: cutoff, graceMs: 0 });
  expect(second).toMatchObject({ filesRemoved: 2, rowsRemoved: 2, filesDeferred: 0 });
  expect(await ids()).toEqual([3]);
});

it('retention between a crash and the resume keeps the crashed sync\'s quarantine files: a replayed bad record is not stored twice', async () => {
  const config = { path: join(root, 'quarantine') };
  const refused = { id: 'bad', tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' };
  await writeSession(config, stream, [[refused]], false);
  // Every record quarantined so far is before this cutoff.
  const now = Date.now() + 1;
  await new Promise((r) => setTimeout(r, 5));
  const first = await applyRetention(config, { before: now, graceMs: 0 });
  expect(await writeSession(config, stream, [[refused]])).toHaveLength(1);
  expect(await queryLake(config, 'SELECT count(*)::INT AS n FROM quarantine')).toEqual([{ n: 1 }]);
  expect(first).toMatchObject({ quarantineFilesRemoved: 0, quarantineFilesDeferred: 1 });
  // Completed: a later run removes it.
  expect(await applyRetention(config, { before: now, graceMs: 0 })).toMatchObject({ quarantineFilesRemoved: 1, quarantineFilesDeferred: 0 });
});

it('through the CLI: a sync SIGKILLed right after its commit, retention, then the resume adds no expired row (DuckDB counts the files)', async () => {
  const dir = join(root, 'cli');
  const sync = join(root, 'cli.json');
  await writeFile(
    sync,
    JSON.stringify({
      connection: 'probe3-retention-replay',
      source: { connector: 'sample', config: { seed: 5, tenants: 2, counts: { companies: 0, contacts: 3_000, deals: 0, activities: 0 }, checkpoint_every: 1_000, page_size: 500 } },
      destination: { connector: join(__dirname, 'fixtures', 'lake-killer.mjs'), config: { path: join(dir, 'lake') } },
      streams: [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_records: 500, commit_interval_ms: 5 },
    }),
  );
  await writeFile(join(root, 'cli-lake.json'), JSON.stringify({ path: join(dir, 'lake') }));
  // Killed right after its first commit, before the runtime stored any checkpoint: every row
  // it committed comes again in the resume, whatever the commits' timing (after a later
  // commit, the checkpoint stored before it could cover them all).
  const killed = await runCli(['sync', sync, '--json'], root, { LAKE_KILL_AFTER_COMMITS: '1' });
  expect(killed.code, killed.stderr).toBeNull();
  const lake = { path: join(dir, 'lake') };
  const store = openStore(parseConfig(lakeConfigSchema, lake));
  const committed = [...(await loadLakeState(store).finally(() => store.close())).files.values()];
  expect(committed.length).toBeGreaterThan(0);
  // Every row the crashed sync committed is older than the cutoff.
  const cutoffMs = Math.max(...committed.map((f) => f.maxEventTime)) + 1;
  const retention = await runCli(['lake', 'retention', '--before', new Date(cutoffMs).toISOString(), '--grace-ms', '0', '--config', 'cli-lake.json'], root);
  expect(retention.code, retention.stderr).toBe(0);

  const rerun = await runCli(['sync', sync, '--json'], root);
  expect(rerun.code, rerun.stderr).toBe(0);
  // The resume found the crashed sync's rows and dropped their replay (retention had not removed them).
  const skipped = Number(/(\d+) replayed row\(s\) already in the lake skipped/.exec(rerun.stdout)?.[1] ?? '0');
  expect(skipped).toBeGreaterThan(0);
  const visible = async (): Promise<Array<{ path: string; maxEventTime: number }>> => {
    const s = openStore(parseConfig(lakeConfigSchema, lake));
    return [...(await loadLakeState(s).finally(() => s.close())).files.values()];
  };
  // Every contact once: the rows the crashed sync committed stayed, and their replay was dropped.
  const paths = (await visible()).map((f) => `'${join(dir, 'lake', f.path)}'`);
  expect((await duckQuery(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet([${paths.join(', ')}], union_by_name = true)`))[0]).toEqual({ n: 3_000, ids: 3_000 });
  expect(JSON.parse(retention.stdout)).toMatchObject({ filesRemoved: 0, filesDeferred: committed.length });
  // The sync completed: retention now removes the expired files.
  const after = await runCli(['lake', 'retention', '--before', new Date(cutoffMs).toISOString(), '--grace-ms', '0', '--config', 'cli-lake.json'], root);
  expect(after.code, after.stderr).toBe(0);
  expect(JSON.parse(after.stdout)).toMatchObject({ filesDeferred: 0 });
  expect(JSON.parse(after.stdout).filesRemoved).toBeGreaterThan(0);
  expect((await visible()).filter((f) => f.maxEventTime < cutoffMs)).toEqual([]);
}, 120_000);
