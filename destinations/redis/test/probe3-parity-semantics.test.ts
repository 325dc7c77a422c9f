/**
 * Online/offline parity must judge with the writer's own rules:
 * - TTL: a group expires its TTL after the Redis writer wrote it (the expiry stored in its
 *   field), not after the lake ingested it; when the key is gone, the lake cannot tell when
 *   Redis wrote, so an entity whose event time is at least the TTL ago is "cannot tell";
 * - tenants: a record with an empty tenant field is stored under default_tenant, and
 *   parity's tenant selection follows that; `--tenant ''` is refused;
 * - versions: ordered to the nanosecond and by CDC position, as the writer orders them (two
 *   changes 0.5 ms apart are two versions), numeric event times to the microsecond the
 *   lake keeps.
 * Real redis-server, real lake on local disk, real runtime (runSync); each store gets its
 * own sync, so a test can give them different records.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileStateStore, defineSource, parseConfig, runSync, type AirbyteStream, type Destination, type RecordData } from '@tributary/core';
import { runCli } from '@tributary/conformance';
import { lakeDestination, readLatestAsOf, readStreamRows } from '@tributary/destination-lake';
import {
  compareOnlineOffline,
  createFeatureLookup,
  decodeGroupValue,
  entityKey,
  featureShapesKey,
  offlineRowFromLake,
  readAllShapes,
  redisConfigSchema,
  redisDestination,
  resolveMapping,
  sameValue,
  type ParityReport,
} from '../src/index.js';
import { keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-parity-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The profile stream, its event time (`updated_at`, the cursor) of the given JSON type. */
function profileStream(eventTime: Record<string, unknown> = { type: 'string', format: 'date-time' }): AirbyteStream {
  return {
    name: 'profile',
    json_schema: { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, updated_at: eventTime, plan: { type: ['string', 'null'] } } },
    supported_sync_modes: ['full_refresh', 'incremental'],
    source_defined_cursor: true,
    default_cursor_field: ['updated_at'],
    source_defined_primary_key: [['id']],
  };
}

let syncs = 0;
/** Syncs `records` (one batch, then a checkpoint) through the runtime into one destination; fails unless it completes. */
async function syncInto(stream: AirbyteStream, destination: Destination, destinationConfig: Record<string, unknown>, records: RecordData[]): Promise<void> {
  const source = defineSource({
    name: 'probe3-fixture',
    spec: { connectionSpecification: { type: 'object', properties: {}, additionalProperties: false } as const, supportsIncremental: true },
    async check() {},
    async discover() {
      return { streams: [stream] };
    },
    async *read() {
      yield { kind: 'records', stream: 'profile', records } as const;
      yield { kind: 'checkpoint', stream: 'profile', state: { done: true } } as const;
    },
  });
  const catalog = { streams: [{ stream, sync_mode: 'incremental' as const, destination_sync_mode: 'append_dedup' as const, cursor_field: ['updated_at'], primary_key: [['id']] }] };
  const connection = `probe3-${++syncs}`;
  const result = await runSync({ connection, source, sourceConfig: {}, destination, destinationConfig, catalog, stateStore: createFileStateStore(join(dir, 'state')) });
  expect(result.outcome, result.error?.userMessage).toBe('completed');
}

/** A fresh lake and Redis prefix named `name`, with extra settings for each. */
function stores(name: string, redisExtra: Record<string, unknown> = {}, lakeExtra: Record<string, unknown> = {}) {
  const lake = { path: join(dir, name), ...lakeExtra };
  const redis = { port: peer.server.port, key_prefix: name, ...redisExtra };
  return {
    name,
    lake,
    redis,
    key: (id: string, tenant = 'acme') => entityKey(name, tenant, 'profile', id),
    /** The parity report of the lake's point-in-time read against Redis (`tenant` reads one tenant of both). */
    async parity(stream: AirbyteStream, options: { now?: number; tenant?: string } = {}): Promise<ParityReport> {
      const rows = await readLatestAsOf(lake, { stream: 'profile', includeDeleted: true, ...(options.tenant !== undefined ? { tenant: options.tenant } : {}) });
      const mapping = resolveMapping(parseConfig(redisConfigSchema, redis), { ...keyedStream('profile'), jsonSchema: stream.json_schema });
      return compareOnlineOffline({ client: peer.client, prefix: name, mapping, offline: rows.map(offlineRowFromLake), ...options });
    },
    /** e1's plan as the lookup API serves it. */
    async onlinePlan(id = 'e1'): Promise<unknown> {
      const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: name });
      const found = await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: id }).finally(() => lookup.close());
      return found.groups.profile?.features.plan;
    },
  };
}

/** The expiry Redis stored for e1's group under `prefix` (epoch ms; the writer's TTL runs from its write). */
async function storedExpiry(prefix: string): Promise<number> {
  const stored = await peer.client.hgetBuffer(entityKey(prefix, 'acme', 'profile', 'e1'), 'g:profile');
  const expiresAt = decodeGroupValue(stored!, await readAllShapes(peer.client, featureShapesKey(prefix)))?.expiresAtMs;
  expect(expiresAt).toBeDefined();
  return expiresAt!;
}

