import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf, readStreamRows } from '../src/index.js';
import { duckQuery, keyedStream, runCli, writeSession } from './helpers.js';

// Readers hand back what DuckDB holds, not what a JavaScript Date or double can hold: event
// times are stored to the microsecond (and compared so by as-of reads), DECIMALs can have 38
// digits, and a query can return values outside a Date's range.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3b-values-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { at: { type: 'string' } });

it('rows read back carry their event time to the microsecond, and an as-of read at that time includes them', async () => {
  const config = { path: join(root, 'micros'), streams: { orders: { event_time_field: 'at' } } };
  const records: RecordData[] = [
    { id: 1, tenant_id: 't', customer_id: 'c', at: '2024-01-01T00:00:00.000600Z' },
    { id: 2, tenant_id: 't', customer_id: 'c', at: '1969-12-31T23:59:59.998500Z' },
    { id: 3, tenant_id: 't', customer_id: 'c', at: '2024-01-01T00:00:00.250Z' },
  ];
  expect(await writeSession(config, stream, [records])).toEqual([]);
  // The independent reader: what the Parquet files hold.
  const stored = await duckQuery(`SELECT id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS t FROM read_parquet('${join(config.path, 'data', '**', '*.parquet')}', hive_partitioning = false) ORDER BY id`);
  expect(stored).toEqual([
    { id: 1, t: '2024-01-01T00:00:00.000600Z' },
    { id: 2, t: '1969-12-31T23:59:59.998500Z' },
    { id: 3, t: '2024-01-01T00:00:00.250000Z' },
  ]);
  const times = Object.fromEntries((await readStreamRows(config, { stream: 'orders' })).map((r) => [r.payload.id, r.event_time]));
  // Whole milliseconds keep the form toISOString gives them.
  expect(times).toEqual({ 1: '2024-01-01T00:00:00.000600Z', 2: '1969-12-31T23:59:59.998500Z', 3: '2024-01-01T00:00:00.250Z' });
  for (const row of await readStreamRows(config, { stream: 'orders' })) {
    const asOf = await readLatestAsOf(config, { stream: 'orders', asOf: row.event_time, keys: [row.entity_key] });
    expect(asOf.map((r) => r.event_time)).toEqual([row.event_time]);
  }
  expect((await queryLake(config, 'SELECT [max(event_time)] AS ts FROM orders'))[0]).toEqual({ ts: ['2024-01-01T00:00:00.250Z'] });
  expect((await queryLake(config, 'SELECT min(event_time) AS t FROM orders'))[0]).toEqual({ t: '1969-12-31T23:59:59.998500Z' });
});

it('lake query returns DECIMAL, TIMESTAMP_NS, BLOB, BIT, TIME and out-of-range times exactly, in the library and the CLI', async () => {
  const config = { path: join(root, 'types') };
  await writeSession(config, stream, [[{ id: 1, tenant_id: 't', customer_id: 'c', at: 'x' }]]);
  await writeFile(join(root, 'types.json'), JSON.stringify(config));
  const sql =
    "SELECT 123456789012345678901234.5678::DECIMAL(38,4) AS big_decimal, 1.5::DECIMAL(4,1) AS small_decimal, [0.25::DECIMAL(20,2)] AS decimals, " +
    "'2024-01-01 00:00:00.123456789'::TIMESTAMP_NS AS ns, TIMESTAMPTZ '2024-01-01 00:00:00.000001+00' AS tz, " +
    "'infinity'::TIMESTAMP AS inf, '-infinity'::DATE AS neg_inf_date, TIMESTAMP '290000-01-01 00:00:00' AS far, " +
    "'\\xAA\\x00'::BLOB AS bytes, '101'::BIT AS bits, TIME '12:34:56.789' AS clock, DATE '1969-07-20' AS day";
  const expected = {
    big_decimal: '123456789012345678901234.5678',
    small_decimal: 1.5,
    decimals: [0.25],
    ns: '2024-01-01T00:00:00.123456789Z',
    tz: '2024-01-01T00:00:00.000001Z',
    inf: 'infinity',
    neg_inf_date: '-infinity',
    far: '290000-01-01 00:00:00',
    bytes: '\\xAA\\x00',
    bits: '101',
    clock: '12:34:56.789',
    day: '1969-07-20T00:00:00.000Z',
  };
  expect(await queryLake(config, sql)).toEqual([expected]);
  const jsonl = await runCli(['lake', 'query', sql, '--config', 'types.json', '--format', 'jsonl'], root);
  expect(jsonl.stderr).toBe('');
  expect(JSON.parse(jsonl.stdout)).toEqual(expected);
});
