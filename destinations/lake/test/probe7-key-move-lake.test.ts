/**
 * A CDC update that moves a row to another primary key (PostgreSQL `UPDATE t SET id = 33
 * WHERE id = 4`: op `u`, the new row, `_tributary_before` holding the old key, or the whole
 * old row under REPLICA IDENTITY FULL) ends the old key at the update's position, as a CDC
 * delete of it would. Before, point-in-time reads kept returning the row under its old key
 * beside the same row under its new one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-key-move-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', {
  v: { type: 'integer' },
  _tributary_op: { type: 'string' },
  _tributary_position: { type: 'string' },
  _tributary_commit_time: { type: 'string' },
  _tributary_txid: { type: 'integer' },
  _tributary_before: { type: ['object', 'null'] },
});
const owner = { tenant_id: 't1', customer_id: 'c1' };

const snapshot = (id: number, v: number, position: string, time: string): RecordData => ({ id, v, _tributary_op: 'r', _tributary_position: position, _tributary_commit_time: time, ...owner });
const moved = (id: number, v: number, position: string, time: string, before: Record<string, unknown>, txid = 700): RecordData => ({
  id,
  v,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  _tributary_txid: txid,
  _tributary_before: before,
  ...owner,
});

/** The rows live as of `asOf` (default now): [key, op, v]. */
const live = async (config: Record<string, unknown>, asOf?: string) =>
  (await readLatestAsOf(config, { stream: 'items', ...(asOf !== undefined ? { asOf } : {}) })).map((r) => [r.entity_key, r.op, r.payload.v]);

const deletes = (config: Record<string, unknown>) =>
  queryLake(config, `SELECT entity_key, tenant_id, customer_id, source_position, CAST(source_txid AS VARCHAR) AS txid, CAST(event_time AS VARCHAR) AS event_time, CAST(before_image AS VARCHAR) AS before FROM events WHERE op = 'delete' ORDER BY source_position`);

for (const [name, before] of [
  ['the key only (REPLICA IDENTITY DEFAULT)', { id: 4 }],
  ['the whole old row (REPLICA IDENTITY FULL)', { id: 4, v: 4, ...owner }],
] as const) {
  it(`an update that moves the row to another key ends the old key; before-image: ${name}`, async () => {
    const config = { path: join(root, `moved-${before.v === undefined ? 'default' : 'full'}`) };
    const rejected = await writeSession(config, stream, [[snapshot(4, 4, '0/1', '2026-01-01T00:00:00Z'), moved(33, 4, '0/2', '2026-01-02T00:00:00Z', before)]]);
    expect(rejected).toEqual([]);
    // After the update: the row under its new key only (the old key was a ghost).
    expect(await live(config)).toEqual([['33', 'update', 4]]);
    // Between the snapshot and the update: the row under its old key only.
    expect(await live(config, '2026-01-01T12:00:00Z')).toEqual([['4', 'snapshot', 4]]);
    // The delete of key 4: at the update's position, commit time and txid, with the old row's tenant and customer.
    expect(await deletes(config)).toEqual([{ entity_key: '4', tenant_id: 't1', customer_id: 'c1', source_position: '0/2', txid: '700', event_time: '2026-01-02 00:00:00', before: JSON.stringify(before) }]);
    // Read by customer id (old and new row share it): the update, staged after the delete at the same position, is the latest.
    expect((await readLatestAsOf(config, { stream: 'items', key: 'customer_id' })).map((r) => [r.customer_id, r.entity_key, r.op])).toEqual([['c1', '33', 'update']]);
  });
}