describe('parity: TTL expiry follows the writer (from its write, not from the lake ingest)', () => {
  const TTL_MS = 3_600_000;
  const stream = profileStream();
  const v1 = { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:01:00.000Z', plan: 'one' };
  const v2 = { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:02:00.000Z', plan: 'two' };

  it('Redis wrote the group before the lake ingested it: at its stored expiry it is expired, not missing_online', async () => {
    const s = stores('ttl-first', { default_ttl_seconds: TTL_MS / 1000 });
    await syncInto(stream, redisDestination, s.redis, [v1]);
    const expiresAt = await storedExpiry(s.name);
    // The lake ingests after Redis wrote (a later millisecond), so ingest + TTL is after Redis's expiry.
    while (Date.now() <= expiresAt - TTL_MS) await new Promise((resolve) => setTimeout(resolve, 1));
    await syncInto(stream, lakeDestination, s.lake, [v1]);
    const [row] = await readStreamRows(s.lake, { stream: 'profile' });
    expect(Date.parse(row!.ingest_time) + TTL_MS).toBeGreaterThan(expiresAt);

    expect(await s.parity(stream, { now: expiresAt - 1 })).toMatchObject({ ok: true, matching: 1, expired: 0 });
    const atExpiry = await s.parity(stream, { now: expiresAt });
    expect(atExpiry.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 0, values_differ: 0 });
    expect(atExpiry).toMatchObject({ ok: true, matching: 0, expired: 1, expiryUnknown: 0 });
  });

  it('Redis holds an expired older version: a difference, although the lake ingested the newer one more than the TTL ago', async () => {
    const s = stores('ttl-stale', { default_ttl_seconds: TTL_MS / 1000 });
    await syncInto(stream, lakeDestination, s.lake, [v1, v2]);
    // Redis never got v2.
    await syncInto(stream, redisDestination, s.redis, [v1]);
    const expiresAt = await storedExpiry(s.name);
    const report = await s.parity(stream, { now: expiresAt });
    expect(report.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 1, values_differ: 0 });
    expect(report.samples[0]).toMatchObject({ kind: 'event_time_differs', entityId: 'e1', offlineEventTime: v2.updated_at, onlineEventTime: v1.updated_at });
    expect(report).toMatchObject({ ok: false, expired: 0 });
  });

  it('a key gone from Redis: missing_online if its version is younger than the TTL by event time, else "cannot tell" (not a difference)', async () => {
    const now = Date.now();
    const recent = { id: 'recent', tenant_id: 'acme', updated_at: new Date(now - TTL_MS / 2).toISOString(), plan: 'r' };
    const old = { id: 'old', tenant_id: 'acme', updated_at: new Date(now - 2 * TTL_MS).toISOString(), plan: 'o' };
    const other = { id: 'other', tenant_id: 'acme', updated_at: new Date(now - 2 * TTL_MS).toISOString(), plan: 'x' };
    const s = stores('ttl-gone', { default_ttl_seconds: TTL_MS / 1000 });
    await syncInto(stream, lakeDestination, s.lake, [recent, old, other]);
    await syncInto(stream, redisDestination, s.redis, [recent, old, other]);
    // Both keys gone (as if expired, or never written). `other` keeps its key, without the group.
    await peer.client.del(s.key('recent'), s.key('old'));
    await peer.client.hdel(s.key('other'), 'g:profile');
    await peer.client.hset(s.key('other'), 'g:unrelated', 'x');

    const report = await s.parity(stream, { now });
    expect(report.counts).toEqual({ missing_online: 2, missing_offline: 0, event_time_differs: 0, values_differ: 0 });
    expect(report.samples.map((d) => d.entityId).sort()).toEqual(['other', 'recent']);
    expect(report.expiryUnknown).toBe(1);
    expect(report.expiryUnknownSamples).toEqual([{ tenant: 'acme', entityId: 'old', key: s.key('old'), offlineEventTime: old.updated_at }]);
    expect(report.expired).toBe(0);
  });
});

