/**
 * CDC into the event lake under REPLICA IDENTITY DEFAULT: a delete carries the key columns
 * only, and the lake gives it the customer id and tenant of the row it deletes, so the
 * point-in-time read equals the table. Before, such deletes were quarantined ("no customer
 * id") and the deleted rows stayed live in the lake.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type Source } from '@tributary/core';
import { lakeDestination, readLatestAsOf, readStreamRows } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { catalogFor, cdcConfigFor, memoryStateStore, usePostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((s, client) => {
  server = s;
  sql = client;
});
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-pg-lake-identity-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

it('deletes carrying only the key hide their rows in the lake (snapshot rows, and rows inserted since)', async () => {
  await sql.query('CREATE TABLE orders (id int PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, amount int)');
  await sql.query(`INSERT INTO orders VALUES (1, 'acme', 'c1', 10), (2, 'acme', 'c2', 20), (3, 'globex', 'c3', 30)`);
  const config = cdcConfigFor(server, 'identity');
  const catalog = await catalogFor(config, ['orders']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake'), source_system: 'postgres' };
  const sync = async (): Promise<void> => {
    const result = await runSync({ connection: 'pg-lake-identity', source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.reduce((n, s) => n + s.rejected, 0)).toBe(0);
  };
  await sync(); // snapshot

  await sql.query(`INSERT INTO orders VALUES (4, 'globex', 'c4', 40)`);
  await sql.query('DELETE FROM orders WHERE id IN (2, 4)');
  await sql.query(`UPDATE orders SET amount = 11 WHERE id = 1`);
  await sync();

  const deletes = (await readStreamRows(lake, { stream: 'public.orders' })).filter((r) => r.op === 'delete');
  expect(deletes.map((r) => [r.entity_key, r.tenant_id, r.customer_id]).sort()).toEqual([
    ['2', 'acme', 'c2'],
    ['4', 'globex', 'c4'],
  ]);
  const latest = await readLatestAsOf(lake, { stream: 'public.orders' });
  const table = (await sql.query<{ id: number; tenant_id: string; customer_id: string; amount: number }>('SELECT * FROM orders ORDER BY id')).rows;
  expect(latest.map((r) => ({ id: r.payload.id, tenant_id: r.tenant_id, customer_id: r.customer_id, amount: r.payload.amount })).sort((a, b) => Number(a.id) - Number(b.id))).toEqual(table);
});
