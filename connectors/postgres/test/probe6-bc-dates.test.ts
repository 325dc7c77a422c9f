/**
 * BC dates and timestamps (and years beyond 9999) on every path that emits them: the table
 * read (COPY bytes and query text), the pgoutput stream, and the Debezium envelope. A
 * timestamptz of 4713 BC came out `4713-01-01T00:00:00+00 BC` (the offset as printed), and
 * one of year 10000 `10000-01-01 00:00:00+00` (no `T`, no `Z`); a timestamp of year 10000
 * kept its space. Each now takes the form the source gives AD values of its type, BC values
 * followed by ` BC` (Airbyte's well-known types): `4713-01-01T00:00:00Z BC`. Values written
 * with offsets that are not whole hours arrive in UTC (`…Z`); `infinity` and `-infinity`
 * pass as they are. Values sent back to the server (keyset and cursor positions) are read by
 * it in the new form: resumed and chunked reads keyed on such values lose and repeat nothing.
 */
import type pg from 'pg';
import { expect, it } from 'vitest';
import { createConnectorContext, expandRecordPages, streamKey, type ConfiguredAirbyteCatalog, type RecordData, type SyncState } from '@tributary/core';
import { postgresSource, type PostgresConfig } from '../src/index.js';
import { timestamptzToIso } from '../src/schema/values.js';
import { catalogFor, cdcConfigFor, configFor, readAll, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});

/** Rows as (SQL values of tz, ts, d, tza, tsa, da) and the JSON every path must give them. */
const ROWS: Array<{ sql: string; json: Record<string, unknown> }> = [
  {
    sql: `'4713-01-01 00:00:00+00 BC', '4713-01-01 00:00:00 BC', '4713-01-01 BC', ARRAY['4713-01-01 00:00:00+00 BC'::timestamptz, '2024-01-01 00:00:00+00'], ARRAY['4713-01-01 00:00:00 BC'::timestamp], ARRAY['4713-01-01 BC'::date, '2024-01-01']`,
    json: { tz: '4713-01-01T00:00:00Z BC', ts: '4713-01-01T00:00:00 BC', d: '4713-01-01 BC', tza: ['4713-01-01T00:00:00Z BC', '2024-01-01T00:00:00Z'], tsa: ['4713-01-01T00:00:00 BC'], da: ['4713-01-01 BC', '2024-01-01'] },
  },
  {
    // Microseconds kept, as for AD values.
    sql: `'0044-03-15 12:34:56.123456+00 BC', '0044-03-15 12:34:56.123456 BC', '0044-03-15 BC', ARRAY['0044-03-15 12:34:56.5+00 BC'::timestamptz], ARRAY['0044-03-15 12:34:56.5 BC'::timestamp], ARRAY['0044-03-15 BC'::date]`,
    json: { tz: '0044-03-15T12:34:56.123456Z BC', ts: '0044-03-15T12:34:56.123456 BC', d: '0044-03-15 BC', tza: ['0044-03-15T12:34:56.5Z BC'], tsa: ['0044-03-15T12:34:56.5 BC'], da: ['0044-03-15 BC'] },
  },
  {
    // Offsets that are not whole hours: +05:45 at 1 January of 1 BC is the evening before, in 2 BC.
    sql: `'0001-01-01 00:00:00+05:45 BC', '0001-01-01 00:00:00 BC', '0001-01-01 BC', ARRAY['2024-02-29 23:59:59.123456+05:30'::timestamptz, '2024-01-01 00:00:00-03:30', '1890-01-01 00:00:00+05:53:28'], NULL, NULL`,
    json: { tz: '0002-12-31T18:15:00Z BC', ts: '0001-01-01T00:00:00 BC', d: '0001-01-01 BC', tza: ['2024-02-29T18:29:59.123456Z', '2024-01-01T03:30:00Z', '1889-12-31T18:06:32Z'], tsa: null, da: null },
  },
  {
    sql: `'infinity', '-infinity', 'infinity', ARRAY['infinity'::timestamptz, '-infinity'], ARRAY['infinity'::timestamp], ARRAY['-infinity'::date]`,
    json: { tz: 'infinity', ts: '-infinity', d: 'infinity', tza: ['infinity', '-infinity'], tsa: ['infinity'], da: ['-infinity'] },
  },
  {
    sql: `'10000-01-01 00:00:00.25+00', '10000-01-01 00:00:00.25', '10000-01-01', ARRAY['10000-01-01 00:00:00+00'::timestamptz], ARRAY['10000-01-01 00:00:00'::timestamp], ARRAY['10000-01-01'::date]`,
    json: { tz: '10000-01-01T00:00:00.25Z', ts: '10000-01-01T00:00:00.25', d: '10000-01-01', tza: ['10000-01-01T00:00:00Z'], tsa: ['10000-01-01T00:00:00'], da: ['10000-01-01'] },
  },
  {
    sql: `'2024-05-01 10:00:00.5+00', '2024-05-01 10:00:00.5', '2024-05-01', NULL, NULL, NULL`,
    json: { tz: '2024-05-01T10:00:00.5Z', ts: '2024-05-01T10:00:00.5', d: '2024-05-01', tza: null, tsa: null, da: null },
  },
];
const COLUMNS = 'tz timestamptz, ts timestamp, d date, tza timestamptz[], tsa timestamp[], da date[]';

