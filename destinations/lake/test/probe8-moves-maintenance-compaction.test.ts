/**
 * The deletes the lake synthesizes for CDC updates that move a row (key-moves.ts: to another
 * primary key, or under REPLICA IDENTITY FULL to another tenant) against the maintenance and
 * replay machinery: compaction merging files that hold a move's delete and update (a tenant
 * move puts them in two tenants' partitions), a crash after the commit whose files a
 * compaction merged before the resume replays the batch (locally and on S3 with moto), and
 * retention cutting between the old rows and the move. Point-in-time answers (by entity key
 * and by customer id, before, at and after the moves), the TOAST fill and the stored rows
 * must come out as they were, with no old key or tenant coming back.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { applyRetention, compactLake, queryLake, readLatestAsOf } from '../src/index.js';
import { cdcFields, duckQuery, keyedStream, motoLakeConfig, runCli, startMoto, writeSession, type MotoServer } from './helpers.js';

let root: string;
let moto: MotoServer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-moves-maintenance-'));
  moto = await startMoto();
});
afterAll(async () => {
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});

const stream = keyedStream('items', { v: { type: 'integer' }, tenant_id: { type: ['string', 'null'] }, big: { type: ['string', 'null'] }, ...cdcFields, _tributary_txid: { type: 'integer' } });
const big4 = 'x'.repeat(10_000);
const big5 = 'y'.repeat(5000);

/** A row as REPLICA IDENTITY FULL sends it in `_tributary_before` (whole, TOASTed `big` included when given). */
const row = (id: number, v: number, tenant: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id, v, tenant_id: tenant, customer_id: `c${Math.min(id % 10, id)}`, ...extra });
const snapshot = (fields: Record<string, unknown>): RecordData => ({ ...fields, _tributary_op: 'r', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z' });
/** An update that left the TOASTed `big` out. */
const moved = (fields: Record<string, unknown>, before: Record<string, unknown>, position: string, time: string, txid: number): RecordData => ({
  ...fields,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  _tributary_txid: txid,
  _tributary_before: before,
  _tributary_unchanged: ['big'],
});

const snapshots = [snapshot(row(4, 4, 'acme', { big: big4 })), snapshot(row(5, 5, 'acme', { big: big5 }))];
/** Three transactions, each its own sync batch: 4 moves to tenant beta (FULL), then to key 33 (DEFAULT: the old key alone); 5 moves to key 55 and tenant beta at once (FULL). */
const moves: RecordData[][] = [
  [moved(row(4, 40, 'beta'), row(4, 4, 'acme', { big: big4 }), '0/3', '2026-01-03T01:00:00Z', 701)],
  [moved(row(33, 41, 'beta'), { id: 4 }, '0/4', '2026-01-03T02:00:00Z', 702)],
  [moved(row(55, 50, 'beta'), row(5, 5, 'acme', { big: big5 }), '0/5', '2026-01-03T03:00:00Z', 703)],
];

const AS_OF = ['2026-01-02T00:00:00Z', '2026-01-03T01:00:00Z', '2026-01-03T01:30:00Z', '2026-01-03T02:00:00Z', '2026-01-03T03:00:00Z', '2026-01-04T00:00:00Z'];

/** Point-in-time answers at each of AS_OF, by entity key and by customer id: [tenant, key, customer, v, big's length, unchanged_fields]. */
async function answers(config: Record<string, unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const asOf of AS_OF) {
    for (const key of ['entity_key', 'customer_id'] as const) {
      const rows = await readLatestAsOf(config, { stream: 'items', asOf, key });
      out.push([asOf, key, rows.map((r) => [r.tenant_id, r.entity_key, r.customer_id, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : r.payload.big, r.unchanged_fields])]);
    }
  }
  return out;
}

const EXPECTED = [
  ['2026-01-02T00:00:00Z', 'entity_key', [['acme', '4', 'c4', 4, 10_000, null], ['acme', '5', 'c5', 5, 5000, null]]],
  ['2026-01-02T00:00:00Z', 'customer_id', [['acme', '4', 'c4', 4, 10_000, null], ['acme', '5', 'c5', 5, 5000, null]]],
  // At the tenant move's own time: 4 is in beta only.
  ['2026-01-03T01:00:00Z', 'entity_key', [['acme', '5', 'c5', 5, 5000, null], ['beta', '4', 'c4', 40, 10_000, null]]],
  ['2026-01-03T01:00:00Z', 'customer_id', [['acme', '5', 'c5', 5, 5000, null], ['beta', '4', 'c4', 40, 10_000, null]]],
  ['2026-01-03T01:30:00Z', 'entity_key', [['acme', '5', 'c5', 5, 5000, null], ['beta', '4', 'c4', 40, 10_000, null]]],
  ['2026-01-03T01:30:00Z', 'customer_id', [['acme', '5', 'c5', 5, 5000, null], ['beta', '4', 'c4', 40, 10_000, null]]],
  ['2026-01-03T02:00:00Z', 'entity_key', [['acme', '5', 'c5', 5, 5000, null], ['beta', '33', 'c3', 41, 10_000, null]]],
  ['2026-01-03T02:00:00Z', 'customer_id', [['acme', '5', 'c5', 5, 5000, null], ['beta', '33', 'c3', 41, 10_000, null]]],
  ['2026-01-03T03:00:00Z', 'entity_key', [['beta', '33', 'c3', 41, 10_000, null], ['beta', '55', 'c5', 50, 5000, null]]],
  ['2026-01-03T03:00:00Z', 'customer_id', [['beta', '33', 'c3', 41, 10_000, null], ['beta', '55', 'c5', 50, 5000, null]]],
  ['2026-01-04T00:00:00Z', 'entity_key', [['beta', '33', 'c3', 41, 10_000, null], ['beta', '55', 'c5', 50, 5000, null]]],
  ['2026-01-04T00:00:00Z', 'customer_id', [['beta', '33', 'c3', 41, 10_000, null], ['beta', '55', 'c5', 50, 5000, null]]],
];

const STORED = `SELECT tenant_id, entity_key, op, source_position, event_id, length(big) AS big, CAST(ingest_time AS VARCHAR) AS ingest FROM events ORDER BY source_position, tenant_id, entity_key`;

it('compaction over files holding moves’ deletes and updates (two tenants’ partitions) keeps every point-in-time answer and the TOAST fill', async () => {
  const config = { path: join(root, 'compact') };
  // One sync per transaction: each partition gets one file per sync.
  for (const batch of [snapshots, ...moves]) expect(await writeSession(config, stream, [batch])).toEqual([]);
  expect(await answers(config)).toEqual(EXPECTED);
  const stored = await queryLake(config, STORED);
  expect(stored.map((r) => [r.tenant_id, r.entity_key, r.op, r.source_position])).toEqual([
    ['acme', '4', 'snapshot', '0/1'],
    ['acme', '5', 'snapshot', '0/1'],
    ['acme', '4', 'delete', '0/3'],
    ['beta', '4', 'update', '0/3'],
    ['beta', '33', 'update', '0/4'],
    ['beta', '4', 'delete', '0/4'],
    ['acme', '5', 'delete', '0/5'],
    ['beta', '55', 'update', '0/5'],
  ]);
  const compacted = await compactLake(config, { minFiles: 2 });
  // acme's 2026-01-03 (two deletes) and beta's (three syncs' rows) are merged; nothing is a duplicate.
  expect(compacted).toMatchObject({ partitions: 2, filesBefore: 5, filesAfter: 2, duplicatesDropped: 0 });
  expect(await queryLake(config, STORED)).toEqual(stored);
  expect(await answers(config)).toEqual(EXPECTED);
  // An independent DuckDB over the Parquet files: per (tenant, key), the latest row.
  const files = join(config.path, 'data', 'items', '**', '*.parquet').replaceAll("'", "''");
  expect(
    await duckQuery(
      `SELECT tenant_id, entity_key, op FROM read_parquet('${files}', hive_partitioning = false) ` +
        `QUALIFY row_number() OVER (PARTITION BY tenant_id, entity_key ORDER BY event_time DESC, _tributary_ingest_seq DESC) = 1 ORDER BY tenant_id, entity_key`,
    ),
  ).toEqual([
    { tenant_id: 'acme', entity_key: '4', op: 'delete' },
    { tenant_id: 'acme', entity_key: '5', op: 'delete' },
    { tenant_id: 'beta', entity_key: '33', op: 'update' },
    { tenant_id: 'beta', entity_key: '4', op: 'delete' },
    { tenant_id: 'beta', entity_key: '55', op: 'update' },
  ]);
});

/**
 * The moves committed by syncs that crashed after their commits, a compaction merging those
 * files (among themselves: their syncs may be replayed), then the resume replaying every
 * move: each synthesized delete and filled update is recognised in the merged files.
 */
async function crashCompactReplay(config: Record<string, unknown>): Promise<void> {
  expect(await writeSession(config, stream, [snapshots])).toEqual([]);
  for (const batch of moves) expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  const stored = await queryLake(config, STORED);
  expect(stored).toHaveLength(8);
  expect(await compactLake(config, { minFiles: 2 })).toMatchObject({ partitions: 2, filesAfter: 2, duplicatesDropped: 0 });
  expect(await writeSession(config, stream, moves)).toEqual([]);
  // No row stored again (same ingest times: the crashed syncs' copies), none lost.
  expect(await queryLake(config, STORED)).toEqual(stored);
  expect(await answers(config)).toEqual(EXPECTED);
}

it('a crash after the commits, a compaction merging the crashed syncs’ files, the replay: no duplicate, nothing lost (local)', async () => {
  await crashCompactReplay({ path: join(root, 'replay') });
});

it('a crash after the commits, a compaction merging the crashed syncs’ files, the replay: no duplicate, nothing lost (S3, moto)', async () => {
  await moto.createBucket('moves-replay');
  await crashCompactReplay(motoLakeConfig(moto.endpoint, 'moves-replay'));
});

it('retention cutting between the old rows and the moves (row-exact, in a compacted file): no old key or tenant comes back, the moved rows keep their filled fields', async () => {
  // One partition per tenant: compaction merges acme's snapshots with its deletes, and retention rewrites that file.
  const config = { path: join(root, 'retention'), partitioning: 'tenant' };
  for (const batch of [snapshots, ...moves]) expect(await writeSession(config, stream, [batch])).toEqual([]);
  expect(await compactLake(config, { minFiles: 2 })).toMatchObject({ partitions: 2, duplicatesDropped: 0 });
  const result = await applyRetention(config, { before: '2026-01-02T00:00:00Z', graceMs: 0 });
  expect(result).toMatchObject({ filesRewritten: 1, rowsRemoved: 2, filesDeferred: 0 });
  // The snapshots expired: as of before the moves nothing is left; from the moves on, only the moved rows, filled.
  const after = (await answers(config)) as Array<[string, string, unknown[]]>;
  expect(after).toEqual(EXPECTED.map(([asOf, key, rows]) => [asOf, key, (rows as unknown[][]).filter((r) => r[0] === 'beta')]));
  expect((await queryLake(config, `SELECT tenant_id, entity_key, op FROM events ORDER BY source_position, tenant_id, entity_key`)).map((r) => `${r.tenant_id}/${r.entity_key}/${r.op}`)).toEqual([
    'acme/4/delete',
    'beta/4/update',
    'beta/33/update',
    'beta/4/delete',
    'acme/5/delete',
    'beta/55/update',
  ]);
  // With the deletes kept, even reads that include deleted keys show the old keys and tenant ended.
  expect((await readLatestAsOf(config, { stream: 'items', includeDeleted: true })).map((r) => `${r.tenant_id}/${r.entity_key}/${r.op}`)).toEqual(['acme/4/delete', 'acme/5/delete', 'beta/33/update', 'beta/4/delete', 'beta/55/update']);
});

it('`tributary lake query` over the events view shows each move’s synthesized delete beside its update', async () => {
  const dir = join(root, 'cli');
  const config = { path: join(dir, 'lake') };
  for (const batch of [snapshots, ...moves]) expect(await writeSession(config, stream, [batch])).toEqual([]);
  await writeFile(join(dir, 'lake.json'), JSON.stringify(config));
  const sql =
    `SELECT source_position, list(tenant_id || '/' || entity_key || '/' || op ORDER BY _tributary_ingest_seq) AS rows, count(DISTINCT event_id) AS ids ` +
    `FROM events WHERE source_position > '0/1' GROUP BY source_position ORDER BY source_position`;
  const out = await runCli(['lake', 'query', sql, '--config', 'lake.json', '--format', 'jsonl'], dir);
  expect([out.code, out.stderr]).toEqual([0, '']);
  expect(out.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown)).toEqual([
    { source_position: '0/3', rows: ['acme/4/delete', 'beta/4/update'], ids: 2 },
    { source_position: '0/4', rows: ['beta/4/delete', 'beta/33/update'], ids: 2 },
    { source_position: '0/5', rows: ['acme/5/delete', 'beta/55/update'], ids: 2 },
  ]);
});

