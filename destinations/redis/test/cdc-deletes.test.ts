/**
 * CDC deletes (`_tributary_op` `d`) remove an entity's feature group: the writer stores a
 * tombstone, ordered like any other version (CDC position, then event time), which lookups
 * and the parity check treat as absent. A delete from PostgreSQL with the default replica
 * identity carries only the key columns, so its event time is its commit time.
 * Real redis-server, real lake on local disk, real runtime (runSync).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createConnectorContext,
  parseConfig,
  type AirbyteStream,
  type RecordData,
} from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import {
  compareOnlineOffline,
  createFeatureLookup,
  decodeGroupValue,
  encodeGroupValue,
  entityKey,
  offlineRowFromLake,
  redisConfigSchema,
  redisDestination,
  resolveMapping,
} from '../src/index.js';
import { at, keyedStream, syncIntoLakeAndRedis, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-cdc-deletes-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** An insert or update of an entity as the Postgres CDC source emits it. */
const change = (op: 'c' | 'u', position: string, minute: number, plan: string, id = 'e1'): RecordData => ({
  id,
  tenant_id: 'acme',
  updated_at: at(minute),
  plan,
  _tributary_op: op,
  _tributary_position: position,
  _tributary_commit_time: at(minute),
});
/** A delete with the default replica identity: the key columns only (no updated_at, no plan). */
const remove = (position: string, minute: number, id = 'e1'): RecordData => ({
  id,
  tenant_id: 'acme',
  _tributary_op: 'd',
  _tributary_position: position,
  _tributary_commit_time: at(minute),
});

let prefixes = 0;
/** A session on a fresh prefix: each `write` is one batch, committed; `get` is the lookup API's answer. */
async function openStore(extra: Record<string, unknown> = {}) {
  const prefix = `cd${++prefixes}`;
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix, ...extra });
  const streams = [keyedStream('profile'), keyedStream('billing')];
  const session = await redisDestination.open(createConnectorContext({}), config, streams);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  return {
    async write(records: RecordData[], stream = 'profile') {
      const result = await session.write({ stream, records, emittedAt: Date.now() });
      await session.commit();
      return result?.rejected ?? [];
    },
    get: (id = 'e1') => lookup.get({ tenant: 'acme', entityType: 'profile', entityId: id }),
    stored: (id = 'e1', group = 'profile') => peer.client.hgetBuffer(entityKey(prefix, 'acme', 'profile', id), `g:${group}`),
    key: (id = 'e1') => entityKey(prefix, 'acme', 'profile', id),
    async close() {
      await session.close({ completed: true });
      await lookup.close();
    },
  };
}

