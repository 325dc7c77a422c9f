/**
 * CDC into the event lake: `UPDATE t SET tenant_id = 'beta' WHERE id = 4` changes only the
 * tenant of a row of a table keyed by `id`. The lake partitions and reads by tenant and
 * key, and nothing ended key 4 in acme: point-in-time reads returned the row in both
 * tenants. Under REPLICA IDENTITY FULL the source's before-image holds the old tenant, and
 * the lake now ends the key there at the update's position (and fills a TOASTed column the
 * update left out from the old tenant's row): the read equals the table. Under the default
 * identity the old tenant is not sent, and acme keeps the row (documented).
 * Embedded PostgreSQL, the runtime, a local lake read with DuckDB.
 */
import { randomBytes } from 'node:crypto';
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
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-pg-lake-tenant-move-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Row {
  id: number;
  tenant_id: string;
  v: number;
  big: string | null;
}
/** A row as compared: `big` as its length and head (10 kB values make unreadable diffs). */
const summary = (row: Row) => ({ id: row.id, tenant_id: row.tenant_id, v: row.v, big: row.big === null ? null : `${row.big.length} chars: ${row.big.slice(0, 16)}…` });
/** 10 kB of random text: incompressible, so with STORAGE EXTERNAL it is stored out of line (TOASTed). */
const bigText = (): string => randomBytes(5120).toString('hex');

/** Syncs `table` (CDC) into its own lake through the runtime; returns the lake's point-in-time read and the table's rows. */
async function lakeSyncOf(table: string): Promise<() => Promise<{ read: Row[]; rows: Row[] }>> {
  const config = cdcConfigFor(server, table);
  const catalog = await catalogFor(config, [table]);
  const store = memoryStateStore();
  const lake = { path: join(dir, table), source_system: 'postgres' };
  return async () => {
    const result = await runSync({ connection: `pg-${table}`, source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0)).toBe(0);
    const latest = await readLatestAsOf(lake, { stream: `public.${table}` });
    const read = latest.map((r) => ({ id: r.payload.id as number, tenant_id: r.tenant_id, v: r.payload.v as number, big: (r.payload.big as string | null | undefined) ?? null })).sort((a, b) => a.id - b.id || a.tenant_id.localeCompare(b.tenant_id));
    const rows = (await sql.query<Row>(`SELECT id, tenant_id, v, big FROM ${table} ORDER BY id`)).rows;
    return { read, rows };
  };
}

for (const identity of ['FULL', 'DEFAULT'] as const) {
  it(`an update that changes only the tenant (REPLICA IDENTITY ${identity})`, async () => {
    const table = `tenant_move_${identity.toLowerCase()}`;
    await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, v int NOT NULL, big text)`);
    await sql.query(`ALTER TABLE ${table} ALTER COLUMN big SET STORAGE EXTERNAL`);
    await sql.query(`ALTER TABLE ${table} REPLICA IDENTITY ${identity}`);
    for (const id of [1, 4, 5]) await sql.query(`INSERT INTO ${table} VALUES ($1, 'acme', $2, $1, $3)`, [id, `c${id}`, bigText()]);
    const sync = await lakeSyncOf(table);
    const snapshot = await sync();
    expect(snapshot.read.map(summary)).toEqual(snapshot.rows.map(summary));

    // 4 to beta (its TOASTed column unchanged: not sent).
    await sql.query(`UPDATE ${table} SET tenant_id = 'beta', v = 40 WHERE id = 4`);
    // In one transaction: 5 to beta and back to acme, then changed.
    await sql.query('BEGIN');
    await sql.query(`UPDATE ${table} SET tenant_id = 'beta' WHERE id = 5`);
    await sql.query(`UPDATE ${table} SET tenant_id = 'acme' WHERE id = 5`);
    await sql.query(`UPDATE ${table} SET v = 50 WHERE id = 5`);
    await sql.query('COMMIT');
    // A row inserted since the snapshot, moved to another tenant in the same sync.
    await sql.query(`INSERT INTO ${table} VALUES (6, 'acme', 'c6', 6, $1)`, [bigText()]);
    await sql.query(`UPDATE ${table} SET tenant_id = 'globex' WHERE id = 6`);
    const { read, rows } = await sync();

    if (identity === 'FULL') {
      expect(read.map(summary)).toEqual(rows.map(summary));
      return;
    }
    // The default identity sends no old tenant: acme keeps 4 and 6, beta keeps 5, as they were
    // before those updates (documented). The TOASTed column the updates left out has no earlier
    // row in their new tenant either.
    const ghosts = read.filter((r) => !rows.some((row) => row.id === r.id && row.tenant_id === r.tenant_id));
    expect(ghosts.map((r) => [r.tenant_id, r.id, r.v])).toEqual([
      ['acme', 4, 4],
      ['beta', 5, 5],
      ['acme', 6, 6],
    ]);
  });
}
