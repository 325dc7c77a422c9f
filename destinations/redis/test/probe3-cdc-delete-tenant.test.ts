/**
 * A CDC delete under PostgreSQL's default replica identity carries only the key columns. When
 * the stream has a tenant column outside its primary key, such a delete lacks its tenant —
 * and with `default_tenant` configured the writer filed it under that tenant: it wrote a
 * tombstone in a key nobody reads and the deleted entity stayed live in its own tenant, with
 * no error. (Without `default_tenant` it was already rejected.) A tenant the delete does not
 * carry is unknown, not the default: the record is now rejected with the reason. Streams
 * without a tenant column still file their deletes under `default_tenant`.
 * Real redis-server, real writer, real lookup.
 */
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { createFeatureLookup, entityKey, redisDestination } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

/** Writes each batch (committed) on a fresh prefix with `default_tenant` "shared"; returns the rejections and a lookup. */
async function writeBatches(prefix: string, stream: DestinationStream, batches: RecordData[][]) {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix, default_tenant: 'shared' });
  const session = await redisDestination.open(createConnectorContext({}), config, [stream]);
  const rejected = [];
  for (const records of batches) {
    rejected.push(...((await session.write({ stream: stream.key, records, emittedAt: Date.now() }))?.rejected ?? []));
    await session.commit();
  }
  await session.close({ completed: true });
  return rejected;
}

/** The key-only delete PostgreSQL's default replica identity gives (primary key `id`). */
const keyOnlyDelete = (position: string, minute: number): RecordData => ({ id: 'e1', _tributary_op: 'd', _tributary_position: position, _tributary_commit_time: at(minute) });

describe('CDC deletes without their tenant field, with default_tenant', () => {
  it('a stream with a tenant column: rejected with the reason, never filed under default_tenant', async () => {
    const prefix = 'pdt1';
    const rejected = await writeBatches(prefix, keyedStream('profile'), [
      [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), plan: 'pro', _tributary_op: 'c', _tributary_position: '0/10', _tributary_commit_time: at(1) }],
      [keyOnlyDelete('0/20', 2)],
    ]);
    expect(rejected).toEqual([{ index: 0, reason: expect.stringMatching(/^delete without its tenant field "tenant_id"/) as unknown }]);
    // Nothing was written for the default tenant; the entity is as the sync left it, and the rejection says why.
    expect(await peer.client.exists(entityKey(prefix, 'shared', 'profile', 'e1'))).toBe(0);
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      expect((await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'e1' })).found).toBe(true);
    } finally {
      await lookup.close();
    }
  });

  it('a stream without a tenant column: the delete is the default tenant\'s, as its other records', async () => {
    const prefix = 'pdt2';
    const stream: DestinationStream = { ...keyedStream('profile'), jsonSchema: { type: 'object', properties: { id: { type: 'string' }, updated_at: { type: 'string' } } } };
    const rejected = await writeBatches(prefix, stream, [
      [{ id: 'e1', updated_at: at(1), plan: 'pro', _tributary_op: 'c', _tributary_position: '0/10', _tributary_commit_time: at(1) }],
      [keyOnlyDelete('0/20', 2)],
    ]);
    expect(rejected).toEqual([]);
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      expect((await lookup.get({ tenant: 'shared', entityType: 'profile', entityId: 'e1' })).found).toBe(false);
    } finally {
      await lookup.close();
    }
  });
});