describe('CDC deletes (writer and lookup)', () => {
  for (const [name, extra] of [
    ['without TTL', {}],
    ['with TTL', { default_ttl_seconds: 3600 }],
  ] as const) {
    it(`${name}: a delete after an insert makes the lookup answer not found, with a small tombstone`, async () => {
      const store = await openStore(extra);
      try {
        expect(await store.write([change('c', '0/1A0', 1, 'pro')])).toEqual([]);
        expect((await store.get()).found).toBe(true);
        expect(await store.write([remove('0/2A0', 2)])).toEqual([]);
        expect(await store.get()).toEqual({ tenant: 'acme', entityType: 'profile', entityId: 'e1', found: false, groups: {} });
        // Time slots, order segment, `-`: 54 bytes, whatever the entity's features were.
        const tombstone = (await store.stored())!;
        expect(tombstone.length).toBe(15 + 15 + 23 + 1);
        expect(tombstone.toString('latin1', 30)).toBe('~00000000000002A0000000-');
        expect(decodeGroupValue(tombstone)).toMatchObject({ deleted: true, eventTimeMs: Date.parse(at(2)), features: {} });
        if (name === 'with TTL') {
          // A tombstone expires like the group's values: the key's TTL stays set.
          expect(decodeGroupValue(tombstone)?.expiresAtMs).toBeGreaterThan(Date.now());
          expect(await peer.client.pttl(store.key())).toBeGreaterThan(0);
        }
      } finally {
        await store.close();
      }
    });

    it(`${name}: a late older update after the delete does not resurrect the entity`, async () => {
      const store = await openStore(extra);
      try {
        await store.write([change('c', '0/1A0', 1, 'pro')]);
        await store.write([remove('0/3A0', 3)]);
        expect(await store.write([change('u', '0/2A0', 2, 'late')])).toEqual([]);
        expect((await store.get()).found).toBe(false);
        // The position decides, even against a later event time.
        await store.write([change('u', '0/2B0', 9, 'late, later clock')]);
        expect((await store.get()).found).toBe(false);
      } finally {
        await store.close();
      }
    });

    it(`${name}: a re-insert with a later position brings the entity back`, async () => {
      const store = await openStore(extra);
      try {
        await store.write([change('c', '0/1A0', 1, 'pro')]);
        await store.write([remove('0/2A0', 2)]);
        await store.write([change('c', '0/3A0', 3, 'back')]);
        const back = await store.get();
        expect(back.found).toBe(true);
        expect(back.groups.profile).toMatchObject({ eventTimeMs: Date.parse(at(3)), features: { plan: 'back' } });
      } finally {
        await store.close();
      }
    });

    it(`${name}: a replayed delete changes nothing`, async () => {
      const store = await openStore(extra);
      try {
        await store.write([change('c', '0/1A0', 1, 'pro')]);
        await store.write([remove('0/2A0', 2)]);
        const tombstone = await store.stored();
        await store.write([remove('0/2A0', 2)]);
        expect(await store.stored()).toEqual(tombstone);
        expect((await store.get()).found).toBe(false);
        // Replayed after a re-insert, it does not delete the entity again.
        await store.write([change('c', '0/3A0', 3, 'back')]);
        await store.write([change('c', '0/1A0', 1, 'pro'), remove('0/2A0', 2)]);
        expect((await store.get()).groups.profile?.features.plan).toBe('back');
      } finally {
        await store.close();
      }
    });

    it(`${name}: a delete and an older change in one batch, in either order (create path and script)`, async () => {
      const store = await openStore(extra);
      try {
        await store.write([change('c', '0/1A0', 1, 'pro'), remove('0/2A0', 2), change('c', '0/1A0', 1, 'pro', 'e2')]);
        expect((await store.get()).found).toBe(false);
        expect((await store.get('e2')).found).toBe(true);
        // The delete arrives first (reordered): the tombstone is stored anyway, and the insert it follows is ignored.
        await store.write([remove('0/2A0', 2, 'e3'), change('c', '0/1A0', 1, 'pro', 'e3')]);
        expect((await store.get('e3')).found).toBe(false);
      } finally {
        await store.close();
      }
    });
  }

  it('a delete without the event time field takes its commit time; without either it is rejected with the reason', async () => {
    const store = await openStore();
    try {
      await store.write([change('c', '0/1A0', 1, 'pro')]);
      const { _tributary_commit_time: _, ...noTime } = remove('0/2A0', 2);
      expect(await store.write([noTime])).toEqual([{ index: 0, reason: expect.stringMatching(/^delete without event time: event time field "updated_at" is missing and _tributary_commit_time is missing/) as unknown }]);
      expect((await store.get()).found).toBe(true);
      expect(await store.write([remove('0/2A0', 5)])).toEqual([]);
      expect(decodeGroupValue((await store.stored())!)).toMatchObject({ deleted: true, eventTimeMs: Date.parse(at(5)) });
      // REPLICA IDENTITY FULL: the delete carries the whole old row, so its event time field.
      await store.write([change('c', '0/1A0', 1, 'pro', 'e2')]);
      await store.write([{ ...change('u', '0/3A0', 1, 'pro', 'e2'), _tributary_op: 'd', _tributary_commit_time: at(6) }]);
      expect((await store.get('e2')).found).toBe(false);
      expect(decodeGroupValue((await store.stored('e2'))!)).toMatchObject({ deleted: true, eventTimeMs: Date.parse(at(1)) });
    } finally {
      await store.close();
    }
  });

  it('a delete removes only its stream feature group: the entity is found while another group lives', async () => {
    const store = await openStore({ streams: [{ stream: 'billing', entity_type: 'profile' }] });
    try {
      await store.write([change('c', '0/1A0', 1, 'pro')]);
      await store.write([change('c', '0/1B0', 1, 'paid')], 'billing');
      await store.write([remove('0/2A0', 2)]);
      const left = await store.get();
      expect(left.found).toBe(true);
      expect(Object.keys(left.groups)).toEqual(['billing']);
      await store.write([remove('0/2B0', 2)], 'billing');
      expect(await store.get()).toMatchObject({ found: false, groups: {} });
    } finally {
      await store.close();
    }
  });
});

