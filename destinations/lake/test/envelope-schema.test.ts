import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAjv, createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { DuckDBInstance } from '@duckdb/node-api';
import { lakeConfigSchema, lakeDestination, loadLakeState, openStore, queryLake, readLatestAsOf, readStreamRows } from '../src/index.js';
import { hivePathValue } from '../src/layout.js';
import { duckQuery } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-unit-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const schema = (extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, amount: { type: ['integer', 'null'] }, ...extra },
});
const stream = (jsonSchema: Record<string, unknown>): DestinationStream => ({ key: 'orders', name: 'orders', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: [], jsonSchema, resuming: false });

async function sync(config: Record<string, unknown>, jsonSchema: Record<string, unknown>, records: RecordData[]) {
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream(jsonSchema)]);
  const outcome = await session.write({ stream: 'orders', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  return outcome?.rejected ?? [];
}

const cdc = (id: number, op: string, lsn: string, at: string, amount: number | null): RecordData => ({
  id,
  tenant_id: 't1',
  customer_id: `c${id}`,
  amount,
  _tributary_op: op,
  _tributary_position: lsn,
  _tributary_txid: '42',
  _tributary_commit_time: at,
  _tributary_before: null,
});

it('CDC records map to the envelope; as-of returns the latest row per key at T and leaves deleted keys out', async () => {
  const config = { path: join(root, 'cdc') };
  await sync(config, schema(), [
    cdc(1, 'c', '0/10', '2024-01-01T00:00:00Z', 10),
    cdc(2, 'c', '0/11', '2024-01-01T00:00:00Z', 20),
    cdc(1, 'u', '0/20', '2024-01-02T00:00:00Z', 11),
    cdc(2, 'd', '0/30', '2024-01-03T00:00:00Z', null),
  ]);
  const ops = await queryLake(config, 'select op, source_position, source_txid from orders order by source_position');
  expect(ops).toEqual([
    { op: 'insert', source_position: '0/10', source_txid: '42' },
    { op: 'insert', source_position: '0/11', source_txid: '42' },
    { op: 'update', source_position: '0/20', source_txid: '42' },
    { op: 'delete', source_position: '0/30', source_txid: '42' },
  ]);
  const at = async (time: string) => (await readLatestAsOf(config, { stream: 'orders', asOf: time })).map((r) => [r.entity_key, r.payload.amount]);
  expect(await at('2024-01-01T12:00:00Z')).toEqual([['1', 10], ['2', 20]]);
  expect(await at('2024-01-02T12:00:00Z')).toEqual([['1', 11], ['2', 20]]);
  expect(await at('2024-01-04T00:00:00Z')).toEqual([['1', 11]]);
});

it('bad records go to quarantine with the reason and are counted; nothing is dropped', async () => {
  const config = { path: join(root, 'bad') };
  const rejected = await sync(config, schema(), [
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1 },
    { id: 2, customer_id: 'c2', amount: 2 },
    { id: 3, tenant_id: 't1', amount: 3 },
    { id: 4, tenant_id: 't1', customer_id: 'c4', amount: 'four' },
  ]);
  expect(rejected.map((r) => r.index)).toEqual([1, 2, 3]);
  expect(rejected[0]!.reason).toMatch(/no tenant id/);
  expect(rejected[1]!.reason).toMatch(/no customer id/);
  expect(rejected[2]!.reason).toMatch(/amount/);
  expect(await queryLake(config, 'select count(*) as n from orders')).toEqual([{ n: 1 }]);
  expect((await queryLake(config, 'select reason from quarantine')).length).toBe(3);
});

