/**
 * Online/offline parity: the same records synced into the event lake and into Redis give the
 * same latest values per entity, and the parity check names each kind of divergence.
 * Real redis-server, real lake on local disk, real runtime (runSync); the CLI case runs the
 * built `tributary` binary with the sample source.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFileStateStore,
  defineSource,
  parseConfig,
  runSync,
  type AirbyteStream,
  type ConfiguredAirbyteCatalog,
  type Destination,
  type RecordData,
} from '@tributary/core';
import { runCli } from '@tributary/conformance';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, decodeGroupValue, encodeGroupValue, entityKey, featureShapesKey, readAllShapes, redisConfigSchema, redisDestination, resolveMapping, type ParityReport } from '../src/index.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

const at = (minute: number): string => new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString();

const profileStream: AirbyteStream = {
  name: 'profile',
  json_schema: {
    type: 'object',
    properties: {
      id: { type: 'string' },
      tenant_id: { type: 'string' },
      updated_at: { type: 'string', format: 'date-time' },
      plan: { type: ['string', 'null'] },
      seats: { type: ['integer', 'null'] },
      score: { type: ['number', 'null'] },
    },
  },
  supported_sync_modes: ['full_refresh', 'incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['updated_at'],
  source_defined_primary_key: [['id']],
};

/** The records both stores receive, in this order: late events, a replay, two tenants. */
const RECORDS: RecordData[] = [
  { id: 'e1', tenant_id: 'acme', updated_at: at(10), plan: 'pro', seats: 5, score: 0.5 },
  { id: 'e2', tenant_id: 'acme', updated_at: at(3), plan: 'free', seats: 1, score: 0.25 },
  { id: 'e1', tenant_id: 'globex', updated_at: at(4), plan: 'team', seats: 12, score: 0.75 },
  // Late: older than what e1 already has; neither store may let it win.
  { id: 'e1', tenant_id: 'acme', updated_at: at(5), plan: 'free', seats: 1, score: 0.125 },
  // A replay of e2 (same key, same event time).
  { id: 'e2', tenant_id: 'acme', updated_at: at(3), plan: 'free', seats: 1, score: 0.25 },
  { id: 'e3', tenant_id: 'acme', updated_at: at(7), plan: null, seats: null, score: 1 },
  { id: 'e2', tenant_id: 'acme', updated_at: at(8), plan: 'pro', seats: 3, score: 0.5 },
];

/** A source that yields RECORDS in order, in pages of 2, then one checkpoint. */
const fixtureSource = defineSource({
  name: 'parity-fixture',
  spec: { connectionSpecification: { type: 'object', properties: {}, additionalProperties: false } as const, supportsIncremental: true },
  async check() {},
  async discover() {
    return { streams: [profileStream] };
  },
  async *read() {
    for (let i = 0; i < RECORDS.length; i += 2) yield { kind: 'records', stream: 'profile', records: RECORDS.slice(i, i + 2) } as const;
    yield { kind: 'checkpoint', stream: 'profile', state: { done: true } } as const;
  },
});