describe('parity: tenants as the writer assigns them', () => {
  const stream = profileStream();
  const records: RecordData[] = [
    { id: 'e1', tenant_id: '', updated_at: '2025-01-01T00:01:00.000Z', plan: 'empty tenant field' },
    { id: 'e2', tenant_id: 'acme', updated_at: '2025-01-01T00:01:00.000Z', plan: 'acme' },
    { id: 'e3', tenant_id: 'globex', updated_at: '2025-01-01T00:01:00.000Z', plan: 'globex' },
  ];

  it('an empty tenant field is default_tenant in Redis, the lake and parity (all tenants, or --tenant <default>)', async () => {
    const s = stores('tenant-empty', { default_tenant: 'acme' }, { default_tenant: 'acme' });
    await syncInto(stream, lakeDestination, s.lake, records);
    await syncInto(stream, redisDestination, s.redis, records);
    expect(await peer.client.exists(s.key('e1'))).toBe(1);

    expect(await s.parity(stream)).toMatchObject({ ok: true, offlineEntities: 3, onlineEntities: 3, matching: 3 });
    const acme = await s.parity(stream, { tenant: 'acme' });
    expect(acme.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 0, values_differ: 0 });
    expect(acme).toMatchObject({ ok: true, offlineEntities: 2, onlineEntities: 2, matching: 2 });

    // A difference on e1 names it under the tenant it is stored under.
    await peer.client.del(s.key('e1'));
    const after = await s.parity(stream);
    expect(after.samples).toEqual([expect.objectContaining({ kind: 'missing_online', tenant: 'acme', entityId: 'e1', key: s.key('e1') })]);
  });

  it("an empty tenant selects nothing the writer stores: refused (library and CLI), not reported as parity", async () => {
    const mapping = resolveMapping(parseConfig(redisConfigSchema, { default_tenant: 'acme' }), { ...keyedStream('profile'), jsonSchema: stream.json_schema });
    const offline = records.map((record) => ({ record }));
    await expect(compareOnlineOffline({ client: peer.client, prefix: 'tenant-refused', mapping, offline, tenant: '' })).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/no empty tenant.*default_tenant \("acme"\)/) });

    const work = await mkdtemp(join(dir, 'cli-'));
    await writeFile(join(work, 'redis.yaml'), 'connection: unused\n');
    await writeFile(join(work, 'lake.json'), '{}');
    const cli = await runCli(['parity', 'redis.yaml', '--lake', 'lake.json', '--tenant', ''], work);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/--tenant '' selects nothing: records with an empty tenant field are stored under default_tenant/);
  });
});

describe('parity: versions ordered to the nanosecond and by CDC position, as the writer orders them', () => {
  it('two changes 0.5 ms apart (ISO, microseconds), Redis holding the earlier: event_time_differs, not matching', async () => {
    const stream = profileStream();
    const earlier = { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00.000100Z', plan: 'same' };
    const later = { ...earlier, updated_at: '2025-01-01T00:00:00.000600Z' };
    const s = stores('usec-iso');
    await syncInto(stream, lakeDestination, s.lake, [earlier, later]);
    await syncInto(stream, redisDestination, s.redis, [earlier]);
    const report = await s.parity(stream);
    expect(report.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 1, values_differ: 0 });
    expect(report.samples[0]).toMatchObject({ entityId: 'e1', offlineEventTime: '2025-01-01T00:00:00.000600Z', onlineEventTime: '2025-01-01T00:00:00.000100Z' });

    // Once Redis has the later change too, both agree.
    await syncInto(stream, redisDestination, s.redis, [later]);
    expect(await s.parity(stream)).toMatchObject({ ok: true, matching: 1 });
  });

  it('two changes of one transaction (same commit time), Redis holding the first: event_time_differs with the positions', async () => {
    const stream = profileStream();
    const change = (position: string): RecordData => ({ id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00.000Z', plan: 'same', _tributary_op: 'u', _tributary_position: position, _tributary_commit_time: '2025-01-01T00:00:00.000Z' });
    const s = stores('usec-tx');
    await syncInto(stream, lakeDestination, s.lake, [change('0/1A0'), change('0/1B0')]);
    await syncInto(stream, redisDestination, s.redis, [change('0/1A0')]);
    const report = await s.parity(stream);
    expect(report.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 1, values_differ: 0 });
    expect(report.samples[0]).toMatchObject({ offlinePosition: '0/1B0', onlinePosition: '0/1A0' });
  });

  it('numeric event times 0.5 ms apart: Redis keeps the later one, as the lake does, in either order; parity agrees', async () => {
    const stream = profileStream({ type: 'number' });
    const earlier = { id: 'e1', tenant_id: 'acme', updated_at: 1735689600000.25, plan: 'earlier' };
    const later = { id: 'e1', tenant_id: 'acme', updated_at: 1735689600000.75, plan: 'later' };
    for (const [name, records] of [
      ['num-in-order', [earlier, later]],
      ['num-reversed', [later, earlier]],
    ] as const) {
      const s = stores(name);
      await syncInto(stream, lakeDestination, s.lake, [...records]);
      await syncInto(stream, redisDestination, s.redis, [...records]);
      expect((await readLatestAsOf(s.lake, { stream: 'profile' })).map((r) => r.payload.plan)).toEqual(['later']);
      expect(await s.onlinePlan()).toBe('later');
      expect(await s.parity(stream)).toMatchObject({ ok: true, matching: 1 });
    }
  });

  it('date-time values compare to the microsecond (what both stores keep), whatever the separator', () => {
    expect(sameValue('2025-01-01T00:00:00.000600Z', '2025-01-01T00:00:00.000100Z')).toBe(false);
    expect(sameValue('2025-01-01T00:00:00.000600Z', '2025-01-01 00:00:00.0006')).toBe(true);
    // Below the microsecond the lake does not keep: equal.
    expect(sameValue('2025-01-01T00:00:00.000600123Z', '2025-01-01T00:00:00.000600Z')).toBe(true);
  });
});
