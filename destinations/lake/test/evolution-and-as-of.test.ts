import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { lakeConfigSchema, lakeDestination, loadLakeState, openStore, queryLake, readLatestAsOf, readStreamRows } from '../src/index.js';
import { duckQuery } from './helpers.js';

// Schema widening of inferred and narrowed number columns, point-in-time reads at ties and
// by customer, and the `events` view over streams typed apart: checked against the Parquet
// files DuckDB reads.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-widen-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const schema = (extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, amount: { type: ['integer', 'null'] }, ...extra },
});

async function sync(config: Record<string, unknown>, jsonSchema: Record<string, unknown>, batches: RecordData[][], extra: Partial<DestinationStream> = {}) {
  const stream: DestinationStream = { key: 'orders', name: 'orders', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: [], jsonSchema, resuming: false, ...extra };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  const rejected = [];
  for (const records of batches) rejected.push(...((await session.write({ stream: 'orders', records, emittedAt: Date.now() }))?.rejected ?? []));
  await session.commit();
  await session.close({ completed: true });
  return rejected;
}

async function registry(path: string) {
  return JSON.parse(await readFile(join(path, '_tributary', 'schemas', 'orders.json'), 'utf8')) as { versions: Array<{ version: number; change: string; columns: Array<{ field: string; column: string; type: string }> }> };
}

async function parquetFiles(path: string): Promise<string[]> {
  const store = openStore(parseConfig(lakeConfigSchema, { path }));
  try {
    return [...(await loadLakeState(store)).files.values()].map((f) => join(path, f.path));
  } finally {
    store.close();
  }
}

