/**
 * Salesforce deletions into the event lake and the Redis feature store, end to end: the
 * source (jsforce against the simulator) synced incrementally through the runtime into both
 * stores, two connections as users run them (each its own state), both with
 * `deleted_field: IsDeleted` and the README's tenant mapping (`default_tenant`). After a first
 * sync, one account goes to the recycle bin (queryAll returns it with IsDeleted = true) and
 * another is deleted and purged (only the `deleted` endpoint still names it: the source emits
 * a tombstone `{ Id, IsDeleted: true, SystemModstamp: deletedDate }`). After the second sync
 * the lake's point-in-time read leaves out exactly those two (and shows them as op `delete`
 * with `includeDeleted`), a read as of before the deletions still has every account, Redis
 * serves no features for the two, and parity finds both stores equal. REST and Bulk API 2.0
 * alike. (A record undeleted from the recycle bin is exercised in probe8-restore-into-stores.)
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, runSync, type ConfiguredAirbyteCatalog, type Destination, type StateStore } from '@tributary/core';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '@tributary/destination-redis';
import { startRedisServer, type RedisServer } from '../../../destinations/redis/test/redis-server.js';
import { salesforceSource } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, useOrgs } from './helpers.js';

const org = useOrgs();
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedisServer(), mkdtemp(join(tmpdir(), 'salesforce-deletes-into-stores-'))]);
});
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The lake and Redis connections of one org: each its own state, as two `tributary sync` connections keep it. */
function connections(sourceConfig: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog, lakeConfig: Record<string, unknown>, redisConfig: Record<string, unknown>) {
  const targets: Array<{ name: string; destination: Destination; config: Record<string, unknown>; store: StateStore }> = [
    { name: 'salesforce-lake', destination: lakeDestination, config: lakeConfig, store: memoryStateStore() },
    { name: 'salesforce-redis', destination: redisDestination as unknown as Destination, config: redisConfig, store: memoryStateStore() },
  ];
  return async function syncBoth(): Promise<void> {
    for (const t of targets) {
      const result = await runSync({ connection: t.name, source: salesforceSource, sourceConfig, destination: t.destination, destinationConfig: t.config, catalog, stateStore: t.store });
      expect(result.outcome, `${t.name}: ${result.error?.userMessage ?? ''}`).toBe('completed');
      expect(result.streams.find((s) => s.key === 'Account')?.rejected ?? 0, `${t.name} rejected records`).toBe(0);
    }
  };
}

it.each(['never', 'always'])('soft-deleted and purged accounts (bulk: %s): left out of the lake read, no features in Redis, parity ok', async (bulk) => {
  const sim = await org({ records: { Account: 6 }, replicationGranularityMs: 1 });
  const sourceConfig = { ...credentials(sim), bulk, bulk_poll_interval_ms: 0 };
  const catalog = await catalogOf(sourceConfig, ['Account']);
  const prefix = `sf_${bulk}`;
  const lakeConfig = { path: join(dir, prefix), source_system: 'salesforce', default_tenant: 'acme', streams: { Account: { deleted_field: 'IsDeleted' } } };
  const redisConfig = { port: redis.port, key_prefix: prefix, default_tenant: 'acme', streams: [{ stream: 'Account', deleted_field: 'IsDeleted' }] };
  const syncBoth = connections(sourceConfig, catalog, lakeConfig, redisConfig);
  await syncBoth();
  // The latest event time the first sync brought (seeded SystemModstamps, long before the deletions).
  const beforeDeletes = (await readLatestAsOf(lakeConfig, { stream: 'Account' })).map((r) => r.event_time).sort().at(-1)!;

  const ids = sim.records('Account').map((r) => String(r.Id)).sort();
  const firstNames = Object.fromEntries(sim.records('Account').map((r) => [String(r.Id), r.Name]));
  const [binned, purged, renamed] = ids;
  sim.softDelete('Account', [binned!]);
  sim.purge('Account', [purged!]);
  sim.update('Account', renamed!, { Name: 'Renamed after the first sync' });
  await syncBoth();

  const live = ids.filter((id) => id !== binned && id !== purged);
  expect((await readdir(lakeConfig.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'))).toEqual([]);

  // The lake: the point-in-time read leaves out both deletions; with includeDeleted they are op `delete`.
  const latest = await readLatestAsOf(lakeConfig, { stream: 'Account' });
  expect(latest.map((r) => r.entity_key).sort()).toEqual(live);
  expect(latest.find((r) => r.entity_key === renamed)?.payload).toMatchObject({ Name: 'Renamed after the first sync', IsDeleted: false });
  const all = await readLatestAsOf(lakeConfig, { stream: 'Account', includeDeleted: true });
  expect(Object.fromEntries(all.map((r) => [r.entity_key, r.op]))).toEqual({
    ...Object.fromEntries(live.map((id) => [id, 'update'])),
    [binned!]: 'delete',
    [purged!]: 'delete',
  });
  expect(all.find((r) => r.entity_key === binned)?.payload).toMatchObject({ Id: binned, IsDeleted: true, Name: expect.any(String) });
  expect(all.find((r) => r.entity_key === purged)?.payload).toMatchObject({ Id: purged, IsDeleted: true });
  // As of before the deletions (SystemModstamp of a soft delete, deletedDate of a purge), every account was live.
  const then = await readLatestAsOf(lakeConfig, { stream: 'Account', asOf: beforeDeletes });
  expect(Object.fromEntries(then.map((r) => [r.entity_key, [r.op, r.payload.Name]]))).toEqual(Object.fromEntries(ids.map((id) => [id, ['update', firstNames[id]]])));

  // Redis: no features for either deletion; the live accounts' latest names.
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: prefix });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'Account', entityIds: ids });
    const names = Object.fromEntries(sim.records('Account').map((r) => [String(r.Id), r.Name]));
    expect(found.map((e) => e.groups.Account?.features.Name ?? null)).toEqual(ids.map((id) => names[id] ?? null));
    expect(names[renamed!]).toBe('Renamed after the first sync');
  } finally {
    await lookup.close();
  }

  // Parity: the lake's rows (deletions included) against Redis.
  const client = new Redis({ port: redis.port, host: '127.0.0.1' });
  try {
    const stream = catalog.streams[0]!;
    const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), {
      key: 'Account',
      name: 'Account',
      syncMode: 'incremental',
      destinationSyncMode: 'append_dedup',
      primaryKey: stream.primary_key ?? [['Id']],
      cursorField: stream.cursor_field ?? ['SystemModstamp'],
      jsonSchema: stream.stream.json_schema,
      resuming: false,
    });
    const report = await compareOnlineOffline({ client, prefix, mapping, offline: all.map(offlineRowFromLake) });
    expect(report).toMatchObject({ ok: true, offlineEntities: live.length, onlineEntities: live.length, matching: live.length, deleted: 2 });
  } finally {
    client.disconnect();
  }
});
