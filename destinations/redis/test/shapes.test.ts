import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, TributaryError, type DestinationSession, type RecordData } from '@tributary/core';
import { createFeatureLookup, entityKey, featureShapesKey, redisDestination } from '../src/index.js';
import { MAX_SHAPES_PER_STREAM, shapeIdOf } from '../src/shapes.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

// Feature shapes (shapes.ts): the names of a group's values stored once in a registry hash.
// These tests check that values and names always line up, that a value never reaches Redis
// before its shape, and that a missing shape fails loudly.

const peer = useRedisPeer();
let prefixes = 0;

async function open(prefix: string, extra: Record<string, unknown> = {}): Promise<DestinationSession> {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix, ...extra });
  return redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
}

async function writeAll(batches: RecordData[][], extra: Record<string, unknown> = {}): Promise<string> {
  const prefix = `s${++prefixes}`;
  const session = await open(prefix, extra);
  for (const records of batches) await session.write({ stream: 'profile', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  return prefix;
}

/** Features of each entity through the lookup API (a fresh lookup: no shape known beforehand). */
async function lookUp(prefix: string, ids: readonly string[]): Promise<Record<string, unknown>[]> {
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'profile', entityIds: ids });
    return found.map((e) => e.groups.profile?.features ?? {});
  } finally {
    await lookup.close();
  }
}