const catalog: ConfiguredAirbyteCatalog = {
  streams: [{ stream: profileStream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', cursor_field: ['updated_at'], primary_key: [['id']] }],
};

let server: RedisServer;
let client: Redis;
let dir: string;
beforeAll(async () => {
  server = await startRedisServer();
  client = new Redis({ port: server.port, host: '127.0.0.1' });
  dir = await mkdtemp(join(tmpdir(), 'tributary-parity-'));
});
afterAll(async () => {
  client.disconnect();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

async function syncInto(destination: Destination, destinationConfig: Record<string, unknown>, connection: string): Promise<void> {
  const result = await runSync({
    connection,
    source: fixtureSource,
    sourceConfig: {},
    destination,
    destinationConfig,
    catalog,
    stateStore: createFileStateStore(join(dir, 'state')),
  });
  expect(result.outcome, result.error?.userMessage).toBe('completed');
}

describe('online/offline parity (library)', () => {
  const redisConfig = (): Record<string, unknown> => ({ port: 0, key_prefix: 'par', streams: [{ stream: 'profile', entity_type: 'account' }] });
  let lakeConfig: Record<string, unknown>;

  async function check(): Promise<ParityReport> {
    const config = parseConfig(redisConfigSchema, { ...redisConfig(), port: server.port });
    const mapping = resolveMapping(config, { key: 'profile', name: 'profile', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: profileStream.json_schema, resuming: false });
    const rows = await readLatestAsOf(lakeConfig, { stream: 'profile', includeDeleted: true });
    return compareOnlineOffline({ client, prefix: 'par', mapping, offline: rows.map((r) => ({ record: r.payload, ingestTimeMs: Date.parse(r.ingest_time) })) });
  }

  beforeAll(async () => {
    lakeConfig = { path: join(dir, 'lake') };
    await syncInto(lakeDestination, lakeConfig, 'to-lake');
    await syncInto(redisDestination, { ...redisConfig(), port: server.port }, 'to-redis');
  });

  it('finds both stores in parity after the same records, late events and replays included', async () => {
    const report = await check();
    expect(report.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 0, values_differ: 0 });
    expect(report).toMatchObject({ ok: true, offlineEntities: 4, onlineEntities: 4, matching: 4 });
    // And the values are the newest by event time, not the last written.
    expect(decodeGroupValue((await client.hgetBuffer(entityKey('par', 'acme', 'account', 'e1'), 'g:profile'))!, await readAllShapes(client, featureShapesKey('par')))?.features).toMatchObject({ plan: 'pro', seats: 5 });
  });

  it('names each divergence: a changed value, a lost entity, a stale one, an entity only online', async () => {
    const key = (tenant: string, id: string): string => entityKey('par', tenant, 'account', id);
    const saved = await Promise.all(['e1', 'e2', 'e3'].map((id) => client.hgetallBuffer(key('acme', id)))); // as bytes: values are binary
    try {
      // values_differ: same event time, a feature changed behind the store's back.
      const e1 = decodeGroupValue((await client.hgetBuffer(key('acme', 'e1'), 'g:profile'))!, await readAllShapes(client, featureShapesKey('par')))!;
      await client.hset(key('acme', 'e1'), 'g:profile', encodeGroupValue(e1.eventTimeMs, e1.expiresAtMs, JSON.stringify({ ...e1.features, plan: 'enterprise' })));
      // missing_online: the entity is gone from Redis.
      await client.del(key('acme', 'e3'));
      // event_time_differs: Redis holds an older version of e2.
      const e2 = decodeGroupValue((await client.hgetBuffer(key('acme', 'e2'), 'g:profile'))!, await readAllShapes(client, featureShapesKey('par')))!;
      await client.hset(key('acme', 'e2'), 'g:profile', encodeGroupValue(Date.parse(at(3)), e2.expiresAtMs, JSON.stringify(e2.features)));
      // missing_offline: an entity the lake never saw.
      await client.hset(key('acme', 'ghost'), 'g:profile', encodeGroupValue(Date.parse(at(1)), undefined, '{"id":"ghost"}'));

      const report = await check();
      expect(report.counts).toEqual({ missing_online: 1, missing_offline: 1, event_time_differs: 1, values_differ: 1 });
      expect(report.ok).toBe(false);
      expect(report.matching).toBe(1); // globex/e1, untouched
      const byKind = Object.fromEntries(report.samples.map((d) => [d.kind, d]));
      expect(byKind.values_differ).toMatchObject({ tenant: 'acme', entityId: 'e1', features: ['plan'] });
      expect(byKind.missing_online).toMatchObject({ tenant: 'acme', entityId: 'e3' });
      expect(byKind.event_time_differs).toMatchObject({ tenant: 'acme', entityId: 'e2', offlineEventTime: at(8), onlineEventTime: at(3) });
      expect(byKind.missing_offline).toMatchObject({ tenant: 'acme', entityId: 'ghost' });
    } finally {
      await client.del(key('acme', 'ghost'));
      for (const [i, id] of ['e1', 'e2', 'e3'].entries()) {
        await client.del(key('acme', id));
        await client.hset(key('acme', id), saved[i]!);
      }
    }
    expect((await check()).ok).toBe(true);
  });
});


describe('tributary parity (CLI, sample source)', () => {
  it('reports parity after syncing the same sample data into both, and exits 1 with the difference after a change', async () => {
    const work = await mkdtemp(join(dir, 'cli-'));
    const source = `source:\n  connector: sample\n  config: { seed: 7, tenants: 2, counts: { companies: 40, contacts: 300, deals: 0, activities: 0 } }\n`;
    const streams = `streams:\n  - { name: contacts, sync_mode: incremental, destination_sync_mode: append_dedup }\n  - { name: companies, sync_mode: incremental, destination_sync_mode: append_dedup }\n`;
    await writeFile(join(work, 'lake.yaml'), `connection: parity-lake\n${source}destination:\n  connector: lake\n  config: { path: ./lake }\n${streams}`);
    await writeFile(join(work, 'redis.yaml'), `connection: parity-redis\n${source}destination:\n  connector: redis\n  config: { port: ${server.port}, key_prefix: cli }\n${streams}`);
    for (const file of ['lake.yaml', 'redis.yaml']) {
      const synced = await runCli(['sync', file, '--json'], work);
      expect(synced.code, synced.stderr).toBe(0);
    }

    const ok = await runCli(['parity', 'redis.yaml', '--lake', 'lake.yaml'], work);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^contacts \(entity type contacts, feature group contacts\) as of .*: IN PARITY$/m);
    expect(ok.stdout).toMatch(/lake entities 300, redis entities 300, matching 300/);
    expect(ok.stdout).toMatch(/lake entities 40, redis entities 40, matching 40/);

    // One contact's stored features changed in Redis: parity fails and names it.
    const [key] = (await client.scan('0', 'MATCH', 'cli:*:contacts:*', 'COUNT', 1000))[1];
    const stored = decodeGroupValue((await client.hgetBuffer(key!, 'g:contacts'))!, await readAllShapes(client, featureShapesKey('cli')))!;
    const value = stored.features;
    await client.hset(key!, 'g:contacts', encodeGroupValue(stored.eventTimeMs, stored.expiresAtMs, JSON.stringify({ ...value, score: Number(value.score) + 1 })));
    const failed = await runCli(['parity', 'redis.yaml', '--lake', 'lake.yaml', '--stream', 'contacts', '--json'], work);
    expect(failed.code, failed.stderr).toBe(1);
    const report = JSON.parse(failed.stdout.trim()) as ParityReport;
    expect(report.counts).toEqual({ missing_online: 0, missing_offline: 0, event_time_differs: 0, values_differ: 1 });
    expect(report.samples[0]).toMatchObject({ kind: 'values_differ', features: ['score'] });
    expect(report.matching).toBe(299);

    const usage = await runCli(['parity', 'redis.yaml'], work);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/Usage:\n\s+tributary parity <redis-sync.yaml> --lake/);
  });
});
