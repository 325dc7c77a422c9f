/**
 * A CDC update that changes only the tenant of a row whose stream is keyed by `id` alone
 * (PostgreSQL `UPDATE t SET tenant_id = 'beta' WHERE id = 4`). `movedFromKey` compares the
 * stream's key only, so it was not seen as a move: the writer stored the entity under the new
 * tenant and left the old tenant's hash live, and a lookup of the entity under the old tenant
 * still served the row. Under REPLICA IDENTITY FULL the before-image names the old tenant:
 * the old tenant's entity now ends as a moved key's old key ends — a tombstone at the update's
 * event time and position — after the tenant normalisation the writer applies (`tenantOf`:
 * an empty or null tenant is `default_tenant`, 7 and "7" are one tenant). Under the default
 * replica identity the old tenant is not sent, and nothing changes. Real redis-server, real
 * writer, real lookup.
 */
import { describe, expect, it } from 'vitest';
import type { DestinationStream, RecordData } from '@tributary/core';
import { decodeGroupValue } from '../src/index.js';
import { keyedStream, openPrefixedStore, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

let prefixes = 0;
/** A session on a fresh prefix (see openPrefixedStore), its lookups defaulting as this file's tests use them. */
async function openStore(extra: Record<string, unknown> = {}, stream: DestinationStream = keyedStream('t')) {
  const store = await openPrefixedStore(peer, `tm${++prefixes}`, stream, extra);
  return { ...store, get: (tenant: string, id: number | string = 4) => store.get(tenant, id), stored: (tenant: string, id: number | string = 4) => store.stored(tenant, id) };
}

/** A row of table t as the Postgres source reads it (its columns only). */
const row = (tenant: unknown, v: number, day: number): Record<string, unknown> => ({ id: 4, v, tenant_id: tenant, updated_at: `2026-01-0${day}T00:00:00Z` });

/** The snapshot read of entity 4 in `tenant`. */
const snapshot = (tenant: unknown = 'acme'): RecordData => ({ ...row(tenant, 4, 1), _tributary_op: 'r', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z' });

/**
 * An update of entity 4 to `after` at `position`, as the source emits it under REPLICA
 * IDENTITY FULL: `_tributary_before` the whole old row `before`. `before` null: the default
 * replica identity (no before-image when the key did not change).
 */
const update = (after: Record<string, unknown>, before: Record<string, unknown> | null, position: string): RecordData => ({
  ...after,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: after.updated_at,
  _tributary_before: before,
});

/** `UPDATE t SET tenant_id = 'beta', v = 5 WHERE id = 4` under REPLICA IDENTITY FULL. */
const acmeToBeta = update(row('beta', 5, 2), row('acme', 4, 1), '0/2');
/** `UPDATE t SET tenant_id = 'acme', v = 6 WHERE id = 4`, later. */
const betaToAcme = update(row('acme', 6, 3), row('beta', 5, 2), '0/3');

describe('a CDC update that changes only the tenant (stream keyed by id, REPLICA IDENTITY FULL)', () => {
  it("ends the old tenant's entity (a tombstone at the update's time and position); the new tenant holds the row", async () => {
    const store = await openStore();
    try {
      expect(await store.write([snapshot()])).toEqual([]);
      expect(await store.write([acmeToBeta])).toEqual([]);
      expect((await store.get('acme')).found).toBe(false);
      const moved = await store.get('beta');
      expect(moved.found).toBe(true);
      expect(moved.groups.t).toMatchObject({ eventTime: '2026-01-02T00:00:00.000Z', features: { id: 4, v: 5, tenant_id: 'beta' } });
      expect(decodeGroupValue((await store.stored('acme'))['g:t']!)).toMatchObject({ deleted: true, eventTimeMs: Date.parse('2026-01-02T00:00:00Z') });
      // The parity check maps the same records the same way: acme/4 expected deleted, beta/4 matching.
      expect(await store.parity([snapshot(), acmeToBeta])).toMatchObject({ ok: true, offlineEntities: 1, matching: 1, deleted: 1, unmapped: 0 });
    } finally {
      await store.close();
    }
  });

  it('a late older write of the old tenant does not bring it back; replays change nothing; a move back replaces the tombstone', async () => {
    const store = await openStore();
    try {
      await store.write([snapshot()]);
      await store.write([acmeToBeta]);
      const before = { acme: await store.stored('acme'), beta: await store.stored('beta') };
      // The snapshot row again (a re-read after a restart), and a write without position older than the update.
      expect(await store.write([snapshot()])).toEqual([]);
      expect(await store.write([row('acme', 9, 1)])).toEqual([]);
      expect((await store.get('acme')).found).toBe(false);
      // The same batches again (at-least-once delivery), together, one by one, and reordered.
      expect(await store.write([snapshot(), acmeToBeta])).toEqual([]);
      expect(await store.write([acmeToBeta])).toEqual([]);
      expect(await store.write([acmeToBeta, snapshot()])).toEqual([]);
      expect({ acme: await store.stored('acme'), beta: await store.stored('beta') }).toEqual(before);
      // Moved back to acme later: acme live with the last row, beta ended.
      expect(await store.write([betaToAcme])).toEqual([]);
      expect((await store.get('acme')).groups.t).toMatchObject({ eventTime: '2026-01-03T00:00:00.000Z', features: { v: 6, tenant_id: 'acme' } });
      expect((await store.get('beta')).found).toBe(false);
      expect(await store.parity([snapshot(), acmeToBeta, betaToAcme])).toMatchObject({ ok: true, offlineEntities: 1, matching: 1, deleted: 1 });
    } finally {
      await store.close();
    }
  });

  it('moved and moved back in one batch, in any arrival order: acme live with the last row, beta ended', async () => {
    for (const batch of [
      [snapshot(), acmeToBeta, betaToAcme],
      [betaToAcme, acmeToBeta, snapshot()],
    ]) {
      const store = await openStore();
      try {
        expect(await store.write(batch)).toEqual([]);
        expect((await store.get('acme')).groups.t?.features).toMatchObject({ v: 6, tenant_id: 'acme' });
        expect((await store.get('beta')).found).toBe(false);
      } finally {
        await store.close();
      }
    }
  });

  it('compares tenants as the writer stores them: default_tenant for an empty or null tenant, 7 and "7" alike', async () => {
    const store = await openStore({ default_tenant: 'acme' });
    try {
      // The old row's tenant '' / null is default_tenant, the stored tenant of the new row too: no move.
      await store.write([snapshot('')]);
      for (const [old, position] of [['', '0/2'], [null, '0/3']] as const) {
        expect(await store.write([update(row('acme', 5, 2), row(old, 4, 1), position)])).toEqual([]);
        expect((await store.get('acme')).groups.t?.features, String(old)).toMatchObject({ v: 5 });
      }
      // From the default tenant (null) to another: the default tenant's entity ends.
      expect(await store.write([update(row('beta', 6, 3), row(null, 5, 2), '0/4')])).toEqual([]);
      expect((await store.get('acme')).found).toBe(false);
      expect((await store.get('beta')).found).toBe(true);
      // 7 and "7" are one tenant: no move.
      await store.write([{ ...snapshot(7), id: 8 }]);
      expect(await store.write([{ ...update(row('7', 5, 2), row(7, 4, 1), '0/5'), id: 8 }])).toEqual([]);
      expect((await store.get('7', 8)).groups.t?.features).toMatchObject({ v: 5, tenant_id: '7' });
    } finally {
      await store.close();
    }
  });

  it('an old tenant the writer could not store (empty, no default_tenant) ends nothing, and the update is not rejected', async () => {
    const store = await openStore();
    try {
      expect(await store.write([update(row('beta', 5, 2), row('', 4, 1), '0/2')])).toEqual([]);
      expect((await store.get('beta')).found).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('a CDC update that changes only the tenant under the default replica identity', () => {
  it('is not seen as a move (the old tenant is not sent): the old tenant keeps its entity, as the README says', async () => {
    const store = await openStore();
    try {
      await store.write([snapshot()]);
      // No before-image (the key did not change), or the old key alone.
      expect(await store.write([update(row('beta', 5, 2), null, '0/2'), update({ ...row('gamma', 6, 3) }, { id: 4 }, '0/3')])).toEqual([]);
      expect((await store.get('acme')).groups.t?.features).toMatchObject({ v: 4, tenant_id: 'acme' });
      expect((await store.get('beta')).found).toBe(true);
      expect((await store.get('gamma')).found).toBe(true);
    } finally {
      await store.close();
    }
  });
});
