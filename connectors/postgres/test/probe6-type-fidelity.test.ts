/**
 * Type fidelity end to end: a column of every kind of PostgreSQL type the source maps, with
 * edge values, synced (snapshot, then the CDC stream, default record format) into the event
 * lake and into the Redis feature store, through the runtime. The lake gives each field the
 * column type its declared schema calls for, quarantines no record (it validates records
 * against that schema), and returns every value as the source read it — through its own
 * point-in-time read and through an independent DuckDB over the Parquet files. Redis lookups
 * return the lake's values, and the parity check finds both stores equal.
 *
 * And the regression it came with: float4/float8 columns declared `number|string` with no
 * word on the strings (any text), so no destination could type them; the schema now limits
 * the strings to "NaN", "Infinity", "-Infinity".
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, runSync, type Destination, type JsonSchemaObject, type Source } from '@tributary/core';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '@tributary/destination-redis';
import { startRedisServer, type RedisServer } from '../../../destinations/redis/test/redis-server.js';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, memoryStateStore, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  [server, redis, dir] = await Promise.all([startPostgres(), startRedisServer(), mkdtemp(join(tmpdir(), 'tributary-pg-types-'))]);
  sql = await sqlClient(server);
});
afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One column: its SQL type, an edge value (SQL), the JSON the source gives it, and the lake's column type for it. */
interface Case {
  type: string;
  value: string;
  json: unknown;
  lake: string;
}

