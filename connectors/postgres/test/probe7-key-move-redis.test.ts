/**
 * An update that changes a row's primary key (`UPDATE t SET id = 33 WHERE id = 4`), synced
 * from the PostgreSQL CDC stream into the Redis feature store through the runtime: the source
 * sends op `u` with the new row and `_tributary_before` holding the old key (REPLICA IDENTITY
 * DEFAULT) or the whole old row (FULL). Redis stored entity 33 and left entity 4 live, so a
 * lookup of 4 served a row the table no longer has. Now, under either identity, Redis holds
 * exactly the table's rows: every id ever seen is found when, and only when, the table has it.
 */
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type Destination, type Source } from '@tributary/core';
import { createFeatureLookup, redisDestination } from '@tributary/destination-redis';
import { startRedisServer, type RedisServer } from '../../../destinations/redis/test/redis-server.js';
import { postgresSource } from '../src/index.js';
import { catalogFor, cdcConfigFor, memoryStateStore, usePostgres, type EmbeddedPostgresServer } from './support.js';

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

it('an update that moves a row to another id ends the old id in Redis (REPLICA IDENTITY DEFAULT and FULL)', async () => {
  const tables = ['km_default', 'km_full'] as const;
  for (const table of tables) {
    await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, tenant_id text NOT NULL, updated_at timestamptz NOT NULL)`);
    await sql.query(`INSERT INTO ${table} VALUES (1, 1, 'acme', '2026-01-01T00:00:00Z'), (2, 2, 'acme', '2026-01-01T00:00:00Z'), (4, 4, 'acme', '2026-01-01T00:00:00Z'), (5, 5, 'acme', '2026-01-01T00:00:00Z')`);
  }
  await sql.query('ALTER TABLE km_full REPLICA IDENTITY FULL');
  const config = cdcConfigFor(server, 'keymove');
  const catalog = await catalogFor(config, [...tables]);
  const store = memoryStateStore();
  const redisConfig = { port: redis.port, key_prefix: 'keymove' };
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: 'keymove' });
  /** Every (tenant, id) each table ever held. */
  const seen = new Map<string, Set<string>>(tables.map((t) => [t, new Set<string>()]));

  /** Syncs into Redis, then checks that lookups of every (tenant, id) ever seen give exactly the table's rows. */
  const syncAndCompare = async (step: string): Promise<void> => {
    const result = await runSync({ connection: 'pg-redis-keymove', source: postgresSource as unknown as Source, sourceConfig: config, destination: redisDestination as unknown as Destination, destinationConfig: redisConfig, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0), `${step}: rejected`).toBe(0);
    for (const table of tables) {
      const rows = (await sql.query<Row>(`SELECT id, v, tenant_id FROM ${table} ORDER BY id`)).rows;
      for (const row of rows) seen.get(table)!.add(`${row.tenant_id}/${row.id}`);
      const expected = Object.fromEntries(rows.map((r) => [`${r.tenant_id}/${r.id}`, r]));
      const actual: Record<string, Row> = {};
      for (const entry of seen.get(table)!) {
        const [tenant, id] = entry.split('/') as [string, string];
        const found = await lookup.get({ tenant, entityType: table, entityId: id });
        const features = found.groups[table]?.features;
        if (found.found && features) actual[entry] = { id: features.id as number, v: features.v as number, tenant_id: features.tenant_id as string };
      }
      expect(actual, `${step}: ${table}`).toEqual(expected);
    }
  };

  try {
    await syncAndCompare('snapshot');

    for (const table of tables) await sql.query(`UPDATE ${table} SET id = 33 WHERE id = 4`);
    await syncAndCompare('4 moved to 33');

    // In one transaction: a move, a move back, a change of the moved row.
    await sql.query('BEGIN');
    for (const table of tables) {
      await sql.query(`UPDATE ${table} SET id = 20, updated_at = '2026-01-02T00:00:00Z' WHERE id = 2`);
      await sql.query(`UPDATE ${table} SET id = 4, updated_at = '2026-01-02T00:00:00Z' WHERE id = 33`);
      await sql.query(`UPDATE ${table} SET v = 40 WHERE id = 4`);
    }
    await sql.query('COMMIT');
    await syncAndCompare('33 moved back to 4, 2 moved to 20');

    // The whole old row (FULL) names its tenant: a move to another tenant ends the old tenant's entity.
    await sql.query(`UPDATE km_full SET id = 50, tenant_id = 'beta' WHERE id = 5`);
    await syncAndCompare('5 moved to beta/50');
  } finally {
    await lookup.close();
  }
});