async function createTable(name: string, firstId = 1): Promise<void> {
  await sql.query(`CREATE TABLE ${name} (id int PRIMARY KEY, ${COLUMNS})`);
  await insertRows(name, firstId);
}

async function insertRows(name: string, firstId: number): Promise<void> {
  await sql.query(`INSERT INTO ${name} VALUES ${ROWS.map((r, i) => `(${firstId + i}, ${r.sql})`).join(', ')}`);
}

/** The expected rows, ids from `firstId`. */
function expected(firstId: number): Array<Record<string, unknown>> {
  return ROWS.map((r, i) => ({ id: firstId + i, ...r.json }));
}

const columnsOf = (row: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(row).filter(([k]) => !k.startsWith('_tributary_')));
const byId = (a: Record<string, unknown>, b: Record<string, unknown>): number => Number(a.id) - Number(b.id);

it('full refresh (COPY) and standard incremental (queries, a BC cursor sent back each chunk) give BC values the AD form plus ` BC`', async () => {
  await createTable('bc_standard');
  const config = configFor(server, { replication_method: 'standard', chunk_size: 2, cursor_fields: { bc_standard: 'tz' } });
  const full = await readAll(config, await catalogFor(config, ['bc_standard'], 'full_refresh'));
  expect(full.records.map((r) => r.data).sort(byId)).toEqual(expected(1));

  // Ordered by tz in chunks of 2: each next query starts after the last row's tz, sent back as text.
  const incremental = await readAll(config, await catalogFor(config, ['bc_standard']));
  expect(incremental.records.map((r) => r.data).sort(byId)).toEqual(expected(1));
  // Resumed from its state: nothing more (the cursor holds the latest value, `infinity`).
  const resumed = await readAll(config, await catalogFor(config, ['bc_standard']), incremental.state);
  expect(resumed.records).toEqual([]);
});

it('a snapshot keyed on BC timestamps, resumed from each of its chunks, reads every row once', async () => {
  await sql.query('CREATE TABLE bc_keyed (at timestamptz PRIMARY KEY, n int)');
  await sql.query(
    `INSERT INTO bc_keyed VALUES ('4713-01-01 00:00:00+00 BC', 1), ('0044-03-15 12:34:56.123456+00 BC', 2), ('0001-01-01 00:00:00+05:45 BC', 3), ('2024-05-01 10:00:00+00', 4), ('10000-01-01 00:00:00+00', 5), ('infinity', 6)`,
  );
  const config = cdcConfigFor(server, 'bc_keyed', { chunk_size: 1 });
  const catalog = await catalogFor(config, ['bc_keyed']);
  const states = await snapshotStates(config, catalog);
  const want = ['4713-01-01T00:00:00Z BC', '0044-03-15T12:34:56.123456Z BC', '0002-12-31T18:15:00Z BC', '2024-05-01T10:00:00Z', '10000-01-01T00:00:00Z', 'infinity'];
  expect(states.length).toBeGreaterThanOrEqual(want.length);
  for (const [i, state] of states.slice(0, want.length).entries()) {
    // The state after i + 1 rows: the resume starts after that row's key, sent back as text.
    const rest = await readAll(config, catalog, state);
    expect(rest.records.map((r) => r.data.at)).toEqual(want.slice(i + 1));
  }
  await sql.query(`SELECT pg_drop_replication_slot('bc_keyed_slot')`);
});

