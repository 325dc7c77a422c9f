/**
 * KNOWN BUG, not fixed yet: both tests are `it.fails`, so they pass while the bug is there and
 * fail once it is fixed (then make them plain `it`). Found by a probe on 2026-11-28:
 * a sync that crashed after its commit is replayed by its resume, which drops the records it
 * already stored when their event id and content fingerprint match a stored row
 * (replay-window.ts). Retention running between the crash and the resume defers the crashed
 * sync's files, but it removes expired rows of earlier, completed syncs — among them the old
 * key's latest row, from which the write time filled the moved update's TOASTed fields
 * (key-moves.ts `filledFromOldRow`) and attributed the synthesized delete. On the resume the
 * lookup finds no earlier row: the update is staged unfilled (`big` null, `_tributary_unchanged`
 * ['big']), its fingerprint differs from the stored, filled copy, and it is stored a second
 * time (same event id and position). Reads still fill `big` from the first copy, but the
 * stream holds a duplicate row and the latest row now says `unchanged_fields: ['big']`.
 *
 * The same cause for a plain CDC delete under REPLICA IDENTITY DEFAULT: its customer id and
 * tenant were attributed from the key's earlier row; replayed after retention removed that
 * row, the delete is refused and quarantined (reported to the runtime as rejected) although
 * the lake already stored it.
 *
 * Proposed fix (session.ts / delete-attribution.ts): when a lookup for an earlier row misses,
 * take the stored copy of the very record from the replay window's files (same entity key,
 * same CDC position and op: the delete itself, or for a moved update the update's own stored
 * row, which holds the filled fields), so that the replay reproduces the envelope and payload
 * it stored and is recognised.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { applyRetention, readLatestAsOf, readStreamRows } from '../src/index.js';
import { cdcFields, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-moves-bug-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, ...cdcFields });
const owner = { tenant_id: 't1', customer_id: 'c1' };
const big = 'x'.repeat(10_000);
const inserted: RecordData = { id: 4, v: 4, big, _tributary_op: 'c', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z', ...owner };
/** `UPDATE items SET id = 33 WHERE id = 4` under REPLICA IDENTITY DEFAULT: the old key alone, TOASTed `big` left out. */
const moved: RecordData = { id: 33, v: 33, _tributary_op: 'u', _tributary_position: '0/2', _tributary_commit_time: '2026-03-01T00:00:00Z', _tributary_before: { id: 4 }, _tributary_unchanged: ['big'], ...owner };

it.fails('KNOWN BUG, fails until fixed: a key move replayed after retention removed the old key’s row is recognised as a replay (no second copy of the update)', async () => {
  const config = { path: join(root, 'move') };
  expect(await writeSession(config, stream, [[inserted]])).toEqual([]);
  // The crashed sync: committed (the update filled from row 0/1), never completed.
  expect(await writeSession(config, stream, [[moved]], false)).toEqual([]);
  const latestBefore = (await readLatestAsOf(config, { stream: 'items' })).map((r) => [r.entity_key, r.payload.v, String(r.payload.big).length, r.unchanged_fields]);
  expect(latestBefore).toEqual([['33', 33, 10_000, null]]);
  // Retention expires the completed sync's row of key 4 (January); the crashed sync's files are deferred.
  expect(await applyRetention(config, { before: '2026-02-01T00:00:00Z', graceMs: 0 })).toMatchObject({ rowsRemoved: 1 });
  // The resume replays the change and completes.
  expect(await writeSession(config, stream, [[moved]])).toEqual([]);
  const rows = (await readStreamRows(config, { stream: 'items' })).map((r) => [r.entity_key, r.op, r.source_position, typeof r.payload.big === 'string' ? r.payload.big.length : r.payload.big, r.unchanged_fields]);
  expect(rows.sort()).toEqual([
    ['33', 'update', '0/2', 10_000, null],
    ['4', 'delete', '0/2', null, null],
  ]);
  expect((await readLatestAsOf(config, { stream: 'items' })).map((r) => [r.entity_key, r.payload.v, String(r.payload.big).length, r.unchanged_fields])).toEqual(latestBefore);
});

it.fails('KNOWN BUG, fails until fixed: a plain CDC delete replayed after retention removed its key’s row is recognised as a replay, not refused', async () => {
  const config = { path: join(root, 'delete') };
  expect(await writeSession(config, stream, [[inserted]])).toEqual([]);
  const deleted: RecordData = { id: 4, _tributary_op: 'd', _tributary_position: '0/2', _tributary_commit_time: '2026-03-01T00:00:00Z', _tributary_before: { id: 4 } };
  expect(await writeSession(config, stream, [[deleted]], false)).toEqual([]);
  await applyRetention(config, { before: '2026-02-01T00:00:00Z', graceMs: 0 });
  expect(await writeSession(config, stream, [[deleted]])).toEqual([]);
  expect((await readStreamRows(config, { stream: 'items' })).map((r) => [r.entity_key, r.op, r.tenant_id, r.customer_id])).toEqual([['4', 'delete', 't1', 'c1']]);
});