describe('feature shapes', () => {
  it('round-trips records whose fields vary in set and order, within and across batches', async () => {
    const parsed = JSON.parse('{"id":"p","tenant_id":"acme","updated_at":"2025-01-01T00:00:00.000Z","__proto__":{"x":1},"constructor":"c"}') as RecordData;
    const records: RecordData[] = [
      { id: 'a', tenant_id: 'acme', updated_at: at(1), x: 1, y: 'two' },
      { id: 'b', tenant_id: 'acme', updated_at: at(1), y: 'two', x: 1 }, // same fields, other order
      { id: 'c', tenant_id: 'acme', updated_at: at(1), x: 1 }, // a field fewer
      { id: 'd', tenant_id: 'acme', updated_at: at(1), x: 1, y: undefined, z: null }, // undefined is absent, null is a value
      { id: 'e', tenant_id: 'acme', updated_at: at(1), x: 1, y: 'two' }, // back to the first shape
      { id: 'f', tenant_id: 'acme', updated_at: at(1), nested: { a: [1, { b: 'ü' }] }, 'na:me "q"': '\u2028', '': 0 },
      parsed,
    ];
    const prefix = await writeAll([records.slice(0, 4), records.slice(4)]);
    const expected = records.map((r) => JSON.parse(JSON.stringify(r)) as Record<string, unknown>);
    const got = await lookUp(prefix, records.map((r) => String(r.id)));
    expect(got).toEqual(expected);
    // Field order is kept, and __proto__ is an own property, as JSON.parse makes it.
    got.forEach((g, i) => expect(Object.keys(g)).toEqual(Object.keys(expected[i]!)));
    const proto = got[6]!;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value).toEqual({ x: 1 });
    // One shape per distinct field list: a, e / b / c / d / f / p.
    expect(await peer.client.hlen(featureShapesKey(prefix))).toBe(6);
  });

  it('uses the configured features in their configured order, leaving out absent ones', async () => {
    const prefix = await writeAll(
      [
        [
          { id: 'a', tenant_id: 'acme', updated_at: at(1), score: 3, plan: 'pro', other: true },
          { id: 'b', tenant_id: 'acme', updated_at: at(1), plan: 'free' },
        ],
      ],
      { streams: [{ stream: 'profile', features: ['score', 'plan'] }] },
    );
    const got = await lookUp(prefix, ['a', 'b']);
    expect(got).toEqual([{ score: 3, plan: 'pro' }, { plan: 'free' }]);
    expect(Object.keys(got[0]!)).toEqual(['score', 'plan']);
    expect(await peer.client.hget(featureShapesKey(prefix), shapeIdOf('["score","plan"]'))).toBe('["score","plan"]');
  });

  it('writes JSON objects once a stream passed its shape limit, and reads both forms', async () => {
    const records = Array.from({ length: MAX_SHAPES_PER_STREAM + 50 }, (_, i) => ({ id: `e${i}`, tenant_id: 'acme', updated_at: at(1), [`only_${i}`]: i }));
    const prefix = await writeAll([records.slice(0, 700), records.slice(700)]);
    expect(await peer.client.hlen(featureShapesKey(prefix))).toBe(MAX_SHAPES_PER_STREAM);
    const last = await peer.client.hget(entityKey(prefix, 'acme', 'profile', `e${records.length - 1}`), 'g:profile');
    expect(last!.slice(30)).toBe(JSON.stringify(records.at(-1)));
    const first = await peer.client.hget(entityKey(prefix, 'acme', 'profile', 'e0'), 'g:profile');
    expect(first![30]).toBe('#');
    expect(await lookUp(prefix, records.map((r) => r.id))).toEqual(records);
  });

  it('stores the shape again ahead of each batch: values written after Redis lost its data still read', async () => {
    const prefix = `s${++prefixes}`;
    const session = await open(prefix);
    const record = (id: string) => ({ id, tenant_id: 'acme', updated_at: at(1), plan: 'pro' });
    await session.write({ stream: 'profile', records: [record('a')], emittedAt: Date.now() });
    await session.commit();
    await peer.client.flushall(); // as a restart without persistence would
    await session.write({ stream: 'profile', records: [record('b')], emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
    expect(await lookUp(prefix, ['b'])).toEqual([record('b')]);
  });

  it('fails a lookup loudly when a value names a shape the registry lacks; a sync stores it again', async () => {
    const records = [{ id: 'a', tenant_id: 'acme', updated_at: at(1), plan: 'pro' }];
    const prefix = await writeAll([records]);
    const saved = await peer.client.hgetall(featureShapesKey(prefix));
    await peer.client.del(featureShapesKey(prefix));
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      const error = await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'a' }).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(TributaryError);
      expect((error as TributaryError).kind).toBe('fatal');
      expect((error as TributaryError).userMessage).toContain(`${Object.keys(saved)[0]} is missing from ${featureShapesKey(prefix)}`);
      // A replay of the same records (the values are unchanged: same event time) stores the shape again.
      const session = await open(prefix);
      await session.write({ stream: 'profile', records, emittedAt: Date.now() });
      await session.commit();
      await session.close({ completed: true });
      expect((await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'a' })).groups.profile?.features).toEqual(records[0]);
    } finally {
      await lookup.close();
    }
  });

  it('refuses to write when the registry holds other names under a shape id, before any value is written', async () => {
    const prefix = `s${++prefixes}`;
    const names = JSON.stringify(['id', 'tenant_id', 'updated_at', 'plan']);
    await peer.client.hset(featureShapesKey(prefix), shapeIdOf(names), '["something","else"]');
    const session = await open(prefix);
    try {
      const error = await session.write({ stream: 'profile', records: [{ id: 'a', tenant_id: 'acme', updated_at: at(1), plan: 'pro' }], emittedAt: Date.now() }).then(() => undefined, (e: unknown) => e);
      expect((error as TributaryError).kind).toBe('fatal');
      expect((error as TributaryError).userMessage).toMatch(/holds other feature names under id/);
    } finally {
      await session.close({ completed: false });
    }
    expect(await peer.client.exists(entityKey(prefix, 'acme', 'profile', 'a'))).toBe(0);
  });

  it('a lookup reads a shape from the registry once, then keeps it', async () => {
    const prefix = await writeAll([[{ id: 'a', tenant_id: 'acme', updated_at: at(1), plan: 'pro' }]]);
    const hmgets = async () => Number(/cmdstat_hmget:calls=(\d+)/.exec(await peer.client.info('commandstats'))?.[1] ?? 0);
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      const before = await hmgets();
      for (let i = 0; i < 5; i++) await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'a' });
      await lookup.getMany({ tenant: 'acme', entityType: 'profile', entityIds: ['a', 'a'] });
      expect((await hmgets()) - before).toBe(1);
    } finally {
      await lookup.close();
    }
  });

  it('a lookup reconnects on its next call after its connection was dropped', async () => {
    const prefix = await writeAll([[{ id: 'a', tenant_id: 'acme', updated_at: at(1), plan: 'pro' }]]);
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      expect((await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'a' })).found).toBe(true);
      await peer.client.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await new Promise((r) => setTimeout(r, 100));
      expect((await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'a' })).found).toBe(true);
    } finally {
      await lookup.close();
    }
  });
});
