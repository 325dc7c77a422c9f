/**
 * An update that changes a row's primary key (`UPDATE t SET id = 33 WHERE id = 4`), synced
 * from the PostgreSQL CDC stream into the Redis feature store through the runtime: the source
 * sends op `u` with the new row and `_tributary_before` holding the old key (REPLICA IDENTITY
 * DEFAULT) or the whole old row (FULL). Redis stored entity 33 and left entity 4 live, so a
 * lookup of 4 served a row the table no longer has. Now, under either identity, Redis holds
 * exactly the table's rows: every id ever seen is found when, and only when, the table has it.
 */
import { randomBytes } from 'node:crypto';
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

/*
 * An update that moves a row to another primary key (`UPDATE t SET id = 33 WHERE id = 4`)
 * without changing its TOASTed column, synced from the PostgreSQL CDC stream into the Redis
 * feature store through the runtime. Under REPLICA IDENTITY DEFAULT pgoutput does not send
 * the unchanged out-of-line value: the source leaves it out and lists it in
 * `_tributary_unchanged`. Redis filled it from the value stored under the NEW key (33),
 * which has none, so the feature was lost: the lookup of 33 lacked `big` although 4 held
 * it. Now it is taken from the old key's value as of before the move, and lookups of every
 * id ever seen give exactly the table's rows, the big column included.
 */
interface ToastRow {
  id: number;
  v: number;
  big: string | null;
}

/** A row as compared: `big` as its length and head (10 kB values make unreadable diffs). */
const summary = (row: ToastRow) => ({ id: row.id, v: row.v, big: row.big === null ? null : `${row.big.length} chars: ${row.big.slice(0, 16)}…` });

/** 10 kB of random text: incompressible, so with STORAGE EXTERNAL it is stored out of line (TOASTed). */
const bigText = (): string => randomBytes(5120).toString('hex');

it('an update that moves a row to another id keeps its unchanged TOASTed column in Redis (REPLICA IDENTITY DEFAULT)', async () => {
  const table = 'kmt';
  await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, big text, tenant_id text NOT NULL, updated_at timestamptz NOT NULL)`);
  await sql.query(`ALTER TABLE ${table} ALTER COLUMN big SET STORAGE EXTERNAL`);
  for (const id of [1, 2, 4, 5]) {
    await sql.query(`INSERT INTO ${table} VALUES ($1, $1, $2, 'acme', '2026-01-01T00:00:00Z')`, [id, bigText()]);
  }
  const config = cdcConfigFor(server, 'keymovetoast');
  const catalog = await catalogFor(config, [table]);
  const store = memoryStateStore();
  const redisConfig = { port: redis.port, key_prefix: 'keymovetoast' };
  const lookup = createFeatureLookup({ port: redis.port, keyPrefix: 'keymovetoast' });
  /** Every id the table ever held. */
  const seen = new Set<number>();

  /** Syncs into Redis, then checks that lookups of every id ever seen give exactly the table's rows. */
  const syncAndCompare = async (step: string): Promise<void> => {
    const result = await runSync({ connection: 'pg-redis-keymove-toast', source: postgresSource as unknown as Source, sourceConfig: config, destination: redisDestination as unknown as Destination, destinationConfig: redisConfig, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0), `${step}: rejected`).toBe(0);
    const rows = (await sql.query<ToastRow>(`SELECT id, v, big FROM ${table} ORDER BY id`)).rows;
    for (const row of rows) seen.add(row.id);
    const expected = Object.fromEntries(rows.map((r) => [r.id, summary(r)]));
    const actual: Record<number, ReturnType<typeof summary>> = {};
    for (const id of seen) {
      const found = await lookup.get({ tenant: 'acme', entityType: table, entityId: String(id) });
      const features = found.groups[table]?.features;
      if (found.found && features) actual[id] = summary({ id: features.id as number, v: features.v as number, big: (features.big as string | undefined) ?? null });
    }
    expect(actual, `${step}: lookups`).toEqual(expected);
  };

  try {
    await syncAndCompare('snapshot');

    // The move itself leaves `big` out (DEFAULT identity: the old key only; `big` unchanged TOAST).
    await sql.query(`UPDATE ${table} SET id = 33 WHERE id = 4`);
    await syncAndCompare('4 moved to 33');

    // In one transaction (one batch): an update of 5 leaving big out, then its move; and a move
    // of 2 followed by an update of the moved row, both leaving big out.
    await sql.query('BEGIN');
    await sql.query(`UPDATE ${table} SET v = 50, updated_at = '2026-01-02T00:00:00Z' WHERE id = 5`);
    await sql.query(`UPDATE ${table} SET id = 55, updated_at = '2026-01-03T00:00:00Z' WHERE id = 5`);
    await sql.query(`UPDATE ${table} SET id = 20, updated_at = '2026-01-02T00:00:00Z' WHERE id = 2`);
    await sql.query(`UPDATE ${table} SET v = 21, updated_at = '2026-01-03T00:00:00Z' WHERE id = 20`);
    await sql.query('COMMIT');
    await syncAndCompare('5 moved to 55, 2 moved to 20 and changed');

    // A move back to a key that holds a tombstone: the value comes from the old key (33), not the tombstone.
    await sql.query(`UPDATE ${table} SET id = 4, updated_at = '2026-01-04T00:00:00Z' WHERE id = 33`);
    await syncAndCompare('33 moved back to 4');
  } finally {
    await lookup.close();
  }
});
