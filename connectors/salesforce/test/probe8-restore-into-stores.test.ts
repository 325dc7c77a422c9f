/**
 * A Salesforce record restored from the recycle bin, into the event lake and the Redis feature
 * store, end to end (the companion of probe6-deletes-into-stores): the source (jsforce against
 * the simulator) synced incrementally through the runtime into both stores, two connections
 * as users run them (each its own state), both with `deleted_field: IsDeleted` and the README's
 * tenant mapping (`default_tenant`). Create → sync → delete → sync → undelete → sync.
 *
 * Salesforce's undelete (SOAP `undelete()`, Apex `undelete`; the REST API has none, so the
 * simulator's `undelete` control operation stands for it) makes the record live again with its
 * values, IsDeleted = false and a new SystemModstamp: queryAll returns it as a change after
 * its deletion. The `deleted` endpoint may still list its id: the source must not take it for
 * a purge. After the third sync the restored account is live in the lake's point-in-time read
 * (op not `delete`, its values), deleted as of between its deletion and its restore, served by
 * Redis, and parity finds both stores equal; an account purged meanwhile stays deleted.
 *
 * SystemModstamp has whole-second precision: a record deleted and restored within one second
 * carries the same SystemModstamp on both versions (the stores then order them by arrival).
 * Both the distinct-seconds and the same-second case run, through REST and Bulk API 2.0.
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
  [redis, dir] = await Promise.all([startRedisServer(), mkdtemp(join(tmpdir(), 'salesforce-restore-into-stores-'))]);
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

const cases = [
  { bulk: 'never', seconds: 'distinct' },
  { bulk: 'always', seconds: 'distinct' },
  { bulk: 'never', seconds: 'same' },
  { bulk: 'always', seconds: 'same' },
] as const;

it.each(cases)('an undeleted account (bulk: $bulk, delete and undelete in $seconds seconds) is live again in the lake and Redis, parity ok', async ({ bulk, seconds }) => {
  const sim = await org({ records: { Account: 5 }, replicationGranularityMs: 1 });
  const sourceConfig = { ...credentials(sim), bulk, bulk_poll_interval_ms: 0 };
  const catalog = await catalogOf(sourceConfig, ['Account']);
  const prefix = `sf_restore_${bulk}_${seconds}`;
  const lakeConfig = { path: join(dir, prefix), source_system: 'salesforce', default_tenant: 'acme', streams: { Account: { deleted_field: 'IsDeleted' } } };
  const redisConfig = { port: redis.port, key_prefix: prefix, default_tenant: 'acme', streams: [{ stream: 'Account', deleted_field: 'IsDeleted' }] };
  const syncBoth = connections(sourceConfig, catalog, lakeConfig, redisConfig);
  await syncBoth();

  const ids = sim.records('Account').map((r) => String(r.Id)).sort();
  const names = Object.fromEntries(sim.records('Account').map((r) => [String(r.Id), String(r.Name)]));
  const [restored, purged] = ids;
  // Explicit SystemModstamps in the past (whole seconds), so that "distinct" and "same" do
  // not depend on how long a sync takes.
  const now = Math.floor(Date.now() / 1000) * 1000;
  const deletedAt = now - 20_000;
  const restoredAt = seconds === 'same' ? deletedAt : now - 10_000;
  sim.softDelete('Account', [restored!, purged!], { stamp: deletedAt });
  await syncBoth();
  // Between the syncs the account is gone from both stores.
  expect((await readLatestAsOf(lakeConfig, { stream: 'Account' })).map((r) => r.entity_key)).not.toContain(restored);

  sim.purge('Account', [purged!]);
  sim.undelete('Account', [restored!], { stamp: restoredAt });
  expect(sim.records('Account').find((r) => r.Id === restored)).toMatchObject({ IsDeleted: false, SystemModstamp: new Date(restoredAt).toISOString() });
  await syncBoth();

  const live = ids.filter((id) => id !== purged);
  expect((await readdir(lakeConfig.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'))).toEqual([]);

  // The lake, as of after the restore: the restored account is live, with its values.
  const afterRestore = Date.now();
  const latest = await readLatestAsOf(lakeConfig, { stream: 'Account', asOf: afterRestore });
  expect(latest.map((r) => r.entity_key).sort()).toEqual(live);
  const restoredRow = latest.find((r) => r.entity_key === restored)!;
  expect(restoredRow.op).not.toBe('delete');
  expect(restoredRow.payload).toMatchObject({ Id: restored, Name: names[restored!], IsDeleted: false });
  const all = await readLatestAsOf(lakeConfig, { stream: 'Account', asOf: afterRestore, includeDeleted: true });
  expect(Object.fromEntries(all.map((r) => [r.entity_key, r.op]))).toEqual({ ...Object.fromEntries(live.map((id) => [id, 'update'])), [purged!]: 'delete' });
  if (seconds === 'distinct') {
    // As of between the deletion and the restore, it was deleted.
    const between = await readLatestAsOf(lakeConfig, { stream: 'Account', asOf: deletedAt + 5_000, keys: [restored!], includeDeleted: true });
    expect(between.map((r) => [r.entity_key, r.op])).toEqual([[restored, 'delete']]);
  }

  // Redis: the restored account's features are served again; none for the purged one.
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: prefix });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'Account', entityIds: ids });
    expect(found.map((e) => e.groups.Account?.features.Name ?? null)).toEqual(ids.map((id) => (id === purged ? null : names[id])));
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
    expect(report).toMatchObject({ ok: true, offlineEntities: live.length, onlineEntities: live.length, matching: live.length, deleted: 1 });
  } finally {
    client.disconnect();
  }
});
