import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, type RecordData } from '@tributary/core';
import { applyRetention, compactLake, lakeConfigSchema, loadLakeState, openStore, readStreamRows, type LakeFile, type LakeStore } from '../src/index.js';
import { retireExpired } from '../src/maintenance.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// Retention dropped whole files only (every event before the cutoff): a file holding rows on
// both sides of the cutoff stayed whole, so rows older than the cutoff stayed visible — with
// `partitioning: tenant` or `tenant_month` (a file spans many days), after compaction merged a
// day's files, or with a cutoff inside a day. Such a file is now rewritten without the expired
// rows, in the retention's log entry.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe7-rr-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

// `amount` is a BIGINT column: the rewrite must keep its type.
const stream = keyedStream('orders', { amount: { type: 'integer' }, at: { type: 'string', format: 'date-time' } });
const order = (id: number, at: string, tenant = 't1'): RecordData => ({ id, tenant_id: tenant, customer_id: `c${id}`, amount: 4_000_000_000_000 + id, at });
const lakeConfig = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ path: join(root, name), streams: { orders: { event_time_field: 'at' } }, ...extra });

/** The files the log names (optionally of one tenant). */
async function visibleFiles(config: Record<string, unknown>, tenant?: string): Promise<LakeFile[]> {
  const store = openStore(parseConfig(lakeConfigSchema, config));
  try {
    return [...(await loadLakeState(store)).files.values()].filter((f) => tenant === undefined || f.tenant === tenant);
  } finally {
    store.close();
  }
}

/** The independent reader: DuckDB over exactly the files the log names, every column as text. */
async function duckRows(config: Record<string, unknown>, tenant?: string): Promise<Record<string, unknown>[]> {
  const files = (await visibleFiles(config, tenant)).map((f) => `'${join(String(config.path), f.path)}'`);
  if (files.length === 0) return [];
  return duckQuery(`SELECT COLUMNS(*)::VARCHAR FROM read_parquet([${files.join(', ')}], union_by_name = true, hive_partitioning = false) ORDER BY id::BIGINT, ingest_time`);
}

