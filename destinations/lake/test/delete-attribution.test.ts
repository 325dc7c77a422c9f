import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DestinationStream, RecordData } from '@tributary/core';
import { readLatestAsOf, readStreamRows } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// Under PostgreSQL's default replica identity a CDC delete carries the key columns only.
// Such a delete takes the customer id and tenant of the latest earlier row of its key (in
// its batch, staged or written by the same sync, or in the lake), so that point-in-time
// reads hide the deleted row. Before, it was quarantined ("no customer id") and the row
// stayed live; with `default_tenant` set it went to that tenant, where it hid nothing.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-delete-attribution-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

// A CDC stream as the PostgreSQL source declares it: keyed by `id`, tenant and customer columns outside the key.
const stream: DestinationStream = keyedStream('accounts', { customer_id: { type: 'integer' }, name: { type: 'string' }, _tributary_op: { type: 'string' }, _tributary_position: { type: 'string' } });

const row = (id: number, tenant: string, customer: number, position: string, op = 'c'): RecordData => ({ id, tenant_id: tenant, customer_id: customer, name: `row ${id}`, _tributary_op: op, _tributary_position: position });
/** A delete as REPLICA IDENTITY DEFAULT sends it: the key only. */
const del = (id: number, position: string): RecordData => ({ id, _tributary_op: 'd', _tributary_position: position });

const live = async (config: Record<string, unknown>) =>
  (await readLatestAsOf(config, { stream: 'accounts' })).map((r) => [r.tenant_id, r.entity_key, r.customer_id]).sort((a, b) => String(a).localeCompare(String(b)));

it('a delete carrying only its key hides the row it deletes, wherever that row is', async () => {
  const config = { path: join(root, 'everywhere'), rows_per_file: 1000 };
  // In the lake, from an earlier sync.
  expect(await writeSession(config, stream, [[row(1, 't1', 101, '0/10'), row(2, 't2', 102, '0/20')]])).toEqual([]);
  // Filler rows so that the first batch is sealed (written in the background) before the next one is staged.
  const filler = Array.from({ length: 1000 }, (_, i) => row(1000 + i, 't1', 900, `0/${(0x100 + i).toString(16)}`));
  const rejected = await writeSession(config, stream, [
    [row(4, 't2', 104, '0/50'), ...filler],
    [row(5, 't1', 105, '0/600')],
    [
      del(1, '0/700'), // committed by the first sync
      del(4, '0/701'), // sealed and written by this one
      del(5, '0/702'), // staged by this one, not sealed
      row(6, 't2', 106, '0/703'),
      del(6, '0/704'), // earlier in this batch
    ],
  ]);
  expect(rejected).toEqual([]);
  const rows = await readStreamRows(config, { stream: 'accounts' });
  const deletes = rows.filter((r) => r.op === 'delete').map((r) => [r.entity_key, r.tenant_id, r.customer_id, r.payload.customer_id, r.payload.tenant_id]);
  expect(deletes.sort()).toEqual([
    ['1', 't1', '101', 101, 't1'],
    ['4', 't2', '104', 104, 't2'],
    ['5', 't1', '105', 105, 't1'],
    ['6', 't2', '106', 106, 't2'],
  ]);
  expect((await live(config)).filter(([, key]) => Number(key) < 1000)).toEqual([['t2', '2', '102']]);
});

it('takes the row before the delete, not a later one of the same key, so a replayed delete is still a replay', async () => {
  const config = { path: join(root, 'replay') };
  // Key 7 is deleted, then inserted again under another tenant; the sync crashes after its commit (not completed).
  const changes = [row(7, 't1', 107, '0/100'), del(7, '0/200'), row(7, 't2', 207, '0/300')];
  expect(await writeSession(config, stream, [changes], false)).toEqual([]);
  // The resume reads the delete and the new insert again.
  expect(await writeSession(config, stream, [changes.slice(1)])).toEqual([]);
  const rows = (await readStreamRows(config, { stream: 'accounts' })).sort((a, b) => parseInt(a.source_position!.slice(2), 16) - parseInt(b.source_position!.slice(2), 16));
  expect(rows.map((r) => [r.op, r.tenant_id, r.customer_id])).toEqual([
    ['insert', 't1', '107'],
    ['delete', 't1', '107'],
    ['insert', 't2', '207'],
  ]);
  expect(await live(config)).toEqual([['t2', '7', '207']]);
});

it('a tenant given by default_tenant does not take the place of the deleted row\u2019s own', async () => {
  const config = { path: join(root, 'default-tenant'), default_tenant: 'fallback' };
  expect(await writeSession(config, stream, [[row(8, 't3', 108, '0/10')]])).toEqual([]);
  expect(await writeSession(config, stream, [[del(8, '0/20')]])).toEqual([]);
  expect(await live(config)).toEqual([]);
});

it('a delete of a key the lake never held is quarantined with the reason', async () => {
  const config = { path: join(root, 'unknown') };
  const rejected = await writeSession(config, stream, [[row(9, 't1', 109, '0/10'), del(10, '0/20')]]);
  expect(rejected).toHaveLength(1);
  expect(rejected[0]!.index).toBe(1);
  expect(rejected[0]!.reason).toMatch(/no tenant id.*CDC delete carries only the key columns.*no earlier row of its key/);
});
