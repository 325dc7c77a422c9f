/**
 * An update that changes only the tenant of a row (`UPDATE t SET tenant_id = 'beta' WHERE
 * id = 4`, the table keyed by `id`), synced from the PostgreSQL CDC stream into the Redis
 * feature store through the runtime. Under REPLICA IDENTITY FULL the source sends the whole
 * old row in `_tributary_before`, so the old tenant is known; Redis stored beta/4 and left
 * acme/4 live, so a lookup under acme served a row the table no longer has there. Now acme/4
 * ends: lookups of every (tenant, id) ever seen give exactly the table's rows. Under the
 * default identity the old tenant is not sent, and acme/4 stays (the README says so).
 * Embedded PostgreSQL (the Postgres source's test support), real redis-server.
 */
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type Destination, type Source } from '@tributary/core';
import { postgresSource } from '../../../connectors/postgres/src/index.js';
import { catalogFor, cdcConfigFor, memoryStateStore, usePostgres, type EmbeddedPostgresServer } from '../../../connectors/postgres/test/support.js';
import { createFeatureLookup, redisDestination } from '../src/index.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((s, client) => {
  server = s;
  sql = client;
});
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

interface Row {
  id: number;
  v: number;
  tenant_id: string;
}

it('an update that changes only the tenant ends the old tenant\'s entity in Redis (REPLICA IDENTITY FULL); DEFAULT keeps it', async () => {
  const tables = ['tm_default', 'tm_full'] as const;
  for (const table of tables) {
    await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, tenant_id text NOT NULL, updated_at timestamptz NOT NULL)`);
    await sql.query(`INSERT INTO ${table} VALUES (1, 1, 'acme', '2026-01-01T00:00:00Z'), (4, 4, 'acme', '2026-01-01T00:00:00Z'), (5, 5, 'acme', '2026-01-01T00:00:00Z')`);
  }
  await sql.query('ALTER TABLE tm_full REPLICA IDENTITY FULL');
  const config = cdcConfigFor(server, 'tenantmove');
  const catalog = await catalogFor(config, [...tables]);
  const store = memoryStateStore();
  const redisConfig = { port: redis.port, key_prefix: 'tenantmove' };
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: 'tenantmove' });
  /** Every (tenant, id) each table ever held. */
  const seen = new Map<string, Set<string>>(tables.map((t) => [t, new Set<string>()]));

  /** Syncs into Redis; returns, per table, what lookups of every (tenant, id) ever seen serve, and the table's rows. */
  const sync = async (step: string): Promise<Record<string, { actual: Record<string, Row>; expected: Record<string, Row> }>> => {
    const result = await runSync({ connection: 'pg-redis-tenantmove', source: postgresSource as unknown as Source, sourceConfig: config, destination: redisDestination as unknown as Destination, destinationConfig: redisConfig, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0), `${step}: rejected`).toBe(0);
    const out: Record<string, { actual: Record<string, Row>; expected: Record<string, Row> }> = {};
    for (const table of tables) {
      const rows = (await sql.query<Row>(`SELECT id, v, tenant_id FROM ${table} ORDER BY id`)).rows;
      for (const row of rows) seen.get(table)!.add(`${row.tenant_id}/${row.id}`);
      const actual: Record<string, Row> = {};
      for (const entry of seen.get(table)!) {
        const [tenant, id] = entry.split('/') as [string, string];
        const found = await lookup.get({ tenant, entityType: table, entityId: id });
        const features = found.groups[table]?.features;
        if (found.found && features) actual[entry] = { id: features.id as number, v: features.v as number, tenant_id: features.tenant_id as string };
      }
      out[table] = { actual, expected: Object.fromEntries(rows.map((r) => [`${r.tenant_id}/${r.id}`, r])) };
    }
    return out;
  };

  try {
    for (const [table, { actual, expected }] of Object.entries(await sync('snapshot'))) expect(actual, `snapshot: ${table}`).toEqual(expected);

    for (const table of tables) await sql.query(`UPDATE ${table} SET tenant_id = 'beta', v = 40 WHERE id = 4`);
    // In one transaction: 5 to beta and back to acme, then changed.
    await sql.query('BEGIN');
    for (const table of tables) {
      await sql.query(`UPDATE ${table} SET tenant_id = 'beta', updated_at = '2026-01-02T00:00:00Z' WHERE id = 5`);
      await sql.query(`UPDATE ${table} SET tenant_id = 'acme', updated_at = '2026-01-03T00:00:00Z' WHERE id = 5`);
      await sql.query(`UPDATE ${table} SET v = 50 WHERE id = 5`);
    }
    await sql.query('COMMIT');
    for (const table of tables) seen.get(table)!.add('beta/5');
    const moved = await sync('4 moved to beta, 5 to beta and back');
    expect(moved.tm_full!.actual, 'tm_full').toEqual(moved.tm_full!.expected);
    // The default identity sends no old tenant: acme/4 and beta/5 keep the rows they had, beside
    // beta/4 and acme/5 (documented).
    expect(moved.tm_default!.actual).toEqual({ ...moved.tm_default!.expected, 'acme/4': { id: 4, v: 4, tenant_id: 'acme' }, 'beta/5': { id: 5, v: 5, tenant_id: 'beta' } });
  } finally {
    await lookup.close();
  }
});