/** Column names and types of the files the log names (per distinct schema). */
async function duckSchema(config: Record<string, unknown>): Promise<string[]> {
  const files = await visibleFiles(config);
  const schemas = new Set<string>();
  for (const f of files) {
    const columns = await duckQuery(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${join(String(config.path), f.path)}', hive_partitioning = false))`);
    schemas.add(JSON.stringify(columns));
  }
  return [...schemas];
}

const days = ['2024-01-01T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-03T10:00:00Z', '2024-01-04T10:00:00Z', '2024-01-05T10:00:00Z'];
const cutoff = '2024-01-03T00:00:00Z';
const cutoffMs = Date.parse(cutoff);

it.each(['tenant', 'tenant_month'])('partitioning %s: no row before the cutoff stays visible; every later row stays once, every column unchanged', async (partitioning) => {
  const config = lakeConfig(`by-${partitioning}`, { partitioning });
  await writeSession(config, stream, [days.map((at, i) => order(i + 1, at))]);
  expect(await visibleFiles(config)).toHaveLength(1);
  const before = await duckRows(config);
  const schema = await duckSchema(config);
  expect(schema[0]).toContain('"column_name":"amount","column_type":"BIGINT"');
  const [source] = await visibleFiles(config);

  const result = await applyRetention(config, { before: cutoff, graceMs: 0 });
  expect((await readStreamRows(config, { stream: 'orders' })).map((r) => Number(r.payload.id)).sort()).toEqual([3, 4, 5]);
  expect(result).toMatchObject({ filesRemoved: 0, filesRewritten: 1, rowsRemoved: 2, filesDeferred: 0 });
  const after = await duckRows(config);
  expect(after.filter((r) => Date.parse(`${String(r.event_time)}Z`) < cutoffMs)).toEqual([]);
  // Every later row exactly once, every column as it was (envelope, `_tributary_ingest_seq`, payload).
  expect(after).toEqual(before.filter((r) => Number(r.id) >= 3));
  expect(await duckSchema(config)).toEqual(schema);
  const [rewrite] = await visibleFiles(config);
  expect(rewrite).toMatchObject({ stream: 'orders', tenant: 't1', partition: source!.partition, rows: 3, schemaVersion: source!.schemaVersion, sessions: source!.sessions, minEventTime: Date.parse(days[2]!) });
  expect(rewrite!.path.slice(0, rewrite!.path.lastIndexOf('/'))).toBe(source!.path.slice(0, source!.path.lastIndexOf('/')));
  expect(rewrite!.path).not.toBe(source!.path);
});

it('default partitioning, a cutoff inside a day that a compaction merged into one file', async () => {
  const config = lakeConfig('compacted');
  const hours = ['01', '05', '09', '13', '17', '21'];
  for (const [i, hour] of hours.entries()) await writeSession(config, stream, [[order(i + 1, `2024-02-01T${hour}:00:00Z`)]]);
  expect(await compactLake(config, { minFiles: 2, graceMs: 0 })).toMatchObject({ partitions: 1, filesAfter: 1 });
  expect(await visibleFiles(config)).toHaveLength(1);
  const before = await duckRows(config);

  const result = await applyRetention(config, { before: '2024-02-01T12:00:00Z', graceMs: 0 });
  expect((await readStreamRows(config, { stream: 'orders' })).map((r) => Number(r.payload.id)).sort()).toEqual([4, 5, 6]);
  expect(result).toMatchObject({ filesRewritten: 1, rowsRemoved: 3 });
  expect(await duckRows(config)).toEqual(before.filter((r) => Number(r.id) >= 4));
});

it('a cutoff inside the last millisecond: the rows before it go, to the microsecond', async () => {
  const config = lakeConfig('micros', { partitioning: 'tenant' });
  await writeSession(config, stream, [[order(1, '2024-01-01T00:00:00.000700Z'), order(2, '2024-01-01T00:00:00.000900Z'), order(3, '2023-12-31T00:00:00Z')]]);
  const result = await applyRetention(config, { before: '2024-01-01T00:00:00.000800Z', graceMs: 0 });
  expect((await readStreamRows(config, { stream: 'orders' })).map((r) => Number(r.payload.id))).toEqual([2]);
  expect(result).toMatchObject({ filesRewritten: 1, rowsRemoved: 2 });
});

it('--tenant: only that tenant\'s straddling file is rewritten; another tenant\'s stays as it was', async () => {
  const config = lakeConfig('tenants', { partitioning: 'tenant' });
  await writeSession(config, stream, [[...days.map((at, i) => order(i + 1, at, 't1')), ...days.map((at, i) => order(i + 11, at, 't2'))]]);
  const t2Before = await visibleFiles(config, 't2');
  const t2Rows = await duckRows(config, 't2');

  const result = await applyRetention(config, { before: cutoff, tenant: 't1', graceMs: 0 });
  expect((await readStreamRows(config, { stream: 'orders', tenant: 't1' })).map((r) => Number(r.payload.id)).sort()).toEqual([3, 4, 5]);
  expect(result).toMatchObject({ filesRewritten: 1, rowsRemoved: 2 });
  expect(await visibleFiles(config, 't2')).toEqual(t2Before);
  expect(await duckRows(config, 't2')).toEqual(t2Rows);
  expect((await readStreamRows(config, { stream: 'orders', tenant: 't2' })).map((r) => Number(r.payload.id)).sort((a, b) => a - b)).toEqual([11, 12, 13, 14, 15]);
});

it('a straddling file of a sync that may still be replayed is deferred, and rewritten once the sync completed', async () => {
  const config = lakeConfig('replay', { partitioning: 'tenant' });
  // Committed, never completed: a crash after the commit.
  await writeSession(config, stream, [days.map((at, i) => order(i + 1, at))], false);
  const files = await visibleFiles(config);

  const first = await applyRetention(config, { before: cutoff, graceMs: 0 });
  expect(first).toMatchObject({ filesRewritten: 0, rowsRemoved: 0, filesDeferred: 1, rowsDeferred: 2 });
  expect(await visibleFiles(config)).toEqual(files);

  // The resume replays the same records (dropped as replays) and completes.
  await writeSession(config, stream, [days.map((at, i) => order(i + 1, at))]);
  expect(await visibleFiles(config)).toEqual(files);
  const second = await applyRetention(config, { before: cutoff, graceMs: 0 });
  expect(second).toMatchObject({ filesRewritten: 1, rowsRemoved: 2, filesDeferred: 0 });
  expect((await readStreamRows(config, { stream: 'orders' })).map((r) => Number(r.payload.id)).sort()).toEqual([3, 4, 5]);
});

it('the replaced file stays in storage for the grace period, named by a trash record', async () => {
  const config = lakeConfig('grace', { partitioning: 'tenant' });
  await writeSession(config, stream, [days.map((at, i) => order(i + 1, at))]);
  const [source] = await visibleFiles(config);
  expect(await applyRetention(config, { before: cutoff })).toMatchObject({ filesRewritten: 1 });
  await stat(join(String(config.path), source!.path));
  const trash = await readdir(join(String(config.path), '_tributary', 'trash'));
  expect(trash).toHaveLength(1);
  // Past the grace period, the next run deletes it.
  expect(await applyRetention(config, { before: cutoff, graceMs: 0 })).toMatchObject({ filesDeleted: 1, filesRewritten: 0 });
  await expect(stat(join(String(config.path), source!.path))).rejects.toThrow();
});

it('retention that loses the commit race to a compaction merging the straddling file rewrites the merged file', async () => {
  const config = lakeConfig('race');
  // A merged file straddling the cutoff (01:00, 05:00, 13:00), then three single-row files (09:00 is wholly expired).
  for (const [i, hour] of ['01', '05', '13'].entries()) await writeSession(config, stream, [[order(i + 1, `2024-02-01T${hour}:00:00Z`)]]);
  expect(await compactLake(config, { minFiles: 2, graceMs: 0 })).toMatchObject({ partitions: 1 });
  for (const [i, hour] of ['09', '17', '21'].entries()) await writeSession(config, stream, [[order(i + 4, `2024-02-01T${hour}:00:00Z`)]]);
  // Retention reads the log with the straddling file; before its entry, a compaction merges it with the rest.
  const parsed = parseConfig(lakeConfigSchema, config);
  const store = openStore(parsed);
  try {
    let compacted = false;
    const racing: LakeStore = {
      ...store,
      async createIfAbsent(key, body) {
        if (!compacted) {
          compacted = true;
          expect(await compactLake(config, { minFiles: 2, graceMs: 0 })).toMatchObject({ partitions: 1 });
        }
        return store.createIfAbsent(key, body);
      },
    };
    const result = await retireExpired(racing, Date.parse('2024-02-01T12:00:00Z'), { graceMs: 0 });
    expect(compacted).toBe(true);
    expect((await readStreamRows(config, { stream: 'orders' })).map((r) => Number(r.payload.id)).sort()).toEqual([3, 5, 6]);
    expect((await duckRows(config)).map((r) => Number(r.id))).toEqual([3, 5, 6]);
    expect(result).toMatchObject({ rowsRemoved: 3 });
  } finally {
    store.close();
  }
});
