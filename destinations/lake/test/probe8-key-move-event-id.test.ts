/**
 * With `event_id_field` set, the delete the lake adds for a moved key (key-moves.ts) took
 * the update's id plus `:moved-key-delete` (a string). When the field's column is an
 * integer (a table whose event id is a bigint), the column refused that string and the
 * delete was lost: the old key stayed live beside the new one. An integer id now gives an
 * integer delete id (−id − 1: deterministic, so a replay after a crash gets it again, and
 * never the update's own).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { cdcFields, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-key-move-event-id-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const owner = { tenant_id: 't1', customer_id: 'c1' };
const lakeConfig = (name: string) => ({ path: join(root, name), streams: { items: { event_id_field: 'seq' } } });

const snapshot = (id: number, seq: unknown, position: string, time: string): RecordData => ({ id, seq, v: id, _tributary_op: 'r', _tributary_position: position, _tributary_commit_time: time, ...owner });
const moved = (id: number, seq: unknown, position: string, time: string, before: Record<string, unknown>): RecordData => ({ id, seq, v: id, _tributary_op: 'u', _tributary_position: position, _tributary_commit_time: time, _tributary_before: before, ...owner });

const live = async (config: Record<string, unknown>) => (await readLatestAsOf(config, { stream: 'items' })).map((r) => [r.entity_key, r.op, r.event_id]);
const rows = (config: Record<string, unknown>) => queryLake(config, `SELECT entity_key, op, event_id, CAST(seq AS VARCHAR) AS seq, source_position FROM events ORDER BY source_position, op`);

for (const [name, seqSchema] of [
  ['declared integer (bigint)', { type: 'integer' }],
  // As the PostgreSQL source declares int8 (an integer, or decimal text beyond ±2^53).
  ['declared int8 with decimal text', { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' }],
  // Not declared: the column's type comes from the batch's values, the delete's included.
  ['undeclared', undefined],
] as const) {
  it(`an integer event id field (${name}): the delete of the moved key is stored with an integer id, and replayed it is recognised`, async () => {
    const stream = keyedStream('items', { v: { type: 'integer' }, ...(seqSchema !== undefined ? { seq: seqSchema } : {}), ...cdcFields });
    const config = lakeConfig(name.replace(/\W+/g, '-'));
    const batch = [snapshot(4, 1, '0/1', '2026-01-01T00:00:00Z'), moved(33, 2, '0/2', '2026-01-02T00:00:00Z', { id: 4 })];
    // Committed, then the sync crashed (not completed): the resume reads the batch again.
    expect(await writeSession(config, stream, [batch], false)).toEqual([]);
    expect(await writeSession(config, stream, [batch])).toEqual([]);
    expect(await rows(config)).toEqual([
      { entity_key: '4', op: 'snapshot', event_id: '1', seq: '1', source_position: '0/1' },
      { entity_key: '4', op: 'delete', event_id: '-3', seq: '-3', source_position: '0/2' },
      { entity_key: '33', op: 'update', event_id: '2', seq: '2', source_position: '0/2' },
    ]);
    expect(await live(config)).toEqual([['33', 'update', '2']]);
  });
}

it('an int8 event id beyond ±2^53 (decimal text): the delete’s id is −id − 1 to the last digit', async () => {
  const stream = keyedStream('items', { v: { type: 'integer' }, seq: { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' }, ...cdcFields });
  const config = lakeConfig('int8-text');
  const batch = [snapshot(4, '9007199254740993', '0/1', '2026-01-01T00:00:00Z'), moved(33, '9223372036854775807', '0/2', '2026-01-02T00:00:00Z', { id: 4 })];
  expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  expect(await writeSession(config, stream, [batch])).toEqual([]);
  expect((await rows(config)).map((r) => [r.entity_key, r.op, r.event_id, r.seq])).toEqual([
    ['4', 'snapshot', '9007199254740993', '9007199254740993'],
    ['4', 'delete', '-9223372036854775808', '-9223372036854775808'],
    ['33', 'update', '9223372036854775807', '9223372036854775807'],
  ]);
});

it('a string event id field keeps the suffixed id', async () => {
  const stream = keyedStream('items', { v: { type: 'integer' }, seq: { type: 'string' }, ...cdcFields });
  const config = lakeConfig('string');
  const batch = [snapshot(4, 'e1', '0/1', '2026-01-01T00:00:00Z'), moved(33, 'e2', '0/2', '2026-01-02T00:00:00Z', { id: 4 })];
  expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  expect(await writeSession(config, stream, [batch])).toEqual([]);
  expect((await rows(config)).map((r) => [r.entity_key, r.op, r.event_id])).toEqual([
    ['4', 'snapshot', 'e1'],
    ['4', 'delete', 'e2:moved-key-delete'],
    ['33', 'update', 'e2'],
  ]);
});