const CASES: Record<string, Case> = {
  i2: { type: 'int2', value: '-32768', json: -32768, lake: 'BIGINT' },
  i4: { type: 'int4', value: '-2147483648', json: -2147483648, lake: 'BIGINT' },
  i8: { type: 'int8', value: '9223372036854775807', json: '9223372036854775807', lake: 'BIGINT' },
  n: { type: 'numeric', value: `'-12345678901234567890.123456789012345678901234567890'`, json: '-12345678901234567890.123456789012345678901234567890', lake: 'VARCHAR' },
  n2: { type: 'numeric(10,2)', value: '12345678.9', json: '12345678.90', lake: 'VARCHAR' },
  n_nan: { type: 'numeric', value: `'NaN'`, json: 'NaN', lake: 'VARCHAR' },
  n_inf: { type: 'numeric', value: `'-Infinity'`, json: '-Infinity', lake: 'VARCHAR' },
  // DOUBLE: the declared pattern tells the lake the strings are the non-finite doubles.
  r: { type: 'real', value: '3.4028235e38', json: 3.4028235e38, lake: 'DOUBLE' },
  r_nan: { type: 'real', value: `'NaN'`, json: 'NaN', lake: 'DOUBLE' },
  d: { type: 'float8', value: '1.7976931348623157e308', json: 1.7976931348623157e308, lake: 'DOUBLE' },
  d_inf: { type: 'float8', value: `'-Infinity'`, json: '-Infinity', lake: 'DOUBLE' },
  m: { type: 'money', value: '92233720368547758.07', json: '$92,233,720,368,547,758.07', lake: 'VARCHAR' },
  b: { type: 'bool', value: 'true', json: true, lake: 'BOOLEAN' },
  t: { type: 'text', value: `E'line\\nquote" back\\\\ tab\\t é 😀'`, json: 'line\nquote" back\\ tab\t é 😀', lake: 'VARCHAR' },
  vc: { type: 'varchar(10)', value: `'abc'`, json: 'abc', lake: 'VARCHAR' },
  c: { type: 'char(5)', value: `'ab'`, json: 'ab   ', lake: 'VARCHAR' },
  bin: { type: 'bytea', value: `'\\x00ff10'`, json: 'AP8Q', lake: 'VARCHAR' },
  u: { type: 'uuid', value: `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`, json: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', lake: 'VARCHAR' },
  // Numbers inside json/jsonb are doubles (documented): 17+ digits are not kept.
  j: { type: 'json', value: `'{"big": 12345678901234567890, "f": 0.1, "a": [1, null, "x"]}'`, json: { big: 12345678901234567000, f: 0.1, a: [1, null, 'x'] }, lake: 'JSON' },
  jb: { type: 'jsonb', value: `'{"n": 9007199254740993, "s": "x"}'`, json: { n: 9007199254740992, s: 'x' }, lake: 'JSON' },
  jb_text: { type: 'jsonb', value: `'"just text"'`, json: 'just text', lake: 'JSON' },
  a_int: { type: 'int[]', value: 'ARRAY[1, NULL, 3]', json: [1, null, 3], lake: 'JSON' },
  a_text: { type: 'text[]', value: `ARRAY['a', NULL, 'NULL', 'with,comma', 'with"quote', '']`, json: ['a', null, 'NULL', 'with,comma', 'with"quote', ''], lake: 'JSON' },
  a_2d: { type: 'int[][]', value: 'ARRAY[[1, 2], [3, NULL]]', json: [[1, 2], [3, null]], lake: 'JSON' },
  a_i8: { type: 'int8[]', value: 'ARRAY[9223372036854775807, -1]', json: ['9223372036854775807', -1], lake: 'JSON' },
  a_num: { type: 'numeric[]', value: `ARRAY['NaN', '1.10', NULL]::numeric[]`, json: ['NaN', '1.10', null], lake: 'JSON' },
  a_f8: { type: 'float8[]', value: `ARRAY['NaN', 'Infinity', 1.5, NULL]::float8[]`, json: ['NaN', 'Infinity', 1.5, null], lake: 'JSON' },
  a_bytea: { type: 'bytea[]', value: `ARRAY['\\x00ff'::bytea, NULL]`, json: ['AP8=', null], lake: 'JSON' },
  a_tstz: { type: 'timestamptz[]', value: `ARRAY['2024-01-01 00:00:00.5+00'::timestamptz, 'infinity']`, json: ['2024-01-01T00:00:00.5Z', 'infinity'], lake: 'JSON' },
  dt: { type: 'date', value: `'2024-02-29'`, json: '2024-02-29', lake: 'VARCHAR' },
  dt_bc: { type: 'date', value: `'4713-01-01 BC'`, json: '4713-01-01 BC', lake: 'VARCHAR' },
  tm: { type: 'time', value: `'24:00:00'`, json: '24:00:00', lake: 'VARCHAR' },
  ttz: { type: 'timetz', value: `'12:34:56.789+05:30'`, json: '12:34:56.789+05:30', lake: 'VARCHAR' },
  ts: { type: 'timestamp', value: `'2024-05-01 10:00:00.123456'`, json: '2024-05-01T10:00:00.123456', lake: 'VARCHAR' },
  tstz: { type: 'timestamptz', value: `'2024-05-01 12:00:00.654321+02'`, json: '2024-05-01T10:00:00.654321Z', lake: 'VARCHAR' },
  tstz_inf: { type: 'timestamptz', value: `'-infinity'`, json: '-infinity', lake: 'VARCHAR' },
  tstz_bc: { type: 'timestamptz', value: `'0044-03-15 12:00:00+00 BC'`, json: '0044-03-15T12:00:00Z BC', lake: 'VARCHAR' },
  iv: { type: 'interval', value: `'1 year 2 mons -3 days 04:05:06.789'`, json: 'P1Y2M-3DT4H5M6.789S', lake: 'VARCHAR' },
  ip: { type: 'inet', value: `'2001:db8::1/64'`, json: '2001:db8::1/64', lake: 'VARCHAR' },
  net: { type: 'cidr', value: `'10.1.0.0/16'`, json: '10.1.0.0/16', lake: 'VARCHAR' },
  mac: { type: 'macaddr', value: `'08:00:2b:01:02:03'`, json: '08:00:2b:01:02:03', lake: 'VARCHAR' },
  en: { type: 'mood', value: `'happy'`, json: 'happy', lake: 'VARCHAR' },
  a_en: { type: 'mood[]', value: `ARRAY['sad'::mood, NULL]`, json: ['sad', null], lake: 'JSON' },
  dom: { type: 'positive', value: '5', json: 5, lake: 'BIGINT' },
  dom8: { type: 'big8', value: '-9223372036854775808', json: '-9223372036854775808', lake: 'BIGINT' },
  comp: { type: 'pair', value: `ROW(1, 'a b')`, json: '(1,"a b")', lake: 'VARCHAR' },
  rng: { type: 'int4range', value: `'[1,5)'`, json: '[1,5)', lake: 'VARCHAR' },
  mrng: { type: 'int4multirange', value: `'{[1,3), [5,7)}'`, json: '{[1,3),[5,7)}', lake: 'VARCHAR' },
  x: { type: 'xml', value: `'<a>x &amp; y</a>'`, json: '<a>x &amp; y</a>', lake: 'VARCHAR' },
  bits: { type: 'bit(4)', value: `B'1010'`, json: '1010', lake: 'VARCHAR' },
  vbits: { type: 'varbit', value: `B'101'`, json: '101', lake: 'VARCHAR' },
  tsv: { type: 'tsvector', value: `'a fat cat'`, json: `'a' 'cat' 'fat'`, lake: 'VARCHAR' },
  o: { type: 'oid', value: '4294967295', json: 4294967295, lake: 'BIGINT' },
  rc: { type: 'regclass', value: `'pg_class'`, json: 'pg_class', lake: 'VARCHAR' },
  x8: { type: 'xid8', value: `'18446744073709551615'`, json: '18446744073709551615', lake: 'VARCHAR' },
};
const NAMES = Object.keys(CASES);

/** A row of edge values, with its key and event time. */
const edgeRow = (id: number): string => `INSERT INTO types VALUES (${id}, 'acme', '2024-05-01 10:00:00.123456+00', ${NAMES.map((n) => CASES[n]!.value).join(', ')})`;
const edgeJson = (id: number): Record<string, unknown> => ({ id, tenant_id: 'acme', updated_at: '2024-05-01T10:00:00.123456Z', ...Object.fromEntries(NAMES.map((n) => [n, CASES[n]!.json])) });

it('float4/float8 columns declare which strings they hold: "NaN", "Infinity", "-Infinity"', async () => {
  await sql.query('CREATE TABLE floats (id int PRIMARY KEY, r real, d float8)');
  const discovered = await postgresSource.discover(createConnectorContext({}), configFor(server, { replication_method: 'standard' }));
  const schema = discovered.streams.find((s) => s.name === 'floats')!.json_schema as JsonSchemaObject;
  const accepts = (value: unknown): boolean => {
    try {
      parseConfig(schema, { id: 1, r: value, d: value });
      return true;
    } catch {
      return false;
    }
  };
  for (const value of [1.5, -0, 3.4e38, 'NaN', 'Infinity', '-Infinity', null]) expect(accepts(value), String(value)).toBe(true);
  for (const value of ['1.5', 'nan', 'inf', '', 'abc', ' NaN']) expect(accepts(value), JSON.stringify(value)).toBe(false);
});

it('every mapped type: lake column types, no quarantine, values read back exactly from the lake and from Redis, parity', async () => {
  await sql.query(`CREATE TYPE mood AS ENUM ('happy', 'sad')`);
  await sql.query('CREATE DOMAIN positive AS int CHECK (VALUE > 0)');
  await sql.query('CREATE DOMAIN big8 AS int8');
  await sql.query('CREATE TYPE pair AS (a int, b text)');
  await sql.query(`CREATE TABLE types (id int PRIMARY KEY, tenant_id text NOT NULL, updated_at timestamptz NOT NULL, ${NAMES.map((n) => `${n} ${CASES[n]!.type}`).join(', ')})`);
  await sql.query(edgeRow(1)); // snapshot
  await sql.query(`INSERT INTO types (id, tenant_id, updated_at) VALUES (2, 'acme', '2024-05-01 10:00:00+00')`);
  const config = configFor(server);
  const catalog = await catalogFor(config, ['types']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake'), source_system: 'postgres' };
  const redisConfig = { port: redis.port, key_prefix: 'types' };
  // Two connections, as in production: each its own slot and publication.
  const sync = async (destination: Destination, destinationConfig: Record<string, unknown>, name: string): Promise<void> => {
    const sourceConfig = { ...config, slot_name: `${name}_slot`, publication_name: `${name}_pub` };
    const result = await runSync({ connection: name, source: postgresSource as unknown as Source, sourceConfig, destination, destinationConfig, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
  };
  const syncBoth = async (): Promise<void> => {
    await sync(lakeDestination, lake, 'lake');
    await sync(redisDestination as unknown as Destination, redisConfig, 'redis');
  };
  await syncBoth();
  await sql.query(edgeRow(3)); // the stream
  await sql.query(`UPDATE types SET i8 = -9223372036854775808, d = 5e-324, updated_at = '2024-05-02 00:00:00+00' WHERE id = 2`);
  await syncBoth();

  const nulls = Object.fromEntries(NAMES.map((n) => [n, null]));
  const expected: Record<string, Record<string, unknown>> = {
    '1': edgeJson(1),
    '2': { ...nulls, id: 2, tenant_id: 'acme', updated_at: '2024-05-02T00:00:00Z', i8: '-9223372036854775808', d: 5e-324 },
    '3': edgeJson(3),
  };

  // No record quarantined: the lake validated every one against the source's declared schema.
  expect(await readdir(join(lake.path, '_quarantine')).catch(() => [])).toEqual([]);

  // The lake's point-in-time read: every value as the source read it.
  const latest = await readLatestAsOf(lake, { stream: 'public.types' });
  expect(Object.fromEntries(latest.map((r) => [r.entity_key, r.payload]))).toEqual(expected);
  expect(latest.map((r) => [r.entity_key, r.op])).toEqual([['1', 'snapshot'], ['2', 'update'], ['3', 'insert']]);

  // An independent DuckDB over the Parquet files: the column types, and values as stored.
  const instance = await DuckDBInstance.create(':memory:');
  const duck = await instance.connect();
  try {
    const files = `read_parquet('${join(lake.path, 'data', '**', '*.parquet')}', union_by_name = true)`;
    const described = (await duck.runAndReadAll(`DESCRIBE SELECT id, tenant_id, updated_at, ${NAMES.join(', ')} FROM ${files}`)).getRows();
    expect(Object.fromEntries(described.map((r) => [String(r[0]), String(r[1])]))).toEqual({
      id: 'BIGINT',
      tenant_id: 'VARCHAR',
      updated_at: 'VARCHAR',
      ...Object.fromEntries(NAMES.map((n) => [n, CASES[n]!.lake])),
    });
    const stored = (await duck.runAndReadAll(`SELECT ${NAMES.map((n) => `CAST(${n} AS VARCHAR)`).join(', ')} FROM ${files} WHERE id = 3`)).getRows();
    // DuckDB prints non-finite doubles as nan, inf, -inf.
    const doubleText: Record<string, string> = { NaN: 'nan', Infinity: 'inf', '-Infinity': '-inf' };
    const asStored = (json: unknown, lakeType: string): string => (lakeType === 'JSON' ? JSON.stringify(json) : lakeType === 'DOUBLE' ? (doubleText[String(json)] ?? String(json)) : String(json));
    expect(stored).toEqual([NAMES.map((n) => asStored(CASES[n]!.json, CASES[n]!.lake))]);
  } finally {
    duck.closeSync();
    instance.closeSync();
  }

  // Redis lookups: the lake's values (the CDC fields Redis keeps as features aside).
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: 'types' });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'types', entityIds: ['1', '2', '3'] });
    const features = found.map((e) => Object.fromEntries(Object.entries(e.groups.types?.features ?? {}).filter(([k]) => !k.startsWith('_tributary_'))));
    expect(features).toEqual([expected['1'], expected['2'], expected['3']]);
  } finally {
    await lookup.close();
  }

  // And the parity check, on the lake's rows as they are: snapshot rows carry their slot's
  // position, which differs between the two connections' slots (parity reported them as
  // event_time_differs until it compared such versions by event time and values).
  const client = new Redis({ port: redis.port, host: '127.0.0.1' });
  try {
    const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), {
      key: 'public.types',
      name: 'types',
      namespace: 'public',
      syncMode: 'incremental',
      destinationSyncMode: 'append_dedup',
      primaryKey: [['id']],
      cursorField: ['_tributary_position'],
      jsonSchema: catalog.streams[0]!.stream.json_schema,
      resuming: false,
    });
    const offline = latest.map(offlineRowFromLake);
    const report = await compareOnlineOffline({ client, prefix: 'types', mapping, offline });
    expect(report).toMatchObject({ ok: true, offlineEntities: 3, onlineEntities: 3, matching: 3 });
  } finally {
    client.disconnect();
  }
});