it('a closed schema (additionalProperties: false): a record with an undeclared field is quarantined and adds no column or schema version', async () => {
  const config = { path: join(root, 'closed') };
  const closed = { ...schema(), additionalProperties: false };
  const rejected = await sync(config, closed, [
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1 },
    { id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, coupon: 'X' },
  ]);
  expect(rejected.map((r) => [r.index, r.reason])).toEqual([[1, expect.stringMatching(/additional properties/)]]);
  const registry = JSON.parse(await readFile(join(config.path, '_tributary', 'schemas', 'orders.json'), 'utf8')) as { versions: Array<{ change: string }> };
  expect(registry.versions.map((v) => v.change)).toEqual(['initial schema']);
  const columns = (await queryLake(config, 'describe orders')).map((r) => r.column_name);
  expect(columns).not.toContain('coupon');
  expect(await queryLake(config, 'select id from orders')).toEqual([{ id: 1 }]);
});

it('schema evolution: a new optional column widens the schema (old files read NULL); a breaking type change is refused with a clear message, or mapped to a versioned column', async () => {
  const config = { path: join(root, 'evolve') };
  await sync(config, schema(), [{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 5 }]);
  await sync(config, schema({ coupon: { type: 'string' } }), [{ id: 2, tenant_id: 't1', customer_id: 'c2', amount: 6, coupon: 'X' }]);
  expect(await queryLake(config, 'select id, coupon, schema_version from orders order by id')).toEqual([
    { id: 1, coupon: null, schema_version: 1 },
    { id: 2, coupon: 'X', schema_version: 2 },
  ]);
  await expect(sync(config, schema({ amount: { type: 'string' } }), [])).rejects.toThrow(/Breaking schema change in stream "orders": field "amount" was integer .* now string/);
  await sync({ ...config, on_breaking_change: 'new_column' }, schema({ amount: { type: 'string' } }), [{ id: 3, tenant_id: 't1', customer_id: 'c3', amount: 'seven' }]);
  const rows = await readLatestAsOf(config, { stream: 'orders' });
  expect(rows.map((r) => r.payload.amount)).toEqual([5, 6, 'seven']);
  const registry = JSON.parse(await readFile(join(config.path, '_tributary', 'schemas', 'orders.json'), 'utf8')) as {
    versions: Array<{ change: string; jsonSchema: { properties: Record<string, unknown> } }>;
  };
  expect(registry.versions.map((v) => v.change)).toEqual(['initial schema', 'added coupon (string)', 'amount changed integer → string: now written to amount__v3']);
  // Each version carries the payload's JSON Schema; every row validates against its own version's.
  // An integer column reads back as digits beyond ±2^53 (see reader.ts), which its schema allows.
  const INTEGER_SCHEMA = { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' };
  expect(registry.versions.map((v) => v.jsonSchema.properties.amount)).toEqual([INTEGER_SCHEMA, INTEGER_SCHEMA, { type: ['string', 'null'] }]);
  expect(registry.versions[0]!.jsonSchema.properties.coupon).toBeUndefined();
  const ajv = createAjv();
  const all = await readStreamRows(config, { stream: 'orders' });
  for (const row of all) {
    const validate = ajv.compile(registry.versions[row.schema_version - 1]!.jsonSchema);
    expect(validate(row.payload), `${JSON.stringify(row.payload)}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  }
  expect(ajv.compile(registry.versions[0]!.jsonSchema)({ amount: 'seven' })).toBe(false);
});

it('a Postgres-CDC-shaped stream (cursor _tributary_position, namespace, TOAST-unchanged columns): event time is the commit time, as-of fills unchanged columns', async () => {
  const config = { path: join(root, 'pg') };
  const jsonSchema = {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      tenant_id: { type: 'string' },
      customer_id: { type: 'string' },
      notes: { type: ['string', 'null'] },
      _tributary_op: { type: 'string' },
      _tributary_position: { type: 'string' },
      _tributary_txid: { type: ['integer', 'null'] },
      _tributary_commit_time: { type: ['string', 'null'] },
      _tributary_before: { type: ['object', 'null'] },
      _tributary_unchanged: { type: 'array', items: { type: 'string' } },
    },
  };
  const s: DestinationStream = { key: 'public.accounts', name: 'accounts', namespace: 'public', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['_tributary_position'], jsonSchema, resuming: false };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [s]);
  const base = { tenant_id: 't1', customer_id: 'c1', _tributary_before: null };
  const outcome = await session.write({
    stream: 'public.accounts',
    emittedAt: Date.now(),
    records: [
      { ...base, id: 1, notes: 'long text', _tributary_op: 'c', _tributary_position: '0/1A', _tributary_txid: 7, _tributary_commit_time: '2024-03-01T10:00:00Z' },
      { ...base, id: 1, _tributary_op: 'u', _tributary_position: '0/2B', _tributary_txid: 8, _tributary_commit_time: '2024-03-02T10:00:00Z', _tributary_unchanged: ['notes'], _tributary_before: { id: 1 } },
      { ...base, id: 1, _tributary_op: 't', _tributary_position: '0/3C', _tributary_txid: 9, _tributary_commit_time: '2024-03-03T10:00:00Z' },
    ],
  });
  await session.commit();
  await session.close({ completed: true });
  expect(outcome?.rejected).toEqual([{ index: 2, reason: expect.stringMatching(/truncate/) as unknown as string }]);
  const rows = await queryLake(config, 'select op, event_time, source_position, source_txid, unchanged_fields, before_image from "public.accounts" order by source_position');
  expect(rows).toEqual([
    { op: 'insert', event_time: '2024-03-01T10:00:00.000Z', source_position: '0/1A', source_txid: '7', unchanged_fields: null, before_image: null },
    { op: 'update', event_time: '2024-03-02T10:00:00.000Z', source_position: '0/2B', source_txid: '8', unchanged_fields: ['notes'], before_image: { id: 1 } },
  ]);
  const [latest] = await readLatestAsOf(config, { stream: 'public.accounts' });
  expect(latest).toMatchObject({ op: 'update', entity_key: '1', payload: { id: 1, notes: 'long text' } });
});

it('a field first seen mid-session widens the schema from that row on (schema_version per row)', async () => {
  const config = { path: join(root, 'mid') };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream(schema())]);
  await session.write({ stream: 'orders', records: [{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1 }], emittedAt: Date.now() });
  await session.write({ stream: 'orders', records: [{ id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, channel: 'web' }], emittedAt: Date.now() });
  await session.write({ stream: 'orders', records: [{ id: 3, tenant_id: 't1', customer_id: 'c3', amount: 3, channel: 'app', _tributary_op: 'd', _tributary_position: '0/9' }], emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  expect(await queryLake(config, 'select id, channel, schema_version, op, source_position from orders order by id')).toEqual([
    { id: 1, channel: null, schema_version: 1, op: 'update', source_position: null },
    { id: 2, channel: 'web', schema_version: 2, op: 'update', source_position: null },
    { id: 3, channel: 'app', schema_version: 2, op: 'delete', source_position: '0/9' },
  ]);
});

it('as-of follows the CDC change order (LSN), not the snapshot row’s ingest time', async () => {
  const config = { path: join(root, 'lsn') };
  const yesterday = new Date(Date.now() - 86_400_000).toISOString();
  await sync(config, schema(), [
    // Read by the snapshot (no commit time: its event time is now, the ingest time)…
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, _tributary_op: 'r', _tributary_position: '0/FF', _tributary_commit_time: null },
    // …while this change, committed after the snapshot point (higher LSN, numerically: 0x100 > 0xFF), has an older commit time.
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 2, _tributary_op: 'u', _tributary_position: '0/100', _tributary_commit_time: yesterday },
  ]);
  const rows = await readLatestAsOf(config, { stream: 'orders' });
  expect(rows.map((r) => [r.op, r.payload.amount])).toEqual([['update', 2]]);
});

it('tenant names with path characters stay in their own (percent-encoded) partition', async () => {
  const config = { path: join(root, 'tenants') };
  await sync(config, schema(), [
    { id: 1, tenant_id: 'a/b', customer_id: 'c1', amount: 1 },
    { id: 2, tenant_id: 'a', customer_id: 'c2', amount: 2 },
    { id: 3, tenant_id: 'tenant_id=x y', customer_id: 'c3', amount: 3 },
  ]);
  const store = openStore(parseConfig(lakeConfigSchema, config));
  const files = [...(await loadLakeState(store)).files.values()];
  store.close();
  expect(files.map((f) => [f.tenant, f.rows]).sort()).toEqual([['a', 1], ['a/b', 1], ['tenant_id=x y', 1]]);
  for (const f of files) expect(f.path.split('/').filter((p) => p.startsWith('tenant_id=')).length).toBe(1);
  expect((await readLatestAsOf(config, { stream: 'orders', tenant: 'a' })).map((r) => r.payload.id)).toEqual([2]);
  expect((await queryLake(config, 'select id from orders order by id', { tenant: 'a/b' })).map((r) => r.id)).toEqual([1]);
});

it('a payload field the envelope carries is stored once; when the mapping stops carrying it, a new version moves it back to payload_<name>', async () => {
  const config = { path: join(root, 'carry') };
  const withEventId = schema({ event_id: { type: 'string' } });
  await sync({ ...config, streams: { orders: { event_id_field: 'event_id' } } }, withEventId, [{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, event_id: 'ev-1' }]);
  await sync(config, withEventId, [{ id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, event_id: 'ev-2' }]);
  const rows = await readStreamRows(config, { stream: 'orders' });
  expect(rows.map((r) => [r.payload.id, r.payload.event_id, r.payload.tenant_id, r.event_id === 'ev-1' || r.event_id === 'ev-2'])).toEqual([
    [1, 'ev-1', 't1', true],
    [2, 'ev-2', 't1', false],
  ]);
  const columns = await duckQuery(`DESCRIBE SELECT * FROM read_parquet('${join(config.path, 'data', 'orders', '*', '*', '*.parquet')}', union_by_name = true)`);
  expect(columns.map((c) => c.column_name)).not.toContain('payload_tenant_id');
  expect(columns.map((c) => c.column_name)).toContain('payload_event_id');
});

it('a bad record replayed after a crash is reported again but kept in the quarantine once', async () => {
  const config = parseConfig(lakeDestination.spec.connectionSpecification, { path: join(root, 'requarantine') });
  const batch = { stream: 'orders', emittedAt: Date.now(), records: [{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1 }, { id: 2, customer_id: 'c2', amount: 2 }] };
  const first = await lakeDestination.open(createConnectorContext({}), config, [stream(schema())]);
  expect((await first.write(batch))?.rejected?.map((r) => r.index)).toEqual([1]);
  await first.commit();
  // `first` is dropped without close (a crash before the checkpoint): the runtime replays the batch.
  const second = await lakeDestination.open(createConnectorContext({}), config, [stream(schema())]);
  expect((await second.write(batch))?.rejected?.map((r) => r.index)).toEqual([1]);
  await second.commit();
  await second.close({ completed: true });
  expect(await queryLake(config, 'select count(*) as n from orders')).toEqual([{ n: 1 }]);
  expect(await queryLake(config, "select count(*) as n, min(record->>'customer_id') as c from quarantine")).toEqual([{ n: 1, c: 'c2' }]);
});

it('payload fields named like the stage’s own columns (event_time_ms, op_code, ingest_time_ms) are stored as sent', async () => {
  const config = { path: join(root, 'stage-names') };
  const names = { event_time_ms: { type: 'integer' }, ingest_time_ms: { type: 'integer' }, op_code: { type: 'string' } };
  await sync(config, schema(names), [
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, event_time_ms: 5, ingest_time_ms: 6, op_code: 'x' },
    { id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, event_time_ms: 7, ingest_time_ms: 8, op_code: 'y' },
  ]);
  expect(await queryLake(config, 'select id, event_time_ms, ingest_time_ms, op_code, op from orders order by id')).toEqual([
    { id: 1, event_time_ms: 5, ingest_time_ms: 6, op_code: 'x', op: 'update' },
    { id: 2, event_time_ms: 7, ingest_time_ms: 8, op_code: 'y', op: 'update' },
  ]);
});

it('JSON values with unpaired surrogates are stored with U+FFFD in their place, not fail the commit', async () => {
  const config = { path: join(root, 'lone-surrogates') };
  const records: RecordData[] = [
    // JSON.stringify escapes an unpaired surrogate (\udXXX), which DuckDB's JSON type refuses.
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, props: { note: 'a\ud800b', ['k\udc00']: 1 }, _tributary_op: 'u', _tributary_position: '0/1', _tributary_before: { note: 'x\udbff' } },
    // An escaped backslash followed by "ud800" is text, not an escape: kept as it is.
    { id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, props: { note: 'c\\ud800', pair: '😀' }, _tributary_op: 'u', _tributary_position: '0/2', _tributary_before: null },
  ];
  expect(await sync(config, schema({ props: { type: 'object' } }), records)).toEqual([]);
  const rows = await queryLake(config, 'select id, props, before_image from orders order by id');
  expect(rows).toEqual([
    { id: 1, props: { note: 'a\ufffdb', ['k\ufffd']: 1 }, before_image: { note: 'x\ufffd' } },
    { id: 2, props: { note: 'c\\ud800', pair: '😀' }, before_image: null },
  ]);
});

it('the lake encodes a tenant’s directory name exactly as DuckDB’s partitioned COPY does (so its length can be checked first)', async () => {
  const values = ['a b', '!\'()*', 'x\u0000y', '🦆', 'é', '\u2028', 'a\ud800b', 'tenant_id=x'];
  for (let code = 1; code < 0x3000; code += code < 0x100 ? 1 : 7) if (code < 0xd800 || code > 0xdfff) values.push(`v${String.fromCharCode(code)}w`);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run('CREATE TABLE t (k VARCHAR, i INTEGER)');
    const appender = await connection.createAppender('t');
    values.forEach((v, i) => {
      appender.appendVarchar(v);
      appender.appendInteger(i);
      appender.endRow();
    });
    appender.closeSync();
    const out = join(root, 'hive-encoding');
    await connection.run(`COPY t TO '${out}' (FORMAT parquet, PARTITION_BY (k))`);
    const rows = (await connection.runAndReadAll(`SELECT i, filename FROM read_parquet('${out}/*/*.parquet', filename = true, hive_partitioning = false)`)).getRows();
    expect(rows.length).toBe(values.length);
    const mismatches = rows.map(([i, file]) => [values[Number(i)]!, String(file).split('/').at(-2)!]).filter(([value, dir]) => dir !== `k=${hivePathValue(value!)}`);
    expect(mismatches).toEqual([]);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
});

it('a tenant id too long for its partition directory, or an event time outside the range of dates, is quarantined instead of failing the commit', async () => {
  const config = { path: join(root, 'limits'), streams: { orders: { event_time_field: 'at' } } };
  const at = '2024-01-01T00:00:00Z';
  const rejected = await sync(config, schema({ at: { type: ['string', 'number'] } }), [
    { id: 1, tenant_id: 'x'.repeat(245), customer_id: 'c1', at }, // tenant_id= + 245 bytes: a 255-byte name, the longest there is
    { id: 2, tenant_id: 'x'.repeat(246), customer_id: 'c2', at },
    { id: 3, tenant_id: '租'.repeat(27), customer_id: 'c3', at }, // 27 × %XX%XX%XX = 243 bytes
    { id: 4, tenant_id: '租'.repeat(28), customer_id: 'c4', at },
    { id: 5, tenant_id: 't1', customer_id: 'c5', at: 8.64e15 }, // the last date JavaScript has
    { id: 6, tenant_id: 't1', customer_id: 'c6', at: 1e20 },
    { id: 7, tenant_id: 't1', customer_id: 'c7', at: -1e17 },
  ]);
  expect(rejected.map((r) => [r.index, r.reason.split(':')[0]])).toEqual([
    [1, 'tenant id is too long for a partition directory'],
    [3, 'tenant id is too long for a partition directory'],
    [5, 'event time 100000000000000000000 ms is outside the range of dates (±8640000000000000 ms from 1970)'],
    [6, 'event time -100000000000000000 ms is outside the range of dates (±8640000000000000 ms from 1970)'],
  ]);
  expect(await queryLake(config, 'select id, length(tenant_id) as tenant_length, event_time from orders order by id')).toEqual([
    { id: 1, tenant_length: 245, event_time: '2024-01-01T00:00:00.000Z' },
    { id: 3, tenant_length: 27, event_time: '2024-01-01T00:00:00.000Z' },
    { id: 5, tenant_length: 2, event_time: '+275760-09-13T00:00:00.000Z' },
  ]);
  expect((await queryLake(config, 'select reason from quarantine')).length).toBe(4);
});

it('fields whose names differ only in letter case, match an envelope column but for case, or are empty each get a column of their own', async () => {
  const config = { path: join(root, 'case-twins') };
  const declared = schema({ Email: { type: 'string' }, email: { type: 'string' } });
  // `Email`/`email` are declared; `Tenant_Id`, `EVENT_ID` and '' first arrive in records.
  await sync(config, declared, [{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, Email: 'A@x', email: 'a@x', Tenant_Id: 'T', EVENT_ID: 'E', '': 'empty' }]);
  // A later session: the registry keeps each field's column (a new twin gets the next free name).
  await sync(config, declared, [{ id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, email: 'b@x', EMAIL: 'B@X' }]);
  const rows = await readStreamRows(config, { stream: 'orders' });
  expect(rows.map((r) => r.payload).sort((a, b) => Number(a.id) - Number(b.id))).toEqual([
    // Written at the version before EMAIL existed: a row's payload has its version's fields.
    { id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1, Email: 'A@x', email: 'a@x', Tenant_Id: 'T', EVENT_ID: 'E', '': 'empty' },
    { id: 2, tenant_id: 't1', customer_id: 'c2', amount: 2, Email: null, email: 'b@x', Tenant_Id: null, EVENT_ID: null, '': null, EMAIL: 'B@X' },
  ]);
  const columns = (await duckQuery(`DESCRIBE SELECT * FROM read_parquet('${join(config.path, 'data', 'orders', '*', '*', '*.parquet')}', union_by_name = true)`)).map((c) => c.column_name);
  expect(columns).toEqual(expect.arrayContaining(['Email', 'email__2', 'payload_Tenant_Id', 'payload_EVENT_ID', 'payload_', 'EMAIL__3']));
});

it('a stream name too long for the lake’s directory layout is refused when the session opens, with the limit', async () => {
  const config = parseConfig(lakeDestination.spec.connectionSpecification, { path: join(root, 'long-stream') });
  const named = (key: string): DestinationStream => ({ ...stream(schema()), key, name: key });
  const open = (key: string) => lakeDestination.open(createConnectorContext({}), config, [named(key)]);
  await expect(open('s'.repeat(233))).rejects.toThrow(/too long a name for the lake's layout: percent-encoded, it must fit in 232 bytes \(it takes 233\)/);
  // The longest that fits: its directory and registry file are written and read back.
  const session = await open('s'.repeat(232));
  await session.write({ stream: 's'.repeat(232), records: [{ id: 1, tenant_id: 't1', customer_id: 'c1', amount: 1 }], emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  expect((await readStreamRows(config, { stream: 's'.repeat(232) })).map((r) => r.payload.id)).toEqual([1]);
});
