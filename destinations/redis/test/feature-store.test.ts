import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, seededRandom, type RecordData } from '@tributary/core';
import { createFeatureLookup, decodeGroupValue, encodeGroupValue, entityKey, featureShapesKey, readAllShapes, redisDestination, startLookupServer, ttlRegistryKey } from '../src/index.js';
import { shapeIdOf } from '../src/shapes.js';
import { createRespConnection, type RespConnection } from '../src/resp-connection.js';
import { createOpsEncoder } from '../src/encoded-ops.js';
import { applyOps, WRITE_SCRIPT_SHA, type GroupTarget, type WriteHint, type WriteOp } from '../src/write-script.js';
import { encodeTimeSlot, MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, writeTimeSlot } from '../src/layout.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let writer: RespConnection;
let prefixes = 0;
/** `applyOps` on ops given as objects, through the writer's connection. */
const apply = (target: GroupTarget, ops: readonly WriteOp[], nowMs: number, hint?: WriteHint) => {
  const encoder = createOpsEncoder(target, ops.length);
  for (const op of ops) encoder.add(op.key, '', op.eventTimeMs, Buffer.from(op.body));
  return applyOps(writer, target, encoder.finish(), nowMs, hint);
};
beforeAll(() => {
  writer = createRespConnection({ port: peer.server.port });
});
afterAll(() => writer.close());

/** Opens a session on a fresh key prefix, writes each batch ([stream, records]) and commits. */
async function writeAll(batches: Array<[string, RecordData[]]>, extra: Record<string, unknown> = {}) {
  const prefix = `t${++prefixes}`;
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix, ...extra });
  const names = [...new Set(batches.map(([s]) => s))];
  const session = await redisDestination.open(createConnectorContext({}), config, names.map(keyedStream));
  const rejected = [];
  for (const [s, records] of batches) {
    const outcome = await session.write({ stream: s, records, emittedAt: Date.now() });
    rejected.push(...(outcome?.rejected ?? []));
  }
  await session.commit();
  await session.close({ completed: true });
  return { prefix, rejected };
}

/** A stored group value decoded with the shapes of its key prefix. */
async function storedGroup(prefix: string, key: string, field: string) {
  return decodeGroupValue((await peer.client.hgetBuffer(key, field))!, await readAllShapes(peer.client, featureShapesKey(prefix)));
}


