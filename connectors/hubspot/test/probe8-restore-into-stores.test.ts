/**
 * A HubSpot record restored from the recycle bin, into the event lake and the Redis feature
 * store, end to end (the companion of probe6-deletes-into-stores): the source
 * (@hubspot/api-client against the simulator) synced incrementally through the runtime into
 * both stores, two connections as users run them (each its own state), both with
 * `deleted_field: archivedAt` and the README's tenant mapping (`default_tenant`).
 * Create → sync → archive → sync → restore → sync.
 *
 * HubSpot restores archived records from its recycle bin within 90 days (from the UI: the API
 * has no restore endpoint, so the simulator's `restore` control operation stands for it). The
 * restored record is live again — listed, searchable once indexed, `archived: false`, no
 * `archivedAt` — and its modification date moves to the restore, so incremental search returns
 * it as a change after its archive. After the third sync it is live in the lake's
 * point-in-time read (op not `delete`, its properties), deleted as of between its archive and
 * its restore, served by Redis, and parity finds both stores equal; a contact archived in the
 * same sync stays deleted, and one archived and restored between two syncs never leaves.
 *
 * The webhook receiver is not exercised: it stores events (`contact.restore` among them) keyed
 * by event, not records, and no existing test runs webhook deletions into these stores.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@hubspot/api-client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, runSync, type ConfiguredAirbyteCatalog, type Destination, type Source, type StateStore } from '@tributary/core';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '@tributary/destination-redis';
import { startRedisServer, type RedisServer } from '../../../destinations/redis/test/redis-server.js';
import { hubspotSource } from '../src/index.js';
import { memoryStateStore } from './lake-support.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedisServer(), mkdtemp(join(tmpdir(), 'hubspot-restore-into-stores-'))]);
});
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Millisecond timestamps: a pause so that writes before and after a sync never share one. */
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

async function catalogOf(sourceConfig: Record<string, unknown>): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), parseConfig(hubspotSource.spec.connectionSpecification, sourceConfig) as never);
  const stream = discovered.streams.find((s) => s.name === 'contacts')!;
  return { streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', cursor_field: ['updatedAt'], primary_key: [['id']] }] };
}

/** The lake and Redis connections of one HubSpot account: each its own state, as two `tributary sync` connections keep it. */
function connections(sourceConfig: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog, lakeConfig: Record<string, unknown>, redisConfig: Record<string, unknown>) {
  const targets: Array<{ name: string; destination: Destination; config: Record<string, unknown>; store: StateStore }> = [
    { name: 'hubspot-lake', destination: lakeDestination, config: lakeConfig, store: memoryStateStore() },
    { name: 'hubspot-redis', destination: redisDestination as unknown as Destination, config: redisConfig, store: memoryStateStore() },
  ];
  return async function syncBoth(): Promise<void> {
    for (const t of targets) {
      const result = await runSync({ connection: t.name, source: hubspotSource as unknown as Source, sourceConfig, destination: t.destination, destinationConfig: t.config, catalog, stateStore: t.store });
      expect(result.outcome, `${t.name}: ${result.error?.userMessage ?? ''}`).toBe('completed');
      expect(result.streams.find((s) => s.key === 'contacts')?.rejected ?? 0, `${t.name} rejected records`).toBe(0);
    }
  };
}

