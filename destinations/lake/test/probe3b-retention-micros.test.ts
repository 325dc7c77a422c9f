import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyRetention, readStreamRows } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// Retention drops a file only when every event in it is before the cutoff. Event times and
// cutoffs are read to the microsecond, while the log records each file's latest event time
// in whole milliseconds (cut, not rounded up): a file whose latest event was a fraction of a
// millisecond after the cutoff, in the cutoff's own millisecond, was dropped.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3b-retention-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { at: { type: 'string' } });

it('a file whose latest event is after the cutoff, in the same millisecond, stays; one wholly before it goes', async () => {
  const config = { path: join(root, 'lake'), partitioning: 'tenant', streams: { orders: { event_time_field: 'at' } } };
  // One file per tenant (partitioning by tenant only).
  expect(
    await writeSession(config, stream, [
      [
        { id: 1, tenant_id: 'after', customer_id: 'c', at: '2024-01-01T00:00:00.000900Z' },
        { id: 2, tenant_id: 'before', customer_id: 'c', at: '2024-01-01T00:00:00.000700Z' },
        { id: 3, tenant_id: 'older', customer_id: 'c', at: '2023-12-31T23:59:59.999999Z' },
      ],
    ]),
  ).toEqual([]);
  const cutoff = '2024-01-01T00:00:00.000800Z';
  // The independent reader: which rows are before the cutoff.
  const before = await duckQuery(
    `SELECT tenant_id FROM read_parquet('${join(config.path, 'data', '**', '*.parquet')}', hive_partitioning = false) WHERE event_time < TIMESTAMP '2024-01-01 00:00:00.000800' ORDER BY tenant_id`,
  );
  expect(before.map((r) => r.tenant_id)).toEqual(['before', 'older']);

  const result = await applyRetention(config, { before: cutoff, graceMs: 0 });
  const left = await readStreamRows(config, { stream: 'orders' });
  expect(left.map((r) => r.tenant_id)).toContain('after');
  // `before` (700 µs, in the cutoff's millisecond) may stay: retention decides by whole milliseconds, never dropping a later event.
  expect(left.map((r) => r.tenant_id)).not.toContain('older');
  expect(result.filesRemoved).toBe(3 - left.length);
});
