/**
 * An update that moved its row to another key and left a TOASTed field out is filled at
 * write time from the old key's latest row; when that row is itself an update that left
 * the field out, the new key's row kept listing it and point-in-time reads returned null.
 * Reads now continue the walk in the old key's older rows (and through chains of moves).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf } from '../src/index.js';
import { cdcFields, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-key-move-toast-walk-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, ...cdcFields });
const owner = { tenant_id: 't1', customer_id: 'c1' };
const big = 'x'.repeat(10_000);

const snapshot = (id: number, position: string, time: string): RecordData => ({ id, v: id, big, _tributary_op: 'r', _tributary_position: position, _tributary_commit_time: time, ...owner });
/** An update that left `big` out; `before` is the old key when it moved the row. */
const updated = (id: number, v: number, before: number | undefined, position: string, time: string): RecordData => ({
  id,
  v,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  ...(before !== undefined ? { _tributary_before: { id: before } } : {}),
  _tributary_unchanged: ['big'],
  ...owner,
});

/** The rows live as of `asOf`: [key, v, big's length or null, unchanged_fields]. */
const asOf = async (config: Record<string, unknown>, at: string) =>
  (await readLatestAsOf(config, { stream: 'items', asOf: at })).map((r) => [r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null), r.unchanged_fields]);

it('the old key’s latest row left the field out too: a read of the new key takes it from the old key’s older row', async () => {
  const config = { path: join(root, 'one-move') };
  expect(await writeSession(config, stream, [[snapshot(4, '0/1', '2026-01-01T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(33, 41, 4, '0/3', '2026-01-03T00:00:00Z')]])).toEqual([]);
  expect(await asOf(config, '2026-01-04T00:00:00Z')).toEqual([['33', 41, 10_000, ['big']]]);
  // Before the move: 4, filled from its own snapshot as before.
  expect(await asOf(config, '2026-01-02T12:00:00Z')).toEqual([['4', 40, 10_000, ['big']]]);
});

it('a chain of moves (4 → 33 → 60) with a field-omitting update in between', async () => {
  const config = { path: join(root, 'chain') };
  expect(await writeSession(config, stream, [[snapshot(4, '0/1', '2026-01-01T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(33, 41, 4, '0/3', '2026-01-03T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(33, 42, undefined, '0/4', '2026-01-04T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(60, 43, 33, '0/5', '2026-01-05T00:00:00Z')]])).toEqual([]);
  expect(await asOf(config, '2026-01-06T00:00:00Z')).toEqual([['60', 43, 10_000, ['big']]]);
  expect(await asOf(config, '2026-01-04T12:00:00Z')).toEqual([['33', 42, 10_000, ['big']]]);
  expect(await asOf(config, '2026-01-02T12:00:00Z')).toEqual([['4', 40, 10_000, ['big']]]);
});