it('the read-time walk across moves (the old rows also left the field out) finds the value after compaction merged the moves’ files', async () => {
  const config = { path: join(root, 'walk') };
  const update = (fields: Record<string, unknown>, before: Record<string, unknown> | undefined, position: string, time: string): RecordData => ({
    ...fields,
    _tributary_op: 'u',
    _tributary_position: position,
    _tributary_commit_time: time,
    ...(before !== undefined ? { _tributary_before: before } : {}),
    _tributary_unchanged: ['big'],
  });
  // One sync per change: each old row is in the lake when the next is written, and lists `big` itself.
  for (const record of [
    snapshot(row(4, 4, 'acme', { big: big4 })),
    update(row(4, 40, 'acme'), undefined, '0/2', '2026-01-03T01:00:00Z'),
    update(row(4, 41, 'beta'), row(4, 40, 'acme'), '0/3', '2026-01-03T02:00:00Z'),
    update(row(33, 42, 'beta'), { id: 4 }, '0/4', '2026-01-03T03:00:00Z'),
  ]) {
    expect(await writeSession(config, stream, [[record]])).toEqual([]);
  }
  const read = async (): Promise<unknown[]> => {
    const out: unknown[] = [];
    for (const asOf of ['2026-01-03T02:30:00Z', '2026-01-04T00:00:00Z']) {
      for (const key of ['entity_key', 'customer_id'] as const) {
        out.push((await readLatestAsOf(config, { stream: 'items', asOf, key })).map((r) => [r.tenant_id, r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : r.payload.big]));
      }
    }
    return out;
  };
  const expected = [[['beta', '4', 41, 10_000]], [['beta', '4', 41, 10_000]], [['beta', '33', 42, 10_000]], [['beta', '33', 42, 10_000]]];
  expect(await read()).toEqual(expected);
  expect(await compactLake(config, { minFiles: 2 })).toMatchObject({ partitions: 2, duplicatesDropped: 0 });
  expect(await read()).toEqual(expected);
});
