/**
 * CDC into the event lake: `UPDATE … SET id = 33 WHERE id = 4` moves a row to another
 * primary key. The source sends op `u` with the new row and `_tributary_before` holding the
 * old key (REPLICA IDENTITY DEFAULT) or the whole old row (FULL); the lake ends the old key
 * at the update's position, so the point-in-time read equals the table. Before, the row
 * stayed live under its old key beside its new one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type Source } from '@tributary/core';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { catalogFor, cdcConfigFor, memoryStateStore, usePostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((s, client) => {
  server = s;
  sql = client;
});
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-pg-lake-key-move-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

for (const identity of ['DEFAULT', 'FULL'] as const) {
  it(`an update of the primary key leaves no row under the old key (REPLICA IDENTITY ${identity})`, async () => {
    const table = `moved_${identity.toLowerCase()}`;
    await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, v int)`);
    await sql.query(`ALTER TABLE ${table} REPLICA IDENTITY ${identity}`);
    await sql.query(`INSERT INTO ${table} VALUES (1, 'acme', 'c1', 1), (4, 'acme', 'c4', 4), (5, 'globex', 'c5', 5)`);
    const config = cdcConfigFor(server, table);
    const catalog = await catalogFor(config, [table]);
    const store = memoryStateStore();
    const lake = { path: join(dir, table), source_system: 'postgres' };
    const sync = async (): Promise<void> => {
      const result = await runSync({ connection: `pg-${table}`, source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
      expect(result.outcome, result.error?.userMessage).toBe('completed');
      expect(result.streams.reduce((n, s) => n + s.rejected, 0)).toBe(0);
    };
    await sync(); // snapshot

    await sql.query(`UPDATE ${table} SET id = 33 WHERE id = 4`);
    // A row inserted since the snapshot, then moved twice (the second move back onto its first key).
    await sql.query(`INSERT INTO ${table} VALUES (6, 'globex', 'c6', 6)`);
    await sql.query(`UPDATE ${table} SET id = 60, v = 61 WHERE id = 6`);
    await sql.query(`UPDATE ${table} SET id = 6 WHERE id = 60`);
    // Key and tenant changed together: the old key ends in the old tenant.
    await sql.query(`UPDATE ${table} SET id = 50, tenant_id = 'acme' WHERE id = 5`);
    await sync();

    const latest = await readLatestAsOf(lake, { stream: `public.${table}` });
    const rows = (await sql.query<{ id: number; tenant_id: string; customer_id: string; v: number }>(`SELECT * FROM ${table} ORDER BY id`)).rows;
    expect(latest.map((r) => ({ id: r.payload.id, tenant_id: r.tenant_id, customer_id: r.customer_id, v: r.payload.v })).sort((a, b) => Number(a.id) - Number(b.id))).toEqual(rows);
  });
}