/** The states of a CDC snapshot's checkpoints (global), one per chunk, in order. */
async function snapshotStates(config: PostgresConfig, catalog: ConfiguredAirbyteCatalog): Promise<SyncState[]> {
  const states: SyncState[] = [];
  for await (const m of expandRecordPages(postgresSource.read(createConnectorContext({}), config, catalog, { streams: {} }))) {
    if (m.kind !== 'global-checkpoint') continue;
    const state: SyncState = { shared: m.shared, streams: {} };
    for (const s of m.streams) state.streams[streamKey(s.stream, s.namespace)] = s.state;
    if (m.streams.every((s) => (s.state as { cdc?: string }).cdc === 'snapshot')) states.push(state);
  }
  return states;
}

it('CDC, default format: the snapshot and the stream give BC values the AD form plus ` BC`', async () => {
  await createTable('bc_cdc');
  const config = cdcConfigFor(server, 'bc_cdc', { chunk_size: 2 });
  const catalog = await catalogFor(config, ['bc_cdc']);
  const snapshot = await readAll(config, catalog);
  expect(snapshot.records.map((r) => r.data._tributary_op)).toEqual(ROWS.map(() => 'r'));
  expect(snapshot.records.map((r) => columnsOf(r.data)).sort(byId)).toEqual(expected(1));

  await insertRows('bc_cdc', 101);
  // An update and a delete: before-images (REPLICA IDENTITY FULL) carry the values too.
  await sql.query('ALTER TABLE bc_cdc REPLICA IDENTITY FULL');
  await sql.query('UPDATE bc_cdc SET id = 201 WHERE id = 101');
  await sql.query('DELETE FROM bc_cdc WHERE id = 102');
  const streamed = (await readAll(config, catalog, snapshot.state)).records.map((r) => r.data);
  expect(streamed.filter((r) => r._tributary_op === 'c').map(columnsOf)).toEqual(expected(101));
  const update = streamed.find((r) => r._tributary_op === 'u')!;
  expect(columnsOf(update)).toEqual({ ...expected(101)[0], id: 201 });
  expect(update._tributary_before).toEqual(expected(101)[0]);
  const deleted = streamed.find((r) => r._tributary_op === 'd')!;
  expect(columnsOf(deleted)).toEqual(expected(101)[1]);
  await sql.query(`SELECT pg_drop_replication_slot('bc_cdc_slot')`);
});

it('CDC, Debezium format: `after` and `before` of snapshot and streamed changes give BC values the AD form plus ` BC`', async () => {
  await createTable('bc_dbz');
  await sql.query('ALTER TABLE bc_dbz REPLICA IDENTITY FULL');
  const config = cdcConfigFor(server, 'bc_dbz', { output_format: 'debezium' });
  const catalog = await catalogFor(config, ['bc_dbz']);
  const snapshot = await readAll(config, catalog);
  const envelopes = (records: Array<{ data: RecordData }>): Array<{ op: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null }> =>
    records.map((r) => r.data as unknown as { op: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null });
  expect(envelopes(snapshot.records).map((e) => e.after!).sort(byId)).toEqual(expected(1));

  await insertRows('bc_dbz', 101);
  await sql.query('DELETE FROM bc_dbz WHERE id = 101');
  const streamed = envelopes((await readAll(config, catalog, snapshot.state)).records);
  expect(streamed.filter((e) => e.op === 'c').map((e) => e.after)).toEqual(expected(101));
  expect(streamed.find((e) => e.op === 'd')?.before).toEqual(expected(101)[0]);
  await sql.query(`SELECT pg_drop_replication_slot('bc_dbz_slot')`);
});

it('timestamptz text in other offsets (not printed in the UTC sessions the source opens): `±hh:mm`, BC kept last', () => {
  expect(timestamptzToIso('0044-03-15 17:30:00+05:30 BC')).toBe('0044-03-15T17:30:00+05:30 BC');
  expect(timestamptzToIso('2024-01-01 00:00:00-03 BC')).toBe('2024-01-01T00:00:00-03:00 BC');
  expect(timestamptzToIso('2024-01-01 00:00:00.5-03')).toBe('2024-01-01T00:00:00.5-03:00');
  expect(timestamptzToIso('-infinity')).toBe('-infinity');
});
