/**
 * HubSpot deletions into the event lake and the Redis feature store, end to end: the source
 * (@hubspot/api-client against the simulator) synced incrementally through the runtime into
 * both stores, two connections as users run them (each its own state), both with
 * `deleted_field: archivedAt` and the README's tenant mapping (`default_tenant`). After a first
 * sync, one contact is archived and two are merged (through the real client: HubSpot merges
 * them into a NEW contact, and the source emits a deletion for each merged-away id). After the
 * second sync the lake's point-in-time read leaves out exactly the archived and merged-away
 * contacts (op `delete` with `includeDeleted`), Redis serves no features for them, and parity
 * finds both stores equal. (A restore from the recycle bin — HubSpot's API has none; the
 * simulator's `restore` stands for the UI's — is exercised in probe8-restore-into-stores.)
 *
 * Archiving does not bump `updatedAt` (the lake's and Redis's event time for the stream): with
 * `deleted_field: archivedAt` the deletion takes its event time from `archivedAt`, so a read as
 * of a time when the contact was still live (after the first sync, before the archive) has it
 * (with `deleted_field: archived`, a boolean, the delete was dated at the last update and hid
 * the contact from such reads) — the second test.
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
  [redis, dir] = await Promise.all([startRedisServer(), mkdtemp(join(tmpdir(), 'hubspot-deletes-into-stores-'))]);
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

/** Contacts after the scenario, and what the tests need to check it. */
interface Scenario {
  lakeConfig: { path: string } & Record<string, unknown>;
  redisConfig: Record<string, unknown>;
  catalog: ConfiguredAirbyteCatalog;
  prefix: string;
  /** Epoch ms after the first sync and before any deletion: every contact was live then. */
  betweenSyncs: number;
  ids: { ann: string; annSmith: string; bob: string; cy: string; dee: string; merged: string };
}

/**
 * Five contacts, synced into both stores; then, through the real client, Bob archived, Ann and
 * Ann Smith merged (into a new contact), Dee renamed; synced again.
 */
async function archiveAndMerge(prefix: string): Promise<Scenario> {
  const sim = await simulator({ searchLagMs: 0 });
  const ann = sim.create('contacts', { email: 'ann@example.com', firstname: 'Ann' });
  const annSmith = sim.create('contacts', { email: 'ann.smith@example.com', firstname: 'Ann', lastname: 'Smith' });
  const bob = sim.create('contacts', { email: 'bob@example.com', firstname: 'Bob' });
  const cy = sim.create('contacts', { email: 'cy@example.com', firstname: 'Cy' });
  const dee = sim.create('contacts', { email: 'dee@example.com', firstname: 'Dee' });
  const sourceConfig = { access_token: sim.token, base_url: sim.url, object_types: ['contacts'], associations: [], search_lag_seconds: 0 };
  const catalog = await catalogOf(sourceConfig);
  const lakeConfig = { path: join(dir, prefix), source_system: 'hubspot', default_tenant: 'acme', streams: { contacts: { deleted_field: 'archivedAt' } } };
  const redisConfig = { port: redis.port, key_prefix: prefix, default_tenant: 'acme', streams: [{ stream: 'contacts', deleted_field: 'archivedAt' }] };
  const syncBoth = connections(sourceConfig, catalog, lakeConfig, redisConfig);
  await tick();
  await syncBoth();
  await tick();
  const betweenSyncs = Date.now();
  await tick();

  const client = new Client({ accessToken: sim.token, basePath: sim.url, numberOfApiCallRetries: 0 });
  await client.crm.contacts.batchApi.archive({ inputs: [{ id: String(bob.id) }] });
  const merged = await client.crm.contacts.basicApi.merge({ primaryObjectId: String(ann.id), objectIdToMerge: String(annSmith.id) });
  await client.crm.contacts.batchApi.update({ inputs: [{ id: String(dee.id), properties: { firstname: 'Deirdre' } }] });
  await tick();
  await syncBoth();
  const ids = { ann: String(ann.id), annSmith: String(annSmith.id), bob: String(bob.id), cy: String(cy.id), dee: String(dee.id), merged: merged.id };
  return { lakeConfig, redisConfig, catalog, prefix, betweenSyncs, ids };
}

it('archived and merged-away contacts: left out of the lake read, no features in Redis, parity ok', async () => {
  const { lakeConfig, redisConfig, catalog, prefix, betweenSyncs, ids: c } = await archiveAndMerge('hs');
  const deleted = [c.ann, c.annSmith, c.bob].sort();
  const live = [c.merged, c.cy, c.dee].sort();
  expect((await readdir(lakeConfig.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'))).toEqual([]);

  // The lake: the point-in-time read leaves out the archived and merged-away contacts.
  const latest = await readLatestAsOf(lakeConfig, { stream: 'contacts' });
  expect(latest.map((r) => r.entity_key).sort()).toEqual(live);
  expect(latest.find((r) => r.entity_key === c.dee)?.payload).toMatchObject({ archived: false, properties: { firstname: 'Deirdre' } });
  const all = await readLatestAsOf(lakeConfig, { stream: 'contacts', includeDeleted: true });
  expect(Object.fromEntries(all.map((r) => [r.entity_key, r.op]))).toEqual({
    ...Object.fromEntries(live.map((id) => [id, 'update'])),
    ...Object.fromEntries(deleted.map((id) => [id, 'delete'])),
  });
  // As of between the syncs, the merged-away contacts (deleted at the merge) were live, Dee not yet renamed.
  const then = await readLatestAsOf(lakeConfig, { stream: 'contacts', asOf: betweenSyncs, keys: [c.ann, c.annSmith, c.cy, c.dee] });
  expect(then.map((r) => [r.entity_key, r.op, (r.payload.properties as { firstname?: string }).firstname])).toEqual([
    [c.ann, 'update', 'Ann'],
    [c.annSmith, 'update', 'Ann'],
    [c.cy, 'update', 'Cy'],
    [c.dee, 'update', 'Dee'],
  ]);

  // Redis: no features for any deletion; the live contacts' latest properties.
  const allIds = [...deleted, ...live];
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: prefix });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'contacts', entityIds: allIds });
    const firstnames = found.map((e) => (e.groups.contacts?.features.properties as { firstname?: string } | undefined)?.firstname ?? null);
    const expected: Record<string, string> = { [c.merged]: 'Ann', [c.cy]: 'Cy', [c.dee]: 'Deirdre' };
    expect(firstnames).toEqual(allIds.map((id) => expected[id] ?? null));
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
    expect(report).toMatchObject({ ok: true, offlineEntities: live.length, onlineEntities: live.length, matching: live.length, deleted: deleted.length });
  } finally {
    redisClient.disconnect();
  }
});

// The archive's row takes its event time from `archivedAt` (the deletion field's time): dated at
// the last update (`updatedAt`, which archiving does not bump), the lake's history showed Bob
// deleted since his creation.
it('an archived contact is live as of a time before its archive (lake point-in-time read)', async () => {
  const { lakeConfig, betweenSyncs, ids: c } = await archiveAndMerge('hs_asof');
  const then = await readLatestAsOf(lakeConfig, { stream: 'contacts', asOf: betweenSyncs, keys: [c.bob], includeDeleted: true });
  expect(then.map((r) => [r.entity_key, r.op])).toEqual([[c.bob, 'update']]);
});
