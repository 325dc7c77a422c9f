/**
 * CDC updates that left TOASTed columns out (`_tributary_unchanged`): PostgreSQL does not
 * send a large column an update did not change, and the destination must keep its stored
 * value. A group is replaced as a whole, so before the fix such an update dropped the
 * feature from Redis, while the lake fills it from earlier rows: lookups lost a value nobody
 * changed, and parity reported `values_differ`. Real redis-server, real lake, real runtime.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type AirbyteStream, type RecordData } from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '../src/index.js';
import { at, keyedStream, syncIntoLakeAndRedis, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-unchanged-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A change as the Postgres CDC source emits it; `bio` (a TOASTed text column) left out when `unchanged`. */
const change = (op: 'c' | 'u', position: string, minute: number, plan: string, bio?: string, id = 'e1'): RecordData => ({
  id,
  tenant_id: 'acme',
  updated_at: at(minute),
  plan,
  ...(bio === undefined ? { _tributary_unchanged: ['bio'] } : { bio }),
  _tributary_op: op,
  _tributary_position: position,
  _tributary_commit_time: at(minute),
});

let prefixes = 0;
async function openStore() {
  const prefix = `pu${++prefixes}`;
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
  const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  return {
    /** One batch per call; committed only with `commit` (batches may be in flight together). */
    write: (records: RecordData[]) => session.write({ stream: 'profile', records, emittedAt: Date.now() }),
    commit: () => session.commit(),
    features: async (id = 'e1') => (await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: id })).groups.profile?.features,
    async close() {
      await session.close({ completed: true });
      await lookup.close();
    },
  };
}

describe('CDC updates that leave unchanged TOASTed columns out', () => {
  it('keep the stored value of the column, from an earlier batch still in flight too', async () => {
    const store = await openStore();
    try {
      await store.write([change('c', '0/10', 1, 'free', 'a long biography')]);
      // No commit in between: the insert may still be in flight when the update is encoded.
      await store.write([change('u', '0/20', 2, 'pro')]);
      await store.commit();
      expect(await store.features()).toMatchObject({ plan: 'pro', bio: 'a long biography', updated_at: at(2) });
      // A later update that does send the column replaces it; the next one that omits it keeps that.
      await store.write([change('u', '0/30', 3, 'pro', 'rewritten')]);
      await store.write([change('u', '0/40', 4, 'team')]);
      await store.commit();
      expect(await store.features()).toMatchObject({ plan: 'team', bio: 'rewritten' });
    } finally {
      await store.close();
    }
  });

  it('in one batch, in any arrival order: the value of the newest earlier version that has it', async () => {
    const store = await openStore();
    try {
      await store.write([change('c', '0/10', 1, 'free', 'stored')]);
      await store.commit();
      // The update at 0/40 omits bio; the version before it is 0/30 (bio "from 0/30"), which arrives after it.
      await store.write([change('u', '0/40', 4, 'team'), change('u', '0/30', 3, 'pro', 'from 0/30'), change('u', '0/20', 2, 'free')]);
      await store.commit();
      expect(await store.features()).toMatchObject({ plan: 'team', bio: 'from 0/30', updated_at: at(4) });
      // A replay of the batch changes nothing.
      await store.write([change('u', '0/40', 4, 'team'), change('u', '0/30', 3, 'pro', 'from 0/30')]);
      await store.commit();
      expect(await store.features()).toMatchObject({ plan: 'team', bio: 'from 0/30' });
    } finally {
      await store.close();
    }
  });

  it('online and offline agree (parity) after updates that left the column out', async () => {
    const stream: AirbyteStream = {
      name: 'profile',
      json_schema: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          tenant_id: { type: 'string' },
          updated_at: { type: ['string', 'null'], format: 'date-time' },
          plan: { type: ['string', 'null'] },
          bio: { type: ['string', 'null'] },
          _tributary_op: { type: 'string', enum: ['r', 'c', 'u', 'd', 't'] },
          _tributary_position: { type: 'string' },
          _tributary_commit_time: { type: ['string', 'null'] },
          _tributary_unchanged: { type: 'array', items: { type: 'string' } },
        },
      },
      supported_sync_modes: ['full_refresh', 'incremental'],
      source_defined_cursor: true,
      default_cursor_field: ['_tributary_position'],
      source_defined_primary_key: [['id']],
    };
    const name = 'putoast';
    const { lakeConfig, redisConfig } = await syncIntoLakeAndRedis({
      dir,
      port: peer.server.port,
      name,
      stream,
      cursorField: ['_tributary_position'],
      records: [change('c', '0/10', 1, 'free', 'bio of e1'), change('c', '0/11', 1, 'free', 'bio of e2', 'e2'), change('u', '0/20', 2, 'pro'), change('u', '0/21', 2, 'team', undefined, 'e2')],
    });
    const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), { ...keyedStream('profile'), cursorField: ['_tributary_position'], jsonSchema: stream.json_schema });
    const lakeRows = await readLatestAsOf(lakeConfig, { stream: 'profile', includeDeleted: true });
    expect(Object.fromEntries(lakeRows.map((r) => [r.entity_key, r.payload.bio]))).toEqual({ e1: 'bio of e1', e2: 'bio of e2' });
    const report = await compareOnlineOffline({ client: peer.client, prefix: name, mapping, offline: lakeRows.map(offlineRowFromLake) });
    expect(report).toMatchObject({ ok: true, offlineEntities: 2, onlineEntities: 2, matching: 2 });
  });
});
