/**
 * Postgres CDC into the event lake, end to end through the runtime: the lake's envelope
 * carries the change format (op, LSN position, txid), and an ALTER TABLE … ADD COLUMN
 * mid-stream becomes a new schema version in the lake's registry, with the point-in-time
 * read equal to the table afterwards.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type Source } from '@tributary/core';
import { lakeDestination, readLatestAsOf, readStreamRows } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, memoryStateStore, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
let dir: string;
beforeAll(async () => {
  server = await startPostgres();
  sql = await sqlClient(server);
  dir = await mkdtemp(join(tmpdir(), 'tributary-pg-lake-'));
});
afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('CDC → lake: changes land as envelope rows; ADD COLUMN mid-stream becomes schema version 2; as-of equals the table', async () => {
  await sql.query('CREATE TABLE accounts (id int PRIMARY KEY, tenant_id text NOT NULL, plan text)');
  // FULL: a delete's before image carries every column (under DEFAULT it carries the key
  // only, and the lake takes the tenant from the row's earlier rows: lake-delete-identity.test.ts).
  await sql.query('ALTER TABLE accounts REPLICA IDENTITY FULL');
  await sql.query(`INSERT INTO accounts VALUES (1, 'acme', 'free'), (2, 'acme', 'pro'), (3, 'globex', 'free')`);
  const config = configFor(server, { slot_name: 'lake_slot', publication_name: 'lake_pub' });
  const catalog = await catalogFor(config, ['accounts']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake'), source_system: 'postgres' };
  const sync = async (): Promise<void> => {
    const result = await runSync({
      connection: 'pg-lake',
      source: postgresSource as unknown as Source,
      sourceConfig: config,
      destination: lakeDestination,
      destinationConfig: lake,
      // Discovered once, before the ALTER: the new column arrives only through the
      // stream's Relation message, as it does in a long-running CDC sync.
      catalog,
      stateStore: store,
    });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
  };
  await sync(); // snapshot

  await sql.query(`UPDATE accounts SET plan = 'team' WHERE id = 1`);
  await sql.query('ALTER TABLE accounts ADD COLUMN seats int');
  await sql.query(`INSERT INTO accounts VALUES (4, 'globex', 'pro', 12)`);
  await sql.query('DELETE FROM accounts WHERE id = 2');
  await sync(); // the stream, across the ALTER

  const rows = await readStreamRows(lake, { stream: 'public.accounts' });
  expect(rows.map((r) => [r.op, r.entity_key, r.tenant_id]).sort()).toEqual([
    ['delete', '2', 'acme'],
    ['insert', '4', 'globex'],
    ['snapshot', '1', 'acme'],
    ['snapshot', '2', 'acme'],
    ['snapshot', '3', 'globex'],
    ['update', '1', 'acme'],
  ]);
  // The snapshot was written with the table as it was; the rows after the ALTER with the wider schema.
  expect(rows.filter((r) => r.op === 'snapshot').every((r) => r.schema_version === 1)).toBe(true);
  expect(rows.find((r) => r.op === 'insert')).toMatchObject({ schema_version: 2, payload: { seats: 12 } });
  expect(rows.filter((r) => r.op !== 'snapshot').every((r) => /^[0-9A-F]+\/[0-9A-F]+$/.test(r.source_position ?? ''))).toBe(true);

  const registry = JSON.parse(await readFile(join(lake.path, '_tributary', 'schemas', `${encodeURIComponent('public.accounts')}.json`), 'utf8')) as { versions: Array<{ change: string }> };
  expect(registry.versions.map((v) => v.change)).toEqual(['initial schema', 'added seats (integer)']);

  const latest = await readLatestAsOf(lake, { stream: 'public.accounts' });
  const table = (await sql.query<{ id: number; tenant_id: string; plan: string; seats: number | null }>('SELECT * FROM accounts ORDER BY id')).rows;
  expect(latest.map((r) => ({ id: r.payload.id, tenant_id: r.tenant_id, plan: r.payload.plan, seats: r.payload.seats ?? null })).sort((a, b) => Number(a.id) - Number(b.id))).toEqual(
    table.map((r) => ({ id: r.id, tenant_id: r.tenant_id, plan: r.plan, seats: r.seats })),
  );
  await sql.query(`SELECT pg_drop_replication_slot('lake_slot')`);
});