it('a key moved and later moved back (4 → 33 → 4) is live under 4 only, and each step reads as it was', async () => {
  const config = { path: join(root, 'back') };
  const rejected = await writeSession(config, stream, [
    [snapshot(4, 4, '0/1', '2026-01-01T00:00:00Z'), moved(33, 5, '0/2', '2026-01-02T00:00:00Z', { id: 4 })],
    // A later batch: the delete of 33 takes its tenant and customer from the staged update.
    [moved(4, 6, '0/3', '2026-01-03T00:00:00Z', { id: 33 }, 701)],
  ]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([['4', 'update', 6]]);
  expect(await live(config, '2026-01-02T12:00:00Z')).toEqual([['33', 'update', 5]]);
  expect(await live(config, '2026-01-01T12:00:00Z')).toEqual([['4', 'snapshot', 4]]);
  expect((await deletes(config)).map((d) => [d.entity_key, d.source_position, d.tenant_id, d.customer_id])).toEqual([
    ['4', '0/2', 't1', 'c1'],
    ['33', '0/3', 't1', 'c1'],
  ]);
});

it('the batch replayed after a crash adds no row: the delete of the old key is recognised as a replay', async () => {
  const config = { path: join(root, 'replay') };
  const batch = [snapshot(4, 4, '0/1', '2026-01-01T00:00:00Z'), moved(33, 4, '0/2', '2026-01-02T00:00:00Z', { id: 4 })];
  // Committed, then the sync crashed (not completed).
  expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  // A resume that reads only the update again (its checkpoint was after the snapshot): the
  // delete's tenant and customer come from the lake's snapshot row, as they came from the batch.
  expect(await writeSession(config, stream, [batch.slice(1)], false)).toEqual([]);
  // A resume that reads the whole batch again.
  expect(await writeSession(config, stream, [batch])).toEqual([]);
  const rows = await queryLake(config, 'SELECT entity_key, op, source_position FROM events ORDER BY source_position, op');
  expect(rows).toEqual([
    { entity_key: '4', op: 'snapshot', source_position: '0/1' },
    { entity_key: '4', op: 'delete', source_position: '0/2' },
    { entity_key: '33', op: 'update', source_position: '0/2' },
  ]);
  expect(await live(config)).toEqual([['33', 'update', 4]]);
});

it('an old key with no earlier row stores nothing and never gets the update refused; refused records keep their batch positions', async () => {
  const config = { path: join(root, 'unknown-old-key') };
  const rejected = await writeSession(config, stream, [
    [
      snapshot(4, 4, '0/1', '2026-01-01T00:00:00Z'),
      moved(99, 1, '0/2', '2026-01-02T00:00:00Z', { id: 98 }), // 98 was never stored: nothing to end
      moved(33, 4, '0/3', '2026-01-02T00:00:00Z', { id: 4 }),
      { id: 50, v: 1, _tributary_op: 'c', _tributary_position: '0/4', _tributary_commit_time: '2026-01-02T00:00:00Z' }, // no tenant: refused
    ],
  ]);
  expect(rejected.map((r) => [r.index, r.reason.slice(0, 12)])).toEqual([[3, 'no tenant id']]);
  expect(await live(config)).toEqual([
    ['33', 'update', 4],
    ['99', 'update', 1],
  ]);
  // Nothing quarantined for the delete of 98, only the refused record.
  expect(await queryLake(config, 'SELECT count(*) AS n FROM quarantine')).toEqual([{ n: 1 }]);
});

it('with an event-time field, the delete of the old key is dated by the update, not by the old row the before-image holds', async () => {
  const config = { path: join(root, 'event-time-field'), streams: { items: { event_time_field: 'updated_at' } } };
  const timed = keyedStream('items', { v: { type: 'integer' }, updated_at: { type: 'string' }, _tributary_op: { type: 'string' }, _tributary_position: { type: 'string' }, _tributary_before: { type: ['object', 'null'] } });
  const old = { id: 4, v: 4, updated_at: '2026-01-01T00:00:00Z', ...owner };
  const rejected = await writeSession(config, timed, [
    [
      { ...old, _tributary_op: 'r', _tributary_position: '0/1' },
      { id: 33, v: 4, updated_at: '2026-01-02T00:00:00Z', _tributary_op: 'u', _tributary_position: '0/2', _tributary_before: old, ...owner },
    ],
  ]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([['33', 'update', 4]]);
  expect(await live(config, '2026-01-01T12:00:00Z')).toEqual([['4', 'snapshot', 4]]);
});
