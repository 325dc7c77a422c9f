/**
 * A CDC update that moves a row to another key (`UPDATE t SET id = 33 WHERE id = 4`) without
 * changing a TOASTed column: under REPLICA IDENTITY DEFAULT the record lacks the column and
 * lists it in `_tributary_unchanged`. The writer filled it from the value stored under the
 * NEW key (33), which PostgreSQL had no row under, so the feature was lost. It now comes from
 * the old key's version just before the move — stored in an earlier batch, or written in the
 * same batch — and a move older than the old key's newest version takes nothing from it.
 * Real redis-server, real writer, real lookup.
 */
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { createFeatureLookup, entityKey, redisDestination } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

let prefixes = 0;
/** A session on a fresh prefix: each `write` is one batch, committed; `features` is the lookup API's answer. */
async function openStore() {
  const prefix = `kmt${++prefixes}`;
  const stream = keyedStream('profile');
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
  const session = await redisDestination.open(createConnectorContext({}), config, [stream]);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  return {
    async write(records: RecordData[]) {
      const result = await session.write({ stream: stream.key, records, emittedAt: Date.now() });
      await session.commit();
      expect(result?.rejected ?? []).toEqual([]);
    },
    async features(id: number) {
      const found = await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: String(id) });
      return found.found ? found.groups.profile?.features : undefined;
    },
    /** The whole stored hashes of these entities. */
    stored: (ids: number[]) => Promise.all(ids.map((id) => peer.client.hgetallBuffer(entityKey(prefix, 'acme', 'profile', String(id))))),
    async close() {
      await session.close({ completed: true });
      await lookup.close();
    },
  };
}

/** A change as the Postgres CDC source emits it at `position`; `bio` (TOASTed) left out and listed as unchanged when undefined. */
function change(op: 'r' | 'c' | 'u', id: number, position: string, minute: number, plan: string, bio?: string, before?: number): RecordData {
  return {
    id,
    tenant_id: 'acme',
    updated_at: at(minute),
    plan,
    ...(bio === undefined ? { _tributary_unchanged: ['bio'] } : { bio }),
    _tributary_op: op,
    _tributary_position: position,
    _tributary_commit_time: at(minute),
    ...(before === undefined ? {} : { _tributary_before: { id: before } }),
  };
}

describe('a CDC update that moves a row to another key and leaves its TOASTed column out', () => {
  it('takes the column from the old key stored in an earlier batch; a replay changes nothing', async () => {
    const store = await openStore();
    try {
      await store.write([change('r', 4, '0/10', 1, 'free', 'the bio of 4')]);
      const move = [change('u', 33, '0/20', 2, 'pro', undefined, 4)];
      await store.write(move);
      expect(await store.features(4)).toBeUndefined();
      expect(await store.features(33)).toMatchObject({ id: 33, plan: 'pro', bio: 'the bio of 4', updated_at: at(2) });
      // A replay of the batch (the old key now a tombstone at the move, the new key the move) changes nothing.
      const before = await store.stored([4, 33]);
      await store.write(move);
      expect(await store.stored([4, 33])).toEqual(before);
      // Moved back, still without the column: it comes from 33 (the old key), not from 4's tombstone.
      await store.write([change('u', 4, '0/30', 3, 'team', undefined, 33)]);
      expect(await store.features(33)).toBeUndefined();
      expect(await store.features(4)).toMatchObject({ id: 4, plan: 'team', bio: 'the bio of 4' });
    } finally {
      await store.close();
    }
  });

  it('takes the column from the old key written in the same batch, as of just before the move, in any arrival order', async () => {
    const store = await openStore();
    try {
      await store.write([change('r', 4, '0/10', 1, 'free', 'stored bio')]);
      // 4's bio rewritten at 0/20, then 4 changed (bio left out) at 0/30 and moved to 33 at 0/40,
      // then 33 changed at 0/50 and 4 inserted anew at 0/60: arriving in another order.
      const batch = [
        change('c', 4, '0/60', 6, 'new', 'bio of the new 4'),
        change('u', 33, '0/50', 5, 'team'),
        change('u', 33, '0/40', 4, 'pro', undefined, 4),
        change('u', 4, '0/30', 3, 'free'),
        change('u', 4, '0/20', 2, 'free', 'rewritten bio'),
      ];
      await store.write(batch);
      expect(await store.features(33)).toMatchObject({ id: 33, plan: 'team', bio: 'rewritten bio', updated_at: at(5) });
      expect(await store.features(4)).toMatchObject({ id: 4, plan: 'new', bio: 'bio of the new 4' });
      const before = await store.stored([4, 33]);
      await store.write(batch);
      expect(await store.stored([4, 33])).toEqual(before);
    } finally {
      await store.close();
    }
  });

  it('takes nothing from an old key whose stored version is newer than the move', async () => {
    const store = await openStore();
    try {
      await store.write([change('r', 4, '0/10', 1, 'free', 'bio as of the move')]);
      // A later version of 4 (0/30) is stored before the move (0/20) arrives: 4's value is not the one the move followed.
      await store.write([change('u', 4, '0/30', 3, 'free', 'bio after the move')]);
      await store.write([change('u', 33, '0/20', 2, 'pro', undefined, 4)]);
      const moved = await store.features(33);
      expect(moved).toMatchObject({ id: 33, plan: 'pro' });
      expect(moved?.bio).toBeUndefined();
      expect(await store.features(4)).toMatchObject({ bio: 'bio after the move' });
    } finally {
      await store.close();
    }
  });
});
