/**
 * Parity of the event lake and the Redis feature store after `UPDATE t SET tenant_id =
 * 'beta' WHERE id = 4` on a table keyed by `id` under REPLICA IDENTITY FULL, synced from
 * the PostgreSQL CDC stream into both (two connections, as in production). Redis ends
 * acme/4 (a tombstone); the lake kept acme/4 live, so the parity check reported it as
 * `missing_online`. The lake now ends it too: both stores agree, and both equal the table.
 * Embedded PostgreSQL, real redis-server, a local lake.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, runSync, type Destination, type Source } from '@tributary/core';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '@tributary/destination-redis';
import { startRedisServer, type RedisServer } from '../../../destinations/redis/test/redis-server.js';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, memoryStateStore, usePostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((s, client) => {
  server = s;
  sql = client;
});
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedisServer(), mkdtemp(join(tmpdir(), 'tributary-pg-tenant-move-parity-'))]);
});
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('after an update that changes only the tenant (REPLICA IDENTITY FULL), the lake and Redis agree', async () => {
  const table = 'tenant_parity';
  await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, tenant_id text NOT NULL, v int NOT NULL, updated_at timestamptz NOT NULL)`);
  await sql.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
  await sql.query(`INSERT INTO ${table} VALUES (1, 'acme', 1, '2026-01-01T00:00:00Z'), (4, 'acme', 4, '2026-01-01T00:00:00Z'), (5, 'acme', 5, '2026-01-01T00:00:00Z')`);
  const config = configFor(server);
  const catalog = await catalogFor(config, [table]);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake'), source_system: 'postgres' };
  const redisConfig = { port: redis.port, key_prefix: 'tenantparity' };
  const sync = async (destination: Destination, destinationConfig: Record<string, unknown>, name: string): Promise<void> => {
    const sourceConfig = { ...config, slot_name: `${name}_slot`, publication_name: `${name}_pub` };
    const result = await runSync({ connection: name, source: postgresSource as unknown as Source, sourceConfig, destination, destinationConfig, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0)).toBe(0);
  };
  const syncBoth = async (): Promise<void> => {
    await sync(lakeDestination, lake, 'lake');
    await sync(redisDestination as unknown as Destination, redisConfig, 'redis');
  };
  await syncBoth(); // snapshot

  await sql.query(`UPDATE ${table} SET tenant_id = 'beta', v = 40, updated_at = '2026-01-02T00:00:00Z' WHERE id = 4`);
  // In one transaction: 5 to beta and back to acme.
  await sql.query('BEGIN');
  await sql.query(`UPDATE ${table} SET tenant_id = 'beta', updated_at = '2026-01-03T00:00:00Z' WHERE id = 5`);
  await sql.query(`UPDATE ${table} SET tenant_id = 'acme', v = 50, updated_at = '2026-01-04T00:00:00Z' WHERE id = 5`);
  await sql.query('COMMIT');
  await syncBoth();

  const latest = await readLatestAsOf(lake, { stream: `public.${table}` });
  const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), {
    key: `public.${table}`,
    name: table,
    namespace: 'public',
    syncMode: 'incremental',
    destinationSyncMode: 'append_dedup',
    primaryKey: [['id']],
    cursorField: ['_tributary_position'],
    jsonSchema: catalog.streams[0]!.stream.json_schema,
    resuming: false,
  });
  const client = new Redis({ port: redis.port, host: '127.0.0.1' });
  try {
    const report = await compareOnlineOffline({ client, prefix: 'tenantparity', mapping, offline: latest.map(offlineRowFromLake) });
    // Before, acme/4 was live in the lake and ended in Redis: `missing_online`.
    expect(report.samples).toEqual([]);
    expect(report).toMatchObject({ ok: true, offlineEntities: 3, matching: 3 });
  } finally {
    client.disconnect();
  }
  // And both equal the table.
  const rows = (await sql.query<{ id: number; tenant_id: string; v: number }>(`SELECT id, tenant_id, v FROM ${table} ORDER BY id`)).rows;
  expect(latest.map((r) => ({ id: r.payload.id, tenant_id: r.tenant_id, v: r.payload.v })).sort((a, b) => Number(a.id) - Number(b.id))).toEqual(rows);
});
