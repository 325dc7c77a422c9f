import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readLatestAsOf } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// Event times far from 1970 (beyond 2^53 µs, ~285 years) were converted to microseconds as a
// DOUBLE product, rounded to a multiple of 2–16 µs: `5000-01-01T00:00:00.001Z` was stored as
// `…00.000992`. And beyond 2^43 ms (years 1691–2248) a double of ms cannot hold the text's
// microseconds: added anyway, `9999-12-31T23:59:59.999999Z` rounded up to year 10000, into
// another day's partition. Now whole milliseconds are exact everywhere, and outside 1691–2248
// the digits below the millisecond are dropped (never rounded into the next millisecond).
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-far-times-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('far', { at: { type: 'string' } });
const times = [
  // [event time text, stored as (DuckDB's strftime)]
  ['5000-01-01T00:00:00.001Z', '5000-01-01 00:00:00.001000'],
  ['9999-12-31T23:59:59.999Z', '9999-12-31 23:59:59.999000'],
  ['9999-12-31T23:59:59.999999Z', '9999-12-31 23:59:59.999000'],
  ['2300-06-01T12:00:00.000123Z', '2300-06-01 12:00:00.000000'],
  ['1500-06-01T12:00:00.000999Z', '1500-06-01 12:00:00.000000'],
  ['2200-06-01T12:00:00.000123Z', '2200-06-01 12:00:00.000123'],
  ['1700-06-01T12:00:00.000123Z', '1700-06-01 12:00:00.000123'],
] as const;

it('event times centuries from 1970 keep their millisecond and their day; microseconds where a double holds them', async () => {
  const path = join(root, 'lake');
  const config = { path, streams: { far: { event_time_field: 'at' } } };
  const records = times.map(([at], i) => ({ id: i, tenant_id: 't1', customer_id: 'c1', at }));
  expect(await writeSession(config, stream, [records])).toEqual([]);
  // Read by an independent DuckDB from the Parquet files, with the partition directory of each row.
  const rows = await duckQuery(
    `SELECT id, strftime(event_time, '%Y-%m-%d %H:%M:%S.%f') AS stored, event_date::VARCHAR AS event_date FROM read_parquet('${path}/data/far/*/*/*.parquet', hive_partitioning = true) ORDER BY id`,
  );
  expect(rows.map((r) => [r.stored, String(r.event_date)])).toEqual(times.map(([, stored]) => [stored, stored.slice(0, 10)]));
  expect((await readdir(join(path, 'data/far/tenant_id=t1'))).sort()).toEqual([...new Set(times.map(([, s]) => `event_date=${s.slice(0, 10)}`))].sort());
  // An as-of time is read by the same rule: the row at 5000-01-01T00:00:00.001Z is in as of that instant, not before it.
  const asOf = async (at: string) => (await readLatestAsOf(config, { stream: 'far', asOf: at, keys: ['0'] })).map((r) => r.payload.id);
  expect(await asOf('5000-01-01T00:00:00.001Z')).toEqual([0]);
  expect(await asOf('5000-01-01T00:00:00.000Z')).toEqual([]);
});