it('a restored contact is live again in the lake and Redis, parity ok', async () => {
  const sim = await simulator({ searchLagMs: 0 });
  const ann = sim.create('contacts', { email: 'ann@example.com', firstname: 'Ann' });
  const bob = sim.create('contacts', { email: 'bob@example.com', firstname: 'Bob', lifecyclestage: 'lead' });
  const cy = sim.create('contacts', { email: 'cy@example.com', firstname: 'Cy' });
  const dee = sim.create('contacts', { email: 'dee@example.com', firstname: 'Dee' });
  const sourceConfig = { access_token: sim.token, base_url: sim.url, object_types: ['contacts'], associations: [], search_lag_seconds: 0 };
  const catalog = await catalogOf(sourceConfig);
  const prefix = 'hs_restore';
  const lakeConfig = { path: join(dir, prefix), source_system: 'hubspot', default_tenant: 'acme', streams: { contacts: { deleted_field: 'archivedAt' } } };
  const redisConfig = { port: redis.port, key_prefix: prefix, default_tenant: 'acme', streams: [{ stream: 'contacts', deleted_field: 'archivedAt' }] };
  const syncBoth = connections(sourceConfig, catalog, lakeConfig, redisConfig);
  await tick();
  await syncBoth();
  await tick();

  // Bob and Cy archived through the real client; Dee archived and restored before the next sync.
  const client = new Client({ accessToken: sim.token, basePath: sim.url, numberOfApiCallRetries: 0 });
  await client.crm.contacts.batchApi.archive({ inputs: [{ id: String(bob.id) }, { id: String(cy.id) }, { id: String(dee.id) }] });
  await tick();
  sim.restore('contacts', dee.id);
  await tick();
  await syncBoth();
  await tick();
  const archived = Date.now();
  const ids = { ann: String(ann.id), bob: String(bob.id), cy: String(cy.id), dee: String(dee.id) };
  expect((await readLatestAsOf(lakeConfig, { stream: 'contacts' })).map((r) => r.entity_key).sort()).toEqual([ids.ann, ids.dee].sort());
  await tick();

  const restored = sim.restore('contacts', bob.id);
  // As the real client sees it: live, archived false, no archivedAt, modified at the restore.
  const read = (await client.crm.contacts.batchApi.read({ inputs: [{ id: ids.bob }], properties: ['firstname', 'lastmodifieddate'], propertiesWithHistory: [] })).results[0]!;
  expect(read).toMatchObject({ id: ids.bob, archived: false, properties: { firstname: 'Bob' } });
  expect(read.archivedAt).toBeUndefined();
  expect(read.updatedAt.getTime()).toBe(restored.updatedAt);
  expect(restored.updatedAt).toBeGreaterThan(archived);
  await tick();
  await syncBoth();

  const live = [ids.ann, ids.bob, ids.dee].sort();
  expect((await readdir(lakeConfig.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'))).toEqual([]);

  // The lake, as of after the restore: Bob is live with his properties; Cy stays deleted.
  const afterRestore = Date.now();
  const latest = await readLatestAsOf(lakeConfig, { stream: 'contacts', asOf: afterRestore });
  expect(latest.map((r) => r.entity_key).sort()).toEqual(live);
  const bobRow = latest.find((r) => r.entity_key === ids.bob)!;
  expect(bobRow.op).not.toBe('delete');
  expect(bobRow.payload).toMatchObject({ id: ids.bob, archived: false, properties: { email: 'bob@example.com', firstname: 'Bob', lifecyclestage: 'lead' } });
  expect(bobRow.payload.archivedAt ?? null).toBeNull();
  const all = await readLatestAsOf(lakeConfig, { stream: 'contacts', asOf: afterRestore, includeDeleted: true });
  expect(Object.fromEntries(all.map((r) => [r.entity_key, r.op]))).toEqual({ ...Object.fromEntries(live.map((id) => [id, 'update'])), [ids.cy]: 'delete' });
  // As of between the archive and the restore, Bob was deleted.
  const between = await readLatestAsOf(lakeConfig, { stream: 'contacts', asOf: archived, keys: [ids.bob], includeDeleted: true });
  expect(between.map((r) => [r.entity_key, r.op])).toEqual([[ids.bob, 'delete']]);

  // Redis: Bob's features are served again, with Ann's and Dee's; none for Cy.
  const allIds = [ids.ann, ids.bob, ids.cy, ids.dee];
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: prefix });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'contacts', entityIds: allIds });
    const firstnames = found.map((e) => (e.groups.contacts?.features.properties as { firstname?: string } | undefined)?.firstname ?? null);
    expect(firstnames).toEqual(['Ann', 'Bob', null, 'Dee']);
  } finally {
    await lookup.close();
  }

  // Parity: the lake's rows (deletions included) against Redis.
  const redisClient = new Redis({ port: redis.port, host: '127.0.0.1' });
  try {
    const stream = catalog.streams[0]!;
    const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), {
      key: 'contacts',
      name: 'contacts',
      syncMode: 'incremental',
      destinationSyncMode: 'append_dedup',
      primaryKey: stream.primary_key ?? [['id']],
      cursorField: stream.cursor_field ?? ['updatedAt'],
      jsonSchema: stream.stream.json_schema,
      resuming: false,
    });
    const report = await compareOnlineOffline({ client: redisClient, prefix, mapping, offline: all.map(offlineRowFromLake) });
    expect(report).toMatchObject({ ok: true, offlineEntities: live.length, onlineEntities: live.length, matching: live.length, deleted: 1 });
  } finally {
    redisClient.disconnect();
  }
});

it('a contact cannot be restored while a live contact holds its email (as in HubSpot)', async () => {
  const sim = await simulator({ searchLagMs: 0 });
  const first = sim.create('contacts', { email: 'ann@example.com', firstname: 'Ann' });
  sim.archive('contacts', first.id);
  const second = sim.create('contacts', { email: 'ANN@example.com', firstname: 'Ann again' });
  expect(() => sim.restore('contacts', first.id)).toThrow(/holds its email/);
  sim.archive('contacts', second.id);
  expect(sim.restore('contacts', first.id)).toMatchObject({ archived: false, properties: { email: 'ann@example.com' } });
});