it('a field the stream schema does not declare, first seen with integers, widens to number when a fraction comes (not quarantined)', async () => {
  const config = { path: join(root, 'inferred') };
  const row = (id: number, price: number): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', amount: 1, price });
  // The fraction in the same batch as the first integer, and in a later batch.
  expect(await sync(config, schema(), [[row(1, 10), row(2, 10.5)], [row(3, 7), row(4, 0.25)]])).toEqual([]);
  // And in a later session, whose registry already says integer.
  expect(await sync(config, schema(), [[row(5, 3), row(6, 2.75)]])).toEqual([]);
  const rows = await readStreamRows(config, { stream: 'orders' });
  expect(rows.map((r) => [r.payload.id, r.payload.price]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([[1, 10], [2, 10.5], [3, 7], [4, 0.25], [5, 3], [6, 2.75]]);
  const versions = (await registry(config.path)).versions;
  expect(versions.map((v) => v.change)).toEqual(['initial schema', 'added price (integer)', 'widened price integer → number']);
  expect(versions[2]!.columns.find((c) => c.field === 'price')).toEqual({ field: 'price', column: 'price', type: 'number' });
  // Rows staged before the widening keep their version; every file reads back with DuckDB.
  const files = await parquetFiles(config.path);
  const stored = await duckQuery(`SELECT id, price, schema_version FROM read_parquet([${files.map((f) => `'${f}'`).join(', ')}], union_by_name = true) ORDER BY id`);
  expect(stored).toEqual([
    { id: 1, price: 10, schema_version: 2 },
    { id: 2, price: 10.5, schema_version: 3 },
    { id: 3, price: 7, schema_version: 3 },
    { id: 4, price: 0.25, schema_version: 3 },
    { id: 5, price: 3, schema_version: 3 },
    { id: 6, price: 2.75, schema_version: 3 },
  ]);
  // A declared integer field still refuses a fraction (validation off: the stage checks it).
  const declared = await sync({ ...config, validate_records: false }, schema(), [[{ id: 7, tenant_id: 't1', customer_id: 'c1', amount: 1.5 }]]);
  expect(declared).toEqual([{ index: 0, reason: 'field "amount": expected an integer, got number 1.5' }]);
});

it('a field the stream schema does not declare, seen only as null, gets no column yet: its type comes from its first value or a later stream schema (not a breaking change)', async () => {
  const config = { path: join(root, 'null-first') };
  const row = (id: number, extra: Record<string, unknown>): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', amount: 1, ...extra });
  // Sync 1: `score` and `label` arrive as null only; `label` gets a value in a later batch.
  expect(await sync(config, schema(), [[row(1, { score: null, label: null })], [row(2, { score: null, label: 'gold' })]])).toEqual([]);
  // Sync 2: the stream schema now declares `score` an integer.
  expect(await sync(config, schema({ score: { type: ['integer', 'null'] } }), [[row(3, { score: 7 })]])).toEqual([]);
  const versions = (await registry(config.path)).versions;
  expect(versions.map((v) => v.change)).toEqual(['initial schema', 'added label (string)', 'added score (integer)']);
  const rows = await readStreamRows(config, { stream: 'orders' });
  expect(rows.map((r) => [r.payload.id, r.payload.score ?? null, r.payload.label ?? null]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
    [1, null, null],
    [2, null, 'gold'],
    [3, 7, null],
  ]);
  const files = await parquetFiles(config.path);
  expect(await duckQuery(`SELECT id, score, label FROM read_parquet([${files.map((f) => `'${f}'`).join(', ')}], union_by_name = true) ORDER BY id`)).toEqual([
    { id: 1, score: null, label: null },
    { id: 2, score: null, label: 'gold' },
    { id: 3, score: 7, label: null },
  ]);
});

it('a stream schema that narrows a widened number back to integer is accepted: the number column stays, no new version', async () => {
  const config = { path: join(root, 'narrowed') };
  await sync(config, schema(), [[{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1 }]]);
  await sync(config, schema({ amount: { type: ['number', 'null'] } }), [[{ id: 2, tenant_id: 't1', customer_id: 'c1', amount: 1.5 }]]);
  // A schema inferred from sampled values says integer again.
  await sync(config, schema(), [[{ id: 3, tenant_id: 't1', customer_id: 'c1', amount: 3 }]]);
  await sync({ ...config, on_breaking_change: 'new_column' }, schema(), [[{ id: 4, tenant_id: 't1', customer_id: 'c1', amount: 4 }]]);
  expect((await registry(config.path)).versions.map((v) => v.change)).toEqual(['initial schema', 'widened amount integer → number']);
  const files = await parquetFiles(config.path);
  expect(await duckQuery(`SELECT id, amount, schema_version FROM read_parquet([${files.map((f) => `'${f}'`).join(', ')}], union_by_name = true) ORDER BY id`)).toEqual([
    { id: 1, amount: 1, schema_version: 1 },
    { id: 2, amount: 1.5, schema_version: 2 },
    { id: 3, amount: 3, schema_version: 2 },
    { id: 4, amount: 4, schema_version: 2 },
  ]);
  expect((await readLatestAsOf(config, { stream: 'orders' })).map((r) => r.payload.amount)).toEqual([1, 1.5, 3, 4]);
});

it('as-of at one event time: numeric cursor positions order by value (10 after 9), not as text', async () => {
  const config = { path: join(root, 'numeric-position') };
  const at = '2024-01-01T00:00:00Z';
  const row = (version: number, amount: number): RecordData => ({ id: 1, tenant_id: 't1', customer_id: 'c1', amount, version, event_time: at });
  await sync(config, schema({ event_time: { type: 'string' }, version: { type: 'integer' } }), [[row(9, 90), row(10, 100)], [row(2, 20)]], { cursorField: ['version'] });
  expect(await duckQuery(`SELECT source_position, event_time::VARCHAR AS t FROM read_parquet([${(await parquetFiles(config.path)).map((f) => `'${f}'`).join(', ')}]) ORDER BY amount`)).toEqual([
    { source_position: '2', t: '2024-01-01 00:00:00' },
    { source_position: '9', t: '2024-01-01 00:00:00' },
    { source_position: '10', t: '2024-01-01 00:00:00' },
  ]);
  const latest = await readLatestAsOf(config, { stream: 'orders', asOf: at });
  expect(latest.map((r) => [r.source_position, r.payload.amount])).toEqual([['10', 100]]);
});

it('as-of by customer_id fills a TOASTed column from the same entity’s earlier row, not from another entity of that customer', async () => {
  const config = { path: join(root, 'toast-customer') };
  const cdc = (id: number, op: string, lsn: string, time: string, extra: Record<string, unknown>): RecordData => ({ tenant_id: 't1', customer_id: 'c1', id, _tributary_op: op, _tributary_position: lsn, _tributary_commit_time: time, ...extra });
  await sync(config, schema({ notes: { type: ['string', 'null'] } }), [
    [
      cdc(1, 'c', '0/10', '2024-01-01T00:00:00Z', { amount: 1, notes: 'order 1 notes' }),
      cdc(2, 'c', '0/20', '2024-01-02T00:00:00Z', { amount: 2, notes: 'order 2 notes' }),
      // Order 1 updated without its TOASTed notes: the customer's latest row.
      cdc(1, 'u', '0/30', '2024-01-03T00:00:00Z', { amount: 3, _tributary_unchanged: ['notes'] }),
    ],
  ]);
  const byCustomer = await readLatestAsOf(config, { stream: 'orders', key: 'customer_id' });
  expect(byCustomer.map((r) => [r.customer_id, r.entity_key, r.payload.amount, r.payload.notes])).toEqual([['c1', '1', 3, 'order 1 notes']]);
  const byKey = await readLatestAsOf(config, { stream: 'orders' });
  expect(byKey.map((r) => [r.entity_key, r.payload.amount, r.payload.notes])).toEqual([['1', 3, 'order 1 notes'], ['2', 2, 'order 2 notes']]);
});

it('`events` over streams whose same-named column is JSON in one and text in another: readable, each value as it was stored', async () => {
  const config = { path: join(root, 'events-mixed'), default_tenant: 't1', streams: { a: { customer_id_field: 'id' }, b: { customer_id_field: 'id' } } };
  const open = (key: string, x: Record<string, unknown>) =>
    lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [
      { key, name: key, syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: [], jsonSchema: { type: 'object', properties: { id: { type: 'string' }, x } }, resuming: false },
    ]);
  for (const [key, x, value] of [['a', { type: 'object' }, { k: 1 }], ['b', { type: 'string' }, 'plain text'], ['c', { type: 'integer' }, 7]] as const) {
    const session = await open(key, x);
    await session.write({ stream: key, records: [{ id: '1', x: value }], emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
  }
  const expected = [
    { stream: 'a', x: { k: 1 } },
    { stream: 'b', x: 'plain text' },
    { stream: 'c', x: 7 },
  ];
  expect(await queryLake(config, 'SELECT stream, x FROM events ORDER BY stream')).toEqual(expected);
  expect(await queryLake(config, 'SELECT stream, x FROM events ORDER BY stream', { tenant: 't1' })).toEqual(expected);
  // Each stream's own view keeps its own type.
  expect(await queryLake(config, 'SELECT typeof(x) AS t, x FROM b')).toEqual([{ t: 'VARCHAR', x: 'plain text' }]);
});

it('event times and as-of times without an offset are UTC, whatever the host time zone', async () => {
  const saved = process.env.TZ;
  process.env.TZ = 'America/New_York';
  try {
    const config = { path: join(root, 'zoneless'), streams: { orders: { event_time_field: 'at' } } };
    // 23:30 without offset: in New York's local time it would be 04:30Z the next day.
    await sync(config, schema({ at: { type: 'string' } }), [[{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, at: '2024-01-02T23:30:00' }, { id: 2, tenant_id: 't1', customer_id: 'c1', amount: 2, at: '2024-01-03 01:00:00.5' }]]);
    const rows = await queryLake(config, "select id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%g') as t from orders order by id");
    expect(rows).toEqual([{ id: 1, t: '2024-01-02T23:30:00.000' }, { id: 2, t: '2024-01-03T01:00:00.500' }]);
    const store = openStore(parseConfig(lakeConfigSchema, { path: config.path }));
    try {
      expect([...(await loadLakeState(store)).files.values()].map((f) => f.partition).sort()).toEqual(['2024-01-02', '2024-01-03']);
    } finally {
      store.close();
    }
    const asOf = await readLatestAsOf(config, { stream: 'orders', asOf: '2024-01-03T00:00:00' });
    expect(asOf.map((r) => r.payload.id)).toEqual([1]);
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
});
