/**
 * CDC into the event lake: `UPDATE … SET id = 33 WHERE id = 4` moves a row to another
 * primary key. The source sends op `u` with the new row and `_tributary_before` holding the
 * old key (REPLICA IDENTITY DEFAULT) or the whole old row (FULL); the lake ends the old key
 * at the update's position, so the point-in-time read equals the table. Before, the row
 * stayed live under its old key beside its new one.
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
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-pg-lake-key-move-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The lake config for `table`'s stream, and a CDC sync of it into that lake through the runtime that fails the test unless it completes without rejecting a record. */
async function lakeSyncOf(table: string): Promise<{ lake: Record<string, unknown>; sync: () => Promise<void> }> {
  const config = cdcConfigFor(server, table);
  const catalog = await catalogFor(config, [table]);
  const store = memoryStateStore();
  const lake = { path: join(dir, table), source_system: 'postgres' };
  const sync = async (): Promise<void> => {
    const result = await runSync({ connection: `pg-${table}`, source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0)).toBe(0);
  };
  return { lake, sync };
}

for (const identity of ['DEFAULT', 'FULL'] as const) {
  it(`an update of the primary key leaves no row under the old key (REPLICA IDENTITY ${identity})`, async () => {
    const table = `moved_${identity.toLowerCase()}`;
    await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, v int)`);
    await sql.query(`ALTER TABLE ${table} REPLICA IDENTITY ${identity}`);
    await sql.query(`INSERT INTO ${table} VALUES (1, 'acme', 'c1', 1), (4, 'acme', 'c4', 4), (5, 'globex', 'c5', 5)`);
    const { lake, sync } = await lakeSyncOf(table);
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

/*
 * CDC into the event lake: `UPDATE t SET id = 33 WHERE id = 4` under REPLICA IDENTITY
 * DEFAULT on a table with a TOASTed column the update does not change. pgoutput does not
 * send that column's value; the source leaves it out and lists it in `_tributary_unchanged`.
 * Point-in-time reads fill such fields from the entity's earlier rows, but the new key has
 * none (the value lives under the old key): the read returned the column as null for 33.
 * The lake now fills it at write time from the old key's latest earlier row.
 */
interface ToastRow {
  id: number;
  tenant_id: string;
  v: number;
  big: string | null;
}
/** A row as compared: `big` as its length and head (10 kB values make unreadable diffs). */
const summary = (row: ToastRow) => ({ id: row.id, tenant_id: row.tenant_id, v: row.v, big: row.big === null ? null : `${row.big.length} chars: ${row.big.slice(0, 16)}…` });
/** 10 kB of random text: incompressible, so with STORAGE EXTERNAL it is stored out of line (TOASTed). */
const bigText = (): string => randomBytes(5120).toString('hex');

it('a key update that leaves a TOASTed column out keeps its value under the new key (REPLICA IDENTITY DEFAULT)', async () => {
  const table = 'moved_toast';
  await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, v int NOT NULL, big text)`);
  await sql.query(`ALTER TABLE ${table} ALTER COLUMN big SET STORAGE EXTERNAL`);
  for (const id of [1, 4, 5]) await sql.query(`INSERT INTO ${table} VALUES ($1, 'acme', $2, $1, $3)`, [id, `c${id}`, bigText()]);
  const { lake, sync } = await lakeSyncOf(table);
  await sync(); // snapshot

  // The old key's row is in the lake (an earlier sync).
  await sql.query(`UPDATE ${table} SET id = 33 WHERE id = 4`);
  // The old key's row is in the same batch (inserted, then moved, in one sync).
  await sql.query(`INSERT INTO ${table} VALUES (6, 'acme', 'c6', 6, $1)`, [bigText()]);
  await sql.query(`UPDATE ${table} SET id = 60, v = 61 WHERE id = 6`);
  await sync();

  const latest = await readLatestAsOf(lake, { stream: `public.${table}` });
  const rows = (await sql.query<ToastRow>(`SELECT id, tenant_id, v, big FROM ${table} ORDER BY id`)).rows;
  const read = latest.map((r) => summary({ id: r.payload.id as number, tenant_id: r.tenant_id, v: r.payload.v as number, big: (r.payload.big as string | null | undefined) ?? null })).sort((a, b) => a.id - b.id);
  expect(read).toEqual(rows.map(summary));
  // The moved rows are stored complete: nothing is left for the read to fill.
  expect(latest.filter((r) => r.payload.id === 33 || r.payload.id === 60).map((r) => r.unchanged_fields)).toEqual([null, null]);
});
