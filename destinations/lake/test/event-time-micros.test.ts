import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// Event times are stored to the microsecond: fraction digits of an ISO date-time beyond the
// millisecond (PostgreSQL prints microseconds) were cut, so two changes 0.5 ms apart had
// one event time and the point-in-time read ordered them by position instead of by time.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-micros-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { seq: { type: 'integer' }, updated_at: { type: 'string' }, amount: { type: 'integer' } }, { cursorField: ['seq'] });

it('an ISO event time keeps its microseconds (offset forms too), and the latest row is the latest in time', async () => {
  const config = { path: join(root, 'lake'), streams: { orders: { event_time_field: 'updated_at' } } };
  const row = (seq: number, updatedAt: string, amount: number) => ({ id: 1, tenant_id: 't1', customer_id: 'c1', seq, updated_at: updatedAt, amount });
  await writeSession(config, stream, [
    [
      // Later in time, earlier by cursor.
      row(1, '2026-03-01T10:00:00.000600Z', 600),
      row(2, '2026-03-01T10:00:00.000100Z', 100),
      // Same instants and digits the lake keeps, written otherwise.
      row(3, '2026-03-01T11:00:00.0003+01:00', 300),
      row(4, '2026-03-01T10:00:00.000250999Z', 250),
      row(5, '2026-03-01T10:00:00.5+00:00', 500_000),
      row(6, '2016-12-31T23:59:60.5Z', -1),
    ],
  ]);
  const stored = await queryLake(config, 'SELECT amount, epoch_us(event_time) % 1000000 AS micros FROM orders ORDER BY seq');
  expect(stored.map((r) => [r.amount, r.micros])).toEqual([
    [600, 600],
    [100, 100],
    [300, 300],
    [250, 251],
    [500_000, 500_000],
    [-1, 999_000],
  ]);
  const asOf = async (at: string) => (await readLatestAsOf(config, { stream: 'orders', asOf: at })).map((r) => r.payload.amount);
  expect(await asOf('2026-03-01T10:00:00.000700Z')).toEqual([600]);
  expect(await asOf('2026-03-01T10:00:00.000200Z')).toEqual([100]);
});
