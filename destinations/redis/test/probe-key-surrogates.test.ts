/**
 * Entity ids (and tenants) holding a lone UTF-16 surrogate: JSON can carry them, UTF-8
 * cannot, and Redis keys are UTF-8 — each became U+FFFD, so "a\ud800", "a\udfff" and
 * "a\ufffd" were one hash: their features overwrote each other and a lookup of one served
 * another's. Real redis-server, real writer, real lookup.
 */
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { compareOnlineOffline, createFeatureLookup, parseEventTime, redisConfigSchema, redisDestination, resolveMapping } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

describe('entity ids with lone surrogates', () => {
  it('are distinct entities, stored and looked up apart, and parity names them', async () => {
    const prefix = 'pks';
    const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
    const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
    const ids = ['a\ud800', 'a\udfff', 'a\ufffd', 'a\ud83d\ude00', 'b\udc00\ud800:%'];
    // Later event times for later ids: had they shared a key, the last would win everywhere.
    const records: RecordData[] = ids.map((id, n) => ({ id, tenant_id: 'acme', updated_at: at(n + 1), n }));
    await session.write({ stream: 'profile', records, emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });

    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      const found = await lookup.getMany({ tenant: 'acme', entityType: 'profile', entityIds: ids });
      expect(found.map((e) => e.groups.profile?.features.n)).toEqual([0, 1, 2, 3, 4]);
      expect(found.map((e) => e.groups.profile?.eventTimeMs)).toEqual(ids.map((_, n) => parseEventTime(at(n + 1))));
    } finally {
      await lookup.close();
    }

    // Parity reads the ids back out of the keys: each Redis entity the lake lacks is named as written.
    const mapping = resolveMapping(parseConfig(redisConfigSchema, { port: peer.server.port, key_prefix: prefix }), keyedStream('profile'));
    const report = await compareOnlineOffline({ client: peer.client, prefix, mapping, offline: [] });
    expect(report.onlineEntities).toBe(ids.length);
    expect(report.samples.map((d) => d.entityId).sort()).toEqual([...ids].sort());
  });
});