describe('redis feature store', () => {
  it('ignores an older event after a newer one, per feature group; the same record again is a no-op', async () => {
    const { prefix } = await writeAll(
      [
        ['profile', [{ id: 'e1', tenant_id: 'acme', updated_at: at(10), plan: 'pro', seats: 5 }]],
        ['profile', [{ id: 'e1', tenant_id: 'acme', updated_at: at(5), plan: 'free', seats: 1, stale: true }]],
        // The same record again (a replay) changes nothing. (Different values with the same
        // event time are a later version: probe3-same-time-versions.test.ts.)
        ['profile', [{ id: 'e1', tenant_id: 'acme', updated_at: at(10), plan: 'pro', seats: 5 }]],
        // Another group keeps its own event time: older than profile's, still applied.
        ['scores', [{ id: 'e1', tenant_id: 'acme', updated_at: at(3), score: 0.7 }]],
        ['scores', [{ id: 'e1', tenant_id: 'acme', updated_at: at(4), score: 0.9 }]],
      ],
      { streams: [{ stream: 'profile', entity_type: 'account' }, { stream: 'scores', entity_type: 'account' }] },
    );
    const hash = await peer.client.hgetallBuffer(entityKey(prefix, 'acme', 'account', 'e1'));
    // The documented layout: 15-character event time, 15 blanks (no expiry), then `#`, the
    // shape id and the values in the shape's order, each tagged (value-codec.ts); the
    // shape's names are in the registry.
    const profileNames = JSON.stringify(['id', 'tenant_id', 'updated_at', 'plan', 'seats']);
    const scoresNames = JSON.stringify(['id', 'tenant_id', 'updated_at', 'score']);
    // Entries: 0x05 + UTF-16 length per string, 0x03 int32, 0x04 float64; then the strings' text.
    const str = (s: string) => Buffer.from([0x05, s.length & 255, (s.length >> 8) & 255, 0, 0]);
    const int32 = (n: number) => Buffer.from([0x03, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255]);
    const float64 = (n: number) => {
      const b = Buffer.alloc(9);
      b[0] = 0x04;
      b.writeDoubleLE(n, 1);
      return b;
    };
    const head = (ms: number, id: string) => Buffer.from(`00${ms}${' '.repeat(15)}#${id}`, 'latin1');
    expect(Object.keys(hash).sort()).toEqual(['g:profile', 'g:scores']);
    expect(hash['g:profile']).toEqual(Buffer.concat([head(Date.parse(at(10)), shapeIdOf(profileNames)), str('e1'), str('acme'), str(at(10)), str('pro'), int32(5), Buffer.from(`e1acme${at(10)}pro`)]));
    expect(hash['g:scores']).toEqual(Buffer.concat([head(Date.parse(at(4)), shapeIdOf(scoresNames)), str('e1'), str('acme'), str(at(4)), float64(0.9), Buffer.from(`e1acme${at(4)}`)]));
    // Every shape written is registered, also those of records that lost to a newer value.
    const registered = await peer.client.hgetall(featureShapesKey(prefix));
    expect(registered).toMatchObject({ [shapeIdOf(profileNames)]: profileNames, [shapeIdOf(scoresNames)]: scoresNames });
    expect(Object.keys(registered)).toHaveLength(3);
    expect(await peer.client.ttl(entityKey(prefix, 'acme', 'account', 'e1'))).toBe(-1);
    // No TTL'd group was ever written: no TTL registry; an entity key and the shapes.
    expect((await peer.client.keys(`${prefix}:*`)).sort()).toEqual([entityKey(prefix, 'acme', 'account', 'e1'), featureShapesKey(prefix)]);
  });

  it('within one batch, records of the same entity are applied in order: the newest wins (of those as new, the last)', async () => {
    const records = Array.from({ length: 120 }, (_, i) => ({ id: `e${i % 3}`, tenant_id: 'acme', updated_at: at([5, 9, 1, 7][i % 4]!), n: i }));
    const { prefix } = await writeAll([['profile', records]]);
    for (const id of ['e0', 'e1', 'e2']) {
      const candidates = records.filter((r) => r.id === id);
      const newest = Math.max(...candidates.map((r) => Date.parse(r.updated_at)));
      const winner = candidates.findLast((r) => Date.parse(r.updated_at) === newest)!;
      expect((await storedGroup(prefix, entityKey(prefix, 'acme', 'profile', id), 'g:profile'))?.features).toEqual(winner);
    }
  });

  it('a newer event replaces the whole group (features it lacks are removed)', async () => {
    const { prefix } = await writeAll([
      ['profile', [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), a: 1, b: 2 }]],
      ['profile', [{ id: 'e1', tenant_id: 'acme', updated_at: at(2), a: 3 }]],
    ]);
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      const result = await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'e1' });
      expect(result.groups.profile?.features).toEqual({ id: 'e1', tenant_id: 'acme', updated_at: at(2), a: 3 });
    } finally {
      await lookup.close();
    }
  });

  it('rejects records without entity id, tenant or a valid event time, with the reason', async () => {
    const { prefix, rejected } = await writeAll([
      [
        'profile',
        [
          { id: 'ok', tenant_id: 'acme', updated_at: at(1) },
          { tenant_id: 'acme', updated_at: at(1) },
          { id: 'x2', updated_at: at(1) },
          { id: 'x3', tenant_id: 'acme' },
          { id: 'x4', tenant_id: 'acme', updated_at: 'yesterday' },
        ],
      ],
    ]);
    expect(rejected.map((r) => r.index)).toEqual([1, 2, 3, 4]);
    expect(rejected[0]!.reason).toMatch(/entity id field "id"/);
    expect(rejected[1]!.reason).toMatch(/tenant field "tenant_id"/);
    expect(rejected[2]!.reason).toMatch(/event time field "updated_at"/);
    expect(rejected[3]!.reason).toMatch(/event time field "updated_at"/);
    expect((await peer.client.keys(`${prefix}:*`)).sort()).toEqual([entityKey(prefix, 'acme', 'profile', 'ok'), featureShapesKey(prefix)]);
  });

  it('expires a feature group after its TTL; the key goes once its last group expired', async () => {
    const { prefix } = await writeAll(
      [
        ['fast', [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), clicks: 3 }, { id: 'e2', tenant_id: 'acme', updated_at: at(1), clicks: 4 }]],
        ['slow', [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), ltv: 120 }]],
      ],
      {
        streams: [
          { stream: 'fast', entity_type: 'contact', ttl_seconds: 1 },
          { stream: 'slow', entity_type: 'contact', ttl_seconds: 0 },
        ],
      },
    );
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      const before = await lookup.getMany({ tenant: 'acme', entityType: 'contact', entityIds: ['e1', 'e2'] });
      expect(Object.keys(before[0]!.groups).sort()).toEqual(['fast', 'slow']);
      expect(before[1]!.groups.fast?.features.clicks).toBe(4);
      expect(before[1]!.groups.fast?.expiresAt).toBeDefined();
      // e1 also holds a group without TTL: its key is persistent; e2's key carries the TTL.
      expect(await peer.client.pttl(entityKey(prefix, 'acme', 'contact', 'e1'))).toBe(-1);
      expect(await peer.client.pttl(entityKey(prefix, 'acme', 'contact', 'e2'))).toBeGreaterThan(0);
      expect(await peer.client.smembers(ttlRegistryKey(prefix, 'contact'))).toEqual(['g:fast']);
      // Wait (polling, no timing threshold) until Redis removed the key holding only the expiring group.
      const e2 = entityKey(prefix, 'acme', 'contact', 'e2');
      while ((await peer.client.exists(e2)) === 1) await new Promise((r) => setTimeout(r, 100));
      const after = await lookup.getMany({ tenant: 'acme', entityType: 'contact', entityIds: ['e1', 'e2'] });
      expect(after[1]!.found).toBe(false);
      expect(Object.keys(after[0]!.groups)).toEqual(['slow']);
      expect(after[0]!.groups.slow?.features.ltv).toBe(120);
      expect(await peer.client.exists(entityKey(prefix, 'acme', 'contact', 'e1'))).toBe(1);
    } finally {
      await lookup.close();
    }
  });

  it('a group whose expiry passed counts as absent: an older event then replaces it', async () => {
    const prefix = `t${++prefixes}`;
    const key = entityKey(prefix, 'acme', 'contact', 'e1');
    const group = { group: 'fast', ttlMs: 60_000, ttlRegistry: ttlRegistryKey(prefix, 'contact') };
    const newer = { key, eventTimeMs: Date.parse(at(10)), body: '{"v":"newer"}' };
    const older = { key, eventTimeMs: Date.parse(at(5)), body: '{"v":"older"}' };
    // Written "two minutes ago" with a one-minute TTL: expired, though Redis still holds it.
    const now = Date.now();
    expect(await apply(group, [newer], now - 120_000)).toEqual({ applied: 1, created: 1, ignored: 0 });
    expect(await peer.client.exists(key)).toBe(1);
    // While live, an older event is ignored; once expired, it is applied.
    expect(await apply(group, [older], now - 90_000)).toEqual({ applied: 0, created: 0, ignored: 1 });
    expect(await apply(group, [older], now)).toEqual({ applied: 1, created: 0, ignored: 0 });
    expect(decodeGroupValue((await peer.client.hget(key, 'g:fast'))!)).toEqual({ eventTimeMs: older.eventTimeMs, expiresAtMs: now + 60_000, features: { v: 'older' } });
  });

  it('create-first (plain HSETNX, or HSETNX in the script) and the general path give the same results, and the hint follows the share of new groups', async () => {
    const ttlRegistry = ttlRegistryKey(`t${++prefixes}`, 'contact');
    const states: unknown[] = [];
    // Plain HSETNX (no TTL registry seen), the script's create-first, the script's general path.
    for (const [createFirst, ttlRegistrySeen] of [[true, false], [true, true], [false, false]] as const) {
      const prefix = `t${++prefixes}`;
      const op = (id: string, minute: number, v: string) => ({ key: entityKey(prefix, 'acme', 'contact', id), eventTimeMs: Date.parse(at(minute)), body: JSON.stringify({ v }) });
      const target = { group: 'g', ttlMs: 0, ttlRegistry };
      const results = [];
      for (const ops of [
        [op('a', 5, 'a5'), op('b', 5, 'b5'), op('a', 3, 'a3-late'), op('c', 1, 'c1')],
        [op('a', 5, 'a5-replay'), op('b', 7, 'b7'), op('c', 0, 'c0-late'), op('d', 2, 'd2')],
      ]) {
        const hint = { createFirst, ttlRegistrySeen };
        results.push(await apply(target, ops, Date.now(), hint));
        results.push(hint.createFirst);
      }
      const keys = ['a', 'b', 'c', 'd'].map((id) => entityKey(prefix, 'acme', 'contact', id));
      const values = await Promise.all(keys.map(async (key) => decodeGroupValue((await peer.client.hget(key, 'g:g'))!)?.features));
      states.push({ results, values });
    }
    expect(states[1]).toEqual(states[0]);
    expect(states[2]).toEqual(states[0]);
    expect(states[0]).toEqual({
      // a5-replay: another version with a5's event time, applied later — it wins.
      results: [{ applied: 3, created: 3, ignored: 1 }, true, { applied: 3, created: 1, ignored: 1 }, false],
      values: [{ v: 'a5-replay' }, { v: 'b7' }, { v: 'c1' }, { v: 'd2' }],
    });
    // Mostly existing groups: the hint turns create-first off.
    const prefix = `t${++prefixes}`;
    const key = (id: string) => entityKey(prefix, 'acme', 'contact', id);
    const target = { group: 'g', ttlMs: 0, ttlRegistry };
    await apply(target, ['a', 'b', 'c'].map((id) => ({ key: key(id), eventTimeMs: 1, body: '{}' })), Date.now());
    const hint = { createFirst: true };
    await apply(target, ['a', 'b', 'c', 'd'].map((id) => ({ key: key(id), eventTimeMs: 2, body: '{}' })), Date.now(), hint);
    expect(hint.createFirst).toBe(false);
  });

  it('groups created with plain HSETNX while another stream writes TTL\'d groups of the entity type: their keys are made persistent before the batch is acknowledged', async () => {
    const prefix = `t${++prefixes}`;
    const ttlRegistry = ttlRegistryKey(prefix, 'contact');
    const key = (id: string) => entityKey(prefix, 'acme', 'contact', id);
    const op = (id: string, minute: number) => ({ key: key(id), eventTimeMs: Date.parse(at(minute)), body: `{"id":"${id}"}` });
    // Another stream's TTL'd group on e1: the registry exists and e1 carries a TTL.
    await apply({ group: 'fast', ttlMs: 3_600_000, ttlRegistry }, [op('e1', 1)], Date.now());
    expect(await peer.client.pttl(key('e1'))).toBeGreaterThan(0);
    // A writer that has not seen the registry creates its group with plain HSETNX, on e1 and a new e2.
    const hint: WriteHint = { createFirst: true };
    expect(await apply({ group: 'slow', ttlMs: 0, ttlRegistry }, [op('e1', 2), op('e2', 2)], Date.now(), hint)).toEqual({ applied: 2, created: 2, ignored: 0 });
    expect(hint.ttlRegistrySeen).toBe(true);
    // A group without TTL makes its key persistent (else it would vanish with the TTL'd group).
    expect(await peer.client.pttl(key('e1'))).toBe(-1);
    expect(await peer.client.pttl(key('e2'))).toBe(-1);
    expect(decodeGroupValue((await peer.client.hget(key('e1'), 'g:slow'))!)?.features).toEqual({ id: 'e1' });
  });

  it('the script\'s repair mode: persists the key holding the exact value, writes a value that vanished, leaves a newer one alone', async () => {
    const prefix = `t${++prefixes}`;
    const ttlRegistry = ttlRegistryKey(prefix, 'contact');
    await peer.client.sadd(ttlRegistry, 'g:fast');
    const key = (id: string) => entityKey(prefix, 'acme', 'contact', id);
    const value = (minute: number, v: string) => encodeGroupValue(Date.parse(at(minute)), undefined, JSON.stringify({ v }));
    await peer.client.hset(key('same'), 'g:g', value(5, 'mine'));
    await peer.client.pexpire(key('same'), 3_600_000);
    await peer.client.hset(key('newer'), 'g:g', value(9, 'newer'));
    await peer.client.pexpire(key('newer'), 3_600_000);
    const keys = [key('same'), key('gone'), key('newer')];
    const values = [value(5, 'mine'), value(5, 'gone'), value(5, 'older')];
    const reply = await peer.client.evalsha(WRITE_SCRIPT_SHA, keys.length + 1, ttlRegistry, ...keys, String(Date.now()), 'g:g', '0', '2', ...values);
    expect(reply).toEqual([1, 1]); // only the vanished value was written
    expect(await peer.client.pttl(key('same'))).toBe(-1);
    expect(await peer.client.pttl(key('gone'))).toBe(-1);
    expect(await peer.client.hget(key('gone'), 'g:g')).toBe(values[1]);
    expect(await peer.client.hget(key('newer'), 'g:g')).toBe(value(9, 'newer'));
    expect(await peer.client.pttl(key('newer'))).toBeGreaterThan(0);
  });

  it('encodes every op byte-exactly: multi-byte keys and values, large values, many ops past the first buffer', async () => {
    const prefix = `t${++prefixes}`;
    const ttlRegistry = ttlRegistryKey(prefix, 'contact');
    const random = seededRandom(11);
    const text = (n: number) => Array.from({ length: n }, () => ['a', 'é', '€', '😀', ':', '%', '"', '\\', '\n'][Math.floor(random() * 9)]).join('');
    const ops = Array.from({ length: 600 }, (_, i) => ({
      // Every 50th key is long enough that its UTF-8 length needs one more digit than its UTF-16 length.
      key: entityKey(prefix, `tenant-${text(3)}`, 'contact', `${i}-${text(i % 50 === 0 ? 40 : 5)}`),
      eventTimeMs: Math.round((random() - 0.3) * 4e12),
      body: JSON.stringify({ i, v: text(i % 50 === 0 ? 20_000 : 40) }),
    }));
    for (const [group, ttlMs, hint] of [['plain', 0, { createFirst: true }], ['script', 0, { createFirst: false }], ['ttl', 3_600_000, { createFirst: true }]] as const) {
      const now = Date.now();
      const target = { group, ttlMs, ttlRegistry };
      // One buffer sized for one op: the encoder grows it.
      const encoder = createOpsEncoder(target, 1);
      for (const op of ops) encoder.add(op.key, '', op.eventTimeMs, Buffer.from(op.body));
      expect(await applyOps(writer, target, encoder.finish(), now, { ...hint })).toEqual({ applied: 600, created: 600, ignored: 0 });
      const stored = await Promise.all(ops.map((op) => peer.client.hget(op.key, `g:${group}`)));
      expect(stored).toEqual(ops.map((op) => encodeGroupValue(op.eventTimeMs, ttlMs > 0 ? now + ttlMs : undefined, op.body)));
    }
  });

  it('key TTL follows its groups: a group losing its TTL makes the key persistent, and a persistent key stays so', async () => {
    const prefix = `t${++prefixes}`;
    const key = entityKey(prefix, 'acme', 'contact', 'e1');
    const ttlRegistry = ttlRegistryKey(prefix, 'contact');
    const op = (minute: number) => ({ key, eventTimeMs: Date.parse(at(minute)), body: `{"m":${minute}}` });
    await apply({ group: 'g', ttlMs: 3_600_000, ttlRegistry }, [op(1)], Date.now());
    expect(await peer.client.smembers(ttlRegistry)).toEqual(['g:g']);
    expect(await peer.client.pttl(key)).toBeGreaterThan(3_500_000);
    // The same group's config drops its TTL: the stored expiry is gone and so is the key's TTL.
    await apply({ group: 'g', ttlMs: 0, ttlRegistry }, [op(2)], Date.now());
    expect(await peer.client.pttl(key)).toBe(-1);
    expect(decodeGroupValue((await peer.client.hget(key, 'g:g'))!)?.expiresAtMs).toBeUndefined();
    // A TTL'd group written next to it never puts a TTL on the key holding a group without one.
    await apply({ group: 'h', ttlMs: 1_000, ttlRegistry }, [op(3)], Date.now());
    expect(await peer.client.pttl(key)).toBe(-1);
    expect(decodeGroupValue((await peer.client.hget(key, 'g:h'))!)?.expiresAtMs).toBeGreaterThan(Date.now());
  });

  it('rejects event times outside the range the layout holds, with the reason', async () => {
    const { prefix, rejected } = await writeAll([
      ['profile', [{ id: 'far', tenant_id: 'acme', updated_at: 8.64e15 }, { id: 'old', tenant_id: 'acme', updated_at: -1e15 }, { id: 'ok', tenant_id: 'acme', updated_at: -86_400_000 }]],
    ]);
    expect(rejected.map((r) => r.index)).toEqual([0, 1]);
    expect(rejected[0]!.reason).toMatch(/outside the years/);
    const ok = await storedGroup(prefix, entityKey(prefix, 'acme', 'profile', 'ok'), 'g:profile');
    expect(ok?.eventTimeMs).toBe(-86_400_000);
  });

  it('reuses a batch buffer only once Redis answered its batch: batches larger than the socket buffers, sent while Redis is stopped, all arrive intact', async () => {
    // ~10 MB per batch: the kernel takes only part of one while Redis reads nothing (a few
    // MB here), so the rest waits in the client's socket queue. A buffer handed to the next
    // batch before its batch was answered would be overwritten there.
    const prefix = `t${++prefixes}`;
    const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
    const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('blobs')]);
    const blob = (b: number, i: number) => `${b}/${i}/${'é'.repeat(i % 5)}${String.fromCharCode(97 + ((b * 7 + i) % 26)).repeat(7000 + ((b * 31 + i) % 97))}`;
    const batches = Array.from({ length: 4 }, (_, b) => Array.from({ length: 1500 }, (_, i) => ({ id: `e${b}-${i}`, tenant_id: 'acme', updated_at: at(b), blob: blob(b, i) })));
    const paused = peer.server.pause(300);
    for (const records of batches) await session.write({ stream: 'blobs', records, emittedAt: Date.now() });
    await paused;
    await session.commit();
    await session.close({ completed: true });
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      for (let b = 0; b < batches.length; b++) {
        const found = await lookup.getMany({ tenant: 'acme', entityType: 'blobs', entityIds: batches[b]!.map((r) => r.id) });
        found.forEach((entity, i) => expect(entity.groups.blobs?.features.blob, `batch ${b} record ${i}`).toBe(blob(b, i)));
      }
    } finally {
      await lookup.close();
    }
  });

  it('reloads the script after Redis lost it (NOSCRIPT fallback)', async () => {
    const prefix = `t${++prefixes}`;
    const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
    const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
    await peer.client.script('FLUSH');
    await session.write({ stream: 'profile', records: [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), a: 1 }], emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
    expect((await storedGroup(prefix, entityKey(prefix, 'acme', 'profile', 'e1'), 'g:profile'))?.features).toEqual({ id: 'e1', tenant_id: 'acme', updated_at: at(1), a: 1 });
  });

  it('looks features up through the library and over HTTP, with their ages', async () => {
    const { prefix } = await writeAll(
      [
        ['profile', [{ id: 'c1', tenant_id: 'acme', updated_at: at(0), plan: 'pro', tags: ['a', 'b'] }, { id: 'c:2', tenant_id: 'acme', updated_at: at(30), plan: 'free', tags: [] }]],
        ['scores', [{ id: 'c1', tenant_id: 'acme', event_time: at(50), score: 0.25 }]],
      ],
      { streams: [{ stream: 'profile', entity_type: 'contact' }, { stream: 'scores', entity_type: 'contact', event_time_field: 'event_time' }] },
    );
    const now = Date.parse(at(60));
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix, now: () => now });
    const http = await startLookupServer({ lookup });
    try {
      const one = await lookup.get({ tenant: 'acme', entityType: 'contact', entityId: 'c1' });
      expect(one).toEqual({
        tenant: 'acme',
        entityType: 'contact',
        entityId: 'c1',
        found: true,
        groups: {
          profile: { eventTime: at(0), eventTimeMs: Date.parse(at(0)), ageMs: 60 * 60_000, features: { id: 'c1', tenant_id: 'acme', updated_at: at(0), plan: 'pro', tags: ['a', 'b'] } },
          scores: { eventTime: at(50), eventTimeMs: Date.parse(at(50)), ageMs: 10 * 60_000, features: { id: 'c1', tenant_id: 'acme', event_time: at(50), score: 0.25 } },
        },
      });
      const many = await lookup.getMany({ tenant: 'acme', entityType: 'contact', entityIds: ['c:2', 'missing', 'c1'], groups: ['profile'] });
      expect(many.map((e) => [e.entityId, e.found, e.groups.profile?.ageMs, e.groups.profile?.features.plan])).toEqual([
        ['c:2', true, 30 * 60_000, 'free'],
        ['missing', false, undefined, undefined],
        ['c1', true, 60 * 60_000, 'pro'],
      ]);
      expect(Object.keys(many[2]!.groups)).toEqual(['profile']);

      expect(http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const got = await fetch(`${http.url}/features/acme/contact/c1?groups=scores`);
      expect(got.status).toBe(200);
      expect(await got.json()).toEqual({ ...one, groups: { scores: one.groups.scores } });
      const posted = await fetch(`${http.url}/features`, { method: 'POST', body: JSON.stringify({ tenant: 'acme', entity_type: 'contact', entity_ids: ['c1', 'c:2'] }) });
      expect(posted.status).toBe(200);
      const body = (await posted.json()) as { entities: Array<{ entityId: string; groups: Record<string, { ageMs: number }> }> };
      expect(body.entities.map((e) => [e.entityId, e.groups.profile?.ageMs])).toEqual([
        ['c1', 60 * 60_000],
        ['c:2', 30 * 60_000],
      ]);
      expect((await fetch(`${http.url}/features/acme/contact/${encodeURIComponent('c:2')}`)).status).toBe(200);
      expect((await fetch(`${http.url}/features/acme/contact/nobody`)).status).toBe(404);
      expect((await fetch(`${http.url}/features`, { method: 'POST', body: '{"tenant":"acme"}' })).status).toBe(400);
      expect((await fetch(`${http.url}/elsewhere`)).status).toBe(404);
      // A malformed percent-escape in the path is a bad request, not a server error.
      expect((await fetch(`${http.url}/features/acme/contact/%E0`)).status).toBe(400);
    } finally {
      await http.close();
      await lookup.close();
    }
  });
});

describe('layout encoding', () => {
  it('writeTimeSlot writes exactly the bytes of encodeTimeSlot, negative times included', () => {
    const random = seededRandom(3);
    const out = Buffer.alloc(15);
    for (const ms of [0, 1, -1, MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS, 1e12, 1e12 - 1, 1e13, ...Array.from({ length: 2_000 }, () => Math.round(MIN_EVENT_TIME_MS + random() * (MAX_EVENT_TIME_MS - MIN_EVENT_TIME_MS) * (random() < 0.5 ? 0.1 : 1)))]) {
      writeTimeSlot(out, 0, ms);
      expect(out.toString('latin1'), String(ms)).toBe(encodeTimeSlot(ms));
    }
  });
});
