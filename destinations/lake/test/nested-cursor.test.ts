import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// A cursor field is a path (Airbyte's cursor_field): a nested one (`meta.updated`, a
// Debezium envelope's `source.lsn`) gave the envelope a position that the staging never
// stored, so every row's source_position was NULL and versions of one key within one event
// time fell back to the ingest order.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-nested-cursor-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

it('stores the position of a nested cursor field, and point-in-time reads order by it', async () => {
  const config = { path: join(root, 'lake') };
  const stream = keyedStream('deals', { event_time: { type: 'string' }, meta: { type: 'object', properties: { updated: { type: 'integer' } } } }, { cursorField: ['meta', 'updated'] });
  const T = '2026-03-01T10:00:00Z';
  // Two versions of one key at one event time, the newer (cursor 7) arriving first.
  expect(await writeSession({ ...config, streams: { deals: { event_time_field: 'event_time' } } }, stream, [[{ id: 1, tenant_id: 't', customer_id: 'c', event_time: T, meta: { updated: 7 } }], [{ id: 1, tenant_id: 't', customer_id: 'c', event_time: T, meta: { updated: 3 } }]])).toEqual([]);
  expect(await queryLake(config, 'SELECT source_position FROM deals ORDER BY ingest_time')).toEqual([{ source_position: '7' }, { source_position: '3' }]);
  const latest = await readLatestAsOf(config, { stream: 'deals' });
  expect(latest.map((r) => r.payload.meta)).toEqual([{ updated: 7 }]);
});