/** A table read by the Postgres source in CDC mode: its cursor is the change position. */
const profileStream: AirbyteStream = {
  name: 'profile',
  json_schema: {
    type: 'object',
    properties: {
      id: { type: 'string' },
      tenant_id: { type: 'string' },
      updated_at: { type: ['string', 'null'], format: 'date-time' },
      plan: { type: ['string', 'null'] },
      _tributary_op: { type: 'string', enum: ['r', 'c', 'u', 'd', 't'] },
      _tributary_position: { type: 'string' },
      _tributary_commit_time: { type: ['string', 'null'] },
    },
  },
  supported_sync_modes: ['full_refresh', 'incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['_tributary_position'],
  source_defined_primary_key: [['id']],
};
/** Syncs the records into a fresh lake and Redis prefix through the runtime; returns what each store serves and the parity report. */
async function syncBoth(name: string, records: RecordData[]) {
  const { lakeConfig, redisConfig } = await syncIntoLakeAndRedis({ dir, port: peer.server.port, name, stream: profileStream, cursorField: ['_tributary_position'], records });
  const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), { ...keyedStream('profile'), cursorField: ['_tributary_position'], jsonSchema: profileStream.json_schema });
  const parity = async () =>
    compareOnlineOffline({ client: peer.client, prefix: name, mapping, offline: (await readLatestAsOf(lakeConfig, { stream: 'profile', includeDeleted: true })).map(offlineRowFromLake) });
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: name });
  const online = await lookup.getMany({ tenant: 'acme', entityType: 'profile', entityIds: ['e1', 'e2'] }).finally(() => lookup.close());
  return {
    lake: Object.fromEntries((await readLatestAsOf(lakeConfig, { stream: 'profile' })).map((r) => [r.entity_key, r.payload.plan])),
    online: Object.fromEntries(online.filter((e) => e.found).map((e) => [e.entityId, e.groups.profile?.features.plan])),
    report: await parity(),
    parity,
  };
}

describe('CDC deletes (online/offline parity, through runSync)', () => {
  it('a deleted entity is absent from both stores, replays and a late update included, and parity agrees', async () => {
    const synced = await syncBoth('del', [
      change('c', '0/1A0', 1, 'pro'),
      change('c', '0/1B0', 1, 'free', 'e2'),
      change('u', '0/2A0', 2, 'team'),
      remove('0/3A0', 3),
      // Replayed after a restart: the update before the delete, then the delete.
      change('u', '0/2A0', 2, 'team'),
      remove('0/3A0', 3),
    ]);
    expect(synced.lake).toEqual({ e2: 'free' });
    expect(synced.online).toEqual({ e2: 'free' });
    expect(synced.report).toMatchObject({ ok: true, offlineEntities: 1, onlineEntities: 1, matching: 1, deleted: 1, unmapped: 0 });

    // Redis serving the deleted entity again is a difference: the lake has no live row for it.
    await peer.client.hset(entityKey('del', 'acme', 'profile', 'e1'), 'g:profile', encodeGroupValue(Date.parse(at(2)), undefined, JSON.stringify({ id: 'e1', tenant_id: 'acme', updated_at: at(2), plan: 'team' })));
    const diverged = await synced.parity();
    expect(diverged).toMatchObject({ ok: false, deleted: 0, counts: { missing_online: 0, missing_offline: 1, event_time_differs: 0, values_differ: 0 } });
    expect(diverged.samples[0]).toMatchObject({ kind: 'missing_offline', tenant: 'acme', entityId: 'e1' });
  });

  it('an update that moves the row to another key ends the old key in both stores, and parity agrees', async () => {
    // PostgreSQL `UPDATE … SET id = 'e9' WHERE id = 'e1'` under the default replica identity: the old key in the before-image.
    const synced = await syncBoth('moved', [change('c', '0/1A0', 1, 'pro'), { ...change('u', '0/2A0', 2, 'pro', 'e9'), _tributary_before: { id: 'e1' } }]);
    expect(synced.lake).toEqual({ e9: 'pro' });
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: 'moved' });
    const online = await lookup.getMany({ tenant: 'acme', entityType: 'profile', entityIds: ['e1', 'e9'] }).finally(() => lookup.close());
    expect(online.map((e) => [e.entityId, e.found])).toEqual([['e1', false], ['e9', true]]);
    expect(synced.report).toMatchObject({ ok: true, offlineEntities: 1, onlineEntities: 1, matching: 1, deleted: 1 });
  });

  it('an entity re-inserted after its delete is back in both stores', async () => {
    const synced = await syncBoth('reins', [change('c', '0/1A0', 1, 'pro'), remove('0/2A0', 2), change('c', '0/3A0', 3, 'back')]);
    expect(synced.lake).toEqual({ e1: 'back' });
    expect(synced.online).toEqual({ e1: 'back' });
    expect(synced.report).toMatchObject({ ok: true, offlineEntities: 1, onlineEntities: 1, matching: 1, deleted: 0 });
  });
});
