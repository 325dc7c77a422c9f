/**
 * A CDC update that changes a row's primary key (PostgreSQL `UPDATE t SET id = 33 WHERE
 * id = 4`: op `u`, the new row, `_tributary_before` holding the old key, or the whole old row
 * under REPLICA IDENTITY FULL) moves the row to another entity. The writer stored the new
 * entity and left the old one live: a lookup of entity 4 still served the row. The old key
 * now ends as a CDC delete ends it — a tombstone at the update's event time and position —
 * so a late older write of it does not bring it back, and a later move back replaces the
 * tombstone. Real redis-server, real writer, real lookup.
 */
import { describe, expect, it } from 'vitest';
import type { DestinationStream, RecordData } from '@tributary/core';
import { decodeGroupValue } from '../src/index.js';
import { keyedStream, openPrefixedStore, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

let prefixes = 0;
/** A session on a fresh prefix (see openPrefixedStore), its lookups defaulting as this file's tests use them. */
async function openStore(stream: DestinationStream = keyedStream('t'), extra: Record<string, unknown> = {}) {
  const store = await openPrefixedStore(peer, `km${++prefixes}`, stream, extra);
  return { ...store, get: (id: number | string, tenant = 'acme') => store.get(tenant, id), stored: (id: number | string, tenant = 'acme') => store.stored(tenant, id) };
}

/** The snapshot row of entity 4, as the Postgres source reads it. */
const snapshot4: RecordData = { id: 4, v: 4, tenant_id: 'acme', updated_at: '2026-01-01T00:00:00Z', _tributary_op: 'r', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z' };
/** `UPDATE t SET id = 33 WHERE id = 4` under the default replica identity: the new row, the old key. */
const move4to33: RecordData = {
  id: 33,
  v: 4,
  tenant_id: 'acme',
  updated_at: '2026-01-02T00:00:00Z',
  _tributary_op: 'u',
  _tributary_position: '0/2',
  _tributary_commit_time: '2026-01-02T00:00:00Z',
  _tributary_before: { id: 4 },
};
/** `UPDATE t SET id = 4 WHERE id = 33`, later. */
const move33to4: RecordData = {
  id: 4,
  v: 5,
  tenant_id: 'acme',
  updated_at: '2026-01-03T00:00:00Z',
  _tributary_op: 'u',
  _tributary_position: '0/3',
  _tributary_commit_time: '2026-01-03T00:00:00Z',
  _tributary_before: { id: 33 },
};

describe('a CDC update that moves a row to another key', () => {
  it('ends the old key (a tombstone at the update\'s time and position); the new key holds the row', async () => {
    const store = await openStore();
    try {
      expect(await store.write([snapshot4])).toEqual([]);
      expect(await store.write([move4to33])).toEqual([]);
      expect((await store.get(4)).found).toBe(false);
      const moved = await store.get(33);
      expect(moved.found).toBe(true);
      expect(moved.groups.t).toMatchObject({ eventTime: '2026-01-02T00:00:00.000Z', features: { id: 33, v: 4, tenant_id: 'acme' } });
      // The old key's group is a tombstone, as a CDC delete of 4 at the update's event time leaves.
      expect(decodeGroupValue((await store.stored(4))['g:t']!)).toMatchObject({ deleted: true, eventTimeMs: Date.parse('2026-01-02T00:00:00Z') });
      // The parity check maps the same records the same way: 4 expected deleted, 33 matching.
      expect(await store.parity([snapshot4, move4to33])).toMatchObject({ ok: true, offlineEntities: 1, matching: 1, deleted: 1, unmapped: 0 });
    } finally {
      await store.close();
    }
  });

  it('a late older write of the old key does not bring it back; a replay of the batches changes nothing', async () => {
    const store = await openStore();
    try {
      await store.write([snapshot4]);
      await store.write([move4to33]);
      const before = { 4: await store.stored(4), 33: await store.stored(33) };
      // The snapshot row again (a re-read after a restart), and a write without position whose event time is before the update's.
      expect(await store.write([snapshot4])).toEqual([]);
      expect(await store.write([{ id: 4, v: 9, tenant_id: 'acme', updated_at: '2026-01-01T12:00:00Z' }])).toEqual([]);
      expect((await store.get(4)).found).toBe(false);
      // The same batches again (at-least-once delivery), together and one by one.
      expect(await store.write([snapshot4, move4to33])).toEqual([]);
      expect(await store.write([move4to33])).toEqual([]);
      expect({ 4: await store.stored(4), 33: await store.stored(33) }).toEqual(before);
      expect((await store.get(4)).found).toBe(false);
      expect((await store.get(33)).groups.t?.features).toMatchObject({ id: 33, v: 4 });
    } finally {
      await store.close();
    }
  });

  it('moved and later moved back (4→33→4): 4 is live with the last row, 33 ended — in separate batches and in one', async () => {
    for (const batches of [[[snapshot4], [move4to33], [move33to4]], [[snapshot4, move4to33, move33to4]]]) {
      const store = await openStore();
      try {
        for (const batch of batches) expect(await store.write(batch)).toEqual([]);
        const back = await store.get(4);
        expect(back.found).toBe(true);
        expect(back.groups.t).toMatchObject({ eventTime: '2026-01-03T00:00:00.000Z', features: { id: 4, v: 5 } });
        expect((await store.get(33)).found).toBe(false);
        // Replayed, in order and out of it: the same state.
        const stored = { 4: await store.stored(4), 33: await store.stored(33) };
        for (const batch of [[snapshot4, move4to33, move33to4], [move33to4], [move4to33], [snapshot4]]) expect(await store.write(batch)).toEqual([]);
        expect({ 4: await store.stored(4), 33: await store.stored(33) }).toEqual(stored);
      } finally {
        await store.close();
      }
    }
  });

  it("the old key's tenant is the before-image's (REPLICA IDENTITY FULL), else the record's", async () => {
    const store = await openStore();
    try {
      await store.write([snapshot4]);
      // The whole old row: tenant acme; the new row moved to tenant beta as well.
      const full = { ...move4to33, tenant_id: 'beta', _tributary_before: { ...snapshot4 } };
      for (const key of Object.keys(full._tributary_before as object)) if (key.startsWith('_tributary_')) delete (full._tributary_before as Record<string, unknown>)[key];
      expect(await store.write([full])).toEqual([]);
      expect((await store.get(4, 'acme')).found).toBe(false);
      expect((await store.get(33, 'beta')).found).toBe(true);
      expect(await store.stored(4, 'beta')).toEqual({});
    } finally {
      await store.close();
    }
  });

  it('a primary key that includes the tenant: an update that changes only the tenant ends the old tenant\'s entity', async () => {
    const stream: DestinationStream = { ...keyedStream('t'), primaryKey: [['tenant_id'], ['id']] };
    const store = await openStore(stream);
    try {
      await store.write([snapshot4]);
      expect(await store.write([{ ...move4to33, id: 4, tenant_id: 'beta', _tributary_before: { tenant_id: 'acme', id: 4 } }])).toEqual([]);
      expect((await store.get(4, 'acme')).found).toBe(false);
      expect((await store.get(4, 'beta')).found).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('rejections keep the batch positions; the update is never rejected because of its old key', async () => {
    const store = await openStore(keyedStream('t'));
    try {
      await store.write([snapshot4, { ...snapshot4, id: 5 }]);
      const rejected = await store.write([
        { v: 1, tenant_id: 'acme', updated_at: '2026-01-02T00:00:00Z' }, // no id
        move4to33,
        { ...move4to33, id: 6, updated_at: 'not a time', _tributary_before: { id: 5 } }, // rejected: its old key stays as it was
        { ...move4to33, id: 7, _tributary_position: '0/4', _tributary_before: { id: 5, tenant_id: '' } }, // an old key without tenant: nothing to end there
        { ...move4to33, id: 8, _tributary_position: '0/5', _tributary_before: { id: '' } }, // no usable old entity id
      ]);
      expect(rejected.map((r) => r.index)).toEqual([0, 2]);
      expect((await store.get(4)).found).toBe(false);
      expect((await store.get(5)).found).toBe(true);
      for (const id of [33, 7, 8]) expect((await store.get(id)).found, String(id)).toBe(true);
    } finally {
      await store.close();
    }
  });
});
