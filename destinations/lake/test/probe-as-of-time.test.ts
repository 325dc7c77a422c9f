import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// Point-in-time reads count the rows with event_time ≤ asOf, at the precision and over the
// range of dates the lake stores (microseconds, ±8.64e15 ms).
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe-as-of-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { at: { type: ['string', 'number'] } });

it('as of a time with a fraction of a millisecond, or after the year 9999, counts the rows at that very time', async () => {
  const config = { path: join(root, 'lake'), streams: { orders: { event_time_field: 'at' } } };
  const records: RecordData[] = [
    { id: 1, tenant_id: 't', customer_id: 'c', at: 1700000000000.5 },
    { id: 2, tenant_id: 't', customer_id: 'c', at: '+012000-06-01T00:00:00Z' },
    { id: 3, tenant_id: 't', customer_id: 'c', at: 8.64e15 },
  ];
  expect(await writeSession(config, stream, [records])).toEqual([]);
  // Stored to the microsecond: 1700000000000.5 ms is …000500 µs.
  const stored = await duckQuery(`SELECT id, epoch_us(event_time) AS us FROM read_parquet('${join(config.path, 'data', '**', '*.parquet')}', hive_partitioning = false) ORDER BY id`);
  expect(stored[0]).toEqual({ id: 1, us: 1700000000000500 });
  const ids = async (asOf: string | number): Promise<unknown[]> => (await readLatestAsOf(config, { stream: 'orders', asOf })).map((r) => r.payload.id);
  expect(await ids(1700000000000.5)).toEqual([1]);
  expect(await ids(1700000000000.4)).toEqual([]);
  expect(await ids('+012000-06-01T00:00:00Z')).toEqual([1, 2]);
  expect(await ids(8.64e15)).toEqual([1, 2, 3]);
  await expect(readLatestAsOf(config, { stream: 'orders', asOf: 1e20 })).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/outside the range of dates/) });
});
