/**
 * Point-in-time reads fill a TOASTed field a CDC update left out (`unchanged_fields`) from
 * the entity's older rows and, when the row came from another key or tenant (key-moves.ts),
 * continue in the old key's rows. The walk followed the newest update with a before-image,
 * taking it for the move; under REPLICA IDENTITY FULL every update has one, so after a
 * plain update the walk looked for the delete of a move at that update's position, found
 * none and gave up: the field read as null. Found by the model test
 * (probe9-model-cdc.test.ts, seed 6) on 2026-11-28.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf } from '../src/index.js';
import { cdcFields, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-full-identity-walk-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, ...cdcFields });
const big = 'x'.repeat(5000);

/** A CDC update that left the TOASTed `big` out; `before` as the replica identity sends it. */
const updated = (row: Record<string, unknown>, before: Record<string, unknown> | null, position: string, time: string): RecordData => ({
  ...row,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  _tributary_before: before,
  _tributary_unchanged: ['big'],
});

/** The rows live as of `at`: [tenant, key, v, big's length or null]. */
const asOf = async (config: Record<string, unknown>, at: string) =>
  (await readLatestAsOf(config, { stream: 'items', asOf: at })).map((r) => [r.tenant_id, r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null)]);

it('a key move whose old row lacked the field, then a plain update under REPLICA IDENTITY FULL: the read still walks into the old key', async () => {
  const config = { path: join(root, 'key-move') };
  const owner = { tenant_id: 't1', customer_id: 'c1' };
  expect(await writeSession(config, stream, [[{ id: 4, v: 1, big, ...owner, _tributary_op: 'r', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z' }]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated({ id: 4, v: 2, ...owner }, null, '0/2', '2026-01-02T00:00:00Z')]])).toEqual([]);
  // UPDATE items SET id = 33 (DEFAULT: the old key alone); then ALTER TABLE items REPLICA IDENTITY FULL and a plain update.
  expect(await writeSession(config, stream, [[updated({ id: 33, v: 3, ...owner }, { id: 4 }, '0/3', '2026-01-03T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated({ id: 33, v: 4, ...owner }, { id: 33, v: 3, big, ...owner }, '0/4', '2026-01-04T00:00:00Z')]])).toEqual([]);
  expect(await asOf(config, '2026-01-05T00:00:00Z')).toEqual([['t1', '33', 4, 5000]]);
  expect(await asOf(config, '2026-01-03T12:00:00Z')).toEqual([['t1', '33', 3, 5000]]);
});

it('two tenant moves in one batch, then a plain update (all REPLICA IDENTITY FULL, `big` never sent again)', async () => {
  const config = { path: join(root, 'tenant-moves') };
  const row = (v: number, tenant: string): Record<string, unknown> => ({ id: 7, v, tenant_id: tenant, customer_id: 'c2' });
  expect(await writeSession(config, stream, [[{ ...row(1, 't3'), big, _tributary_op: 'c', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z', _tributary_before: null }]])).toEqual([]);
  expect(
    await writeSession(config, stream, [
      [
        updated(row(2, 't3'), null, '0/2', '2026-01-02T00:00:00Z'),
        updated(row(3, 't1'), { ...row(2, 't3'), big }, '0/3', '2026-01-02T01:00:00Z'),
        updated(row(4, 't2'), { ...row(3, 't1'), big }, '0/4', '2026-01-02T01:00:00Z'),
        updated(row(5, 't2'), { ...row(4, 't2'), big }, '0/5', '2026-01-03T00:00:00Z'),
      ],
    ]),
  ).toEqual([]);
  expect(await asOf(config, '2026-01-04T00:00:00Z')).toEqual([['t2', '7', 5, 5000]]);
  expect(await asOf(config, '2026-01-02T12:00:00Z')).toEqual([['t2', '7', 4, 5000]]);
});
