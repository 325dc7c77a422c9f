/**
 * A CDC update that moves a row to another primary key and leaves fields out
 * (`_tributary_unchanged`: PostgreSQL under REPLICA IDENTITY DEFAULT does not send a
 * TOASTed column the update did not change). Reads fill such fields from earlier rows of the
 * same key, but the new key has none: the read returned them as null. The lake now fills
 * them at write time from the latest earlier row of the old key.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { cdcFields, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-key-move-toast-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, doc: { type: ['object', 'null'] }, ...cdcFields });
const owner = { tenant_id: 't1', customer_id: 'c1' };
const big = 'x'.repeat(10_000);
const doc = { a: [1, 2], b: 'é' };

const inserted = (id: number, position: string, time: string, fields: Record<string, unknown> = { big, doc }): RecordData => ({ id, v: id, ...fields, _tributary_op: 'c', _tributary_position: position, _tributary_commit_time: time, ...owner });
/** An update that left `unchanged` out (they are absent from the record). */
const updated = (id: number, before: number | undefined, position: string, time: string, unchanged: string[] = ['big', 'doc']): RecordData => ({
  id,
  v: id,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  ...(before !== undefined ? { _tributary_before: { id: before } } : {}),
  _tributary_unchanged: unchanged,
  ...owner,
});

/** The rows live now: [key, v, big's length or null, doc, unchanged_fields]. */
const live = async (config: Record<string, unknown>, stream = 'items') =>
  (await readLatestAsOf(config, { stream })).map((r) => [r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null), r.payload.doc ?? null, r.unchanged_fields]);

it('the old key’s row in an earlier session: the moved row is stored with its values', async () => {
  const config = { path: join(root, 'earlier-session') };
  expect(await writeSession(config, stream, [[inserted(4, '0/1', '2026-01-01T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(33, 4, '0/2', '2026-01-02T00:00:00Z')]])).toEqual([]);
  expect(await live(config)).toEqual([['33', 33, 10_000, doc, null]]);
});

it('the old key’s row in an earlier batch of the session, and in the same batch', async () => {
  const config = { path: join(root, 'same-session') };
  const rejected = await writeSession(config, stream, [
    [inserted(4, '0/1', '2026-01-01T00:00:00Z')],
    [updated(33, 4, '0/2', '2026-01-02T00:00:00Z'), inserted(5, '0/3', '2026-01-02T00:00:00Z', { big: 'y'.repeat(5000), doc: null }), updated(50, 5, '0/4', '2026-01-03T00:00:00Z')],
  ]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([
    ['33', 33, 10_000, doc, null],
    ['50', 50, 5000, null, null],
  ]);
});

it('moved twice in one batch (4 → 33 → 60): the second move takes the values the first one was filled with', async () => {
  const config = { path: join(root, 'twice') };
  expect(await writeSession(config, stream, [[inserted(4, '0/1', '2026-01-01T00:00:00Z')]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(33, 4, '0/2', '2026-01-02T00:00:00Z'), updated(60, 33, '0/3', '2026-01-03T00:00:00Z')]])).toEqual([]);
  expect(await live(config)).toEqual([['60', 60, 10_000, doc, null]]);
});

it('a field the old key’s row does not hold either stays listed; an old key with no row leaves the update as it came', async () => {
  const config = { path: join(root, 'not-held') };
  expect(await writeSession(config, stream, [[inserted(4, '0/1', '2026-01-01T00:00:00Z', { doc })]])).toEqual([]);
  // An update of 4 that sends `doc` and leaves `big` out.
  expect(await writeSession(config, stream, [[{ ...updated(4, undefined, '0/2', '2026-01-02T00:00:00Z', ['big']), doc }]])).toEqual([]);
  expect(await writeSession(config, stream, [[updated(33, 4, '0/3', '2026-01-03T00:00:00Z'), updated(70, 7, '0/4', '2026-01-03T00:00:00Z')]])).toEqual([]);
  // 4's latest row listed `big` itself: 33 keeps listing it; `doc` is filled.
  expect(await live(config)).toEqual([
    ['33', 33, null, doc, ['big']],
    ['70', 70, null, null, ['big', 'doc']],
  ]);
});

it('a stream whose deletes need no attribution (customer id = key, constant tenant) fills too', async () => {
  const config = { path: join(root, 'no-attribution'), streams: { plain: { tenant_id: 't1' } } };
  const plain = { ...keyedStream('plain', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, doc: { type: ['object', 'null'] }, ...cdcFields }), jsonSchema: { type: 'object', properties: { id: { type: 'integer' }, v: { type: 'integer' }, big: { type: ['string', 'null'] }, doc: { type: ['object', 'null'] }, ...cdcFields } } };
  const strip = (r: RecordData): RecordData => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'tenant_id' && k !== 'customer_id'));
  expect(await writeSession(config, plain, [[strip(inserted(4, '0/1', '2026-01-01T00:00:00Z'))]])).toEqual([]);
  expect(await writeSession(config, plain, [[strip(updated(33, 4, '0/2', '2026-01-02T00:00:00Z'))]])).toEqual([]);
  expect(await live(config, 'plain')).toEqual([['33', 33, 10_000, doc, null]]);
});

it('the batch replayed after a crash is recognised: the filled update is the same again', async () => {
  const config = { path: join(root, 'replay') };
  expect(await writeSession(config, stream, [[inserted(4, '0/1', '2026-01-01T00:00:00Z'), inserted(5, '0/2', '2026-01-01T00:00:00Z')]])).toEqual([]);
  // Old rows in the lake (4) and in the batch (5); committed, then the sync crashed (not completed).
  const batch = [updated(33, 4, '0/3', '2026-01-02T00:00:00Z'), inserted(6, '0/4', '2026-01-02T00:00:00Z'), updated(60, 6, '0/5', '2026-01-03T00:00:00Z')];
  expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  // The resume reads the batch again, then only its last update (the old row 6 now in the lake).
  expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  expect(await writeSession(config, stream, [batch.slice(2)])).toEqual([]);
  const rows = await queryLake(config, 'SELECT entity_key, op, source_position, length(big) AS big FROM events ORDER BY source_position, op');
  expect(rows).toEqual([
    { entity_key: '4', op: 'insert', source_position: '0/1', big: 10_000 },
    { entity_key: '5', op: 'insert', source_position: '0/2', big: 10_000 },
    { entity_key: '4', op: 'delete', source_position: '0/3', big: null },
    { entity_key: '33', op: 'update', source_position: '0/3', big: 10_000 },
    { entity_key: '6', op: 'insert', source_position: '0/4', big: 10_000 },
    { entity_key: '6', op: 'delete', source_position: '0/5', big: null },
    { entity_key: '60', op: 'update', source_position: '0/5', big: 10_000 },
  ]);
  expect(await live(config)).toEqual([
    ['33', 33, 10_000, doc, null],
    ['5', 5, 10_000, doc, null],
    ['60', 60, 10_000, doc, null],
  ]);
});
