/**
 * int8 into the event lake: the source sends int8 values beyond ±2^53 as their digits and
 * declares them (integer|string with a digits-only pattern), so the lake stores a BIGINT
 * column with every digit — through the snapshot and the CDC stream. It was a JSON column.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type Source } from '@tributary/core';
import { lakeDestination, queryLake } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, memoryStateStore, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
let dir: string;
beforeAll(async () => {
  server = await startPostgres();
  sql = await sqlClient(server);
  dir = await mkdtemp(join(tmpdir(), 'tributary-pg-lake-int8-'));
});
afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('CDC → lake: int8 keys and values beyond 2^53 keep every digit in BIGINT columns', async () => {
  await sql.query('CREATE TABLE ledger (id bigint PRIMARY KEY, tenant_id text NOT NULL, amount bigint)');
  await sql.query(`INSERT INTO ledger VALUES (9007199254740993, 'acme', -9223372036854775808), (2, 'acme', 5)`);
  const config = configFor(server, { slot_name: 'int8_slot', publication_name: 'int8_pub' });
  const catalog = await catalogFor(config, ['ledger']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake'), source_system: 'postgres' };
  const sync = async (): Promise<void> => {
    const result = await runSync({ connection: 'pg-int8', source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
  };
  await sync(); // snapshot
  await sql.query(`UPDATE ledger SET amount = 9223372036854775807 WHERE id = 9007199254740993`);
  await sql.query(`INSERT INTO ledger VALUES (9007199254740995, 'acme', 9007199254740997)`);
  await sync(); // the stream

  const rows = await queryLake(
    lake,
    `SELECT op, typeof(id) AS id_type, CAST(id AS VARCHAR) AS id, typeof(amount) AS amount_type, CAST(amount AS VARCHAR) AS amount FROM "public.ledger" ORDER BY ingest_time, id`,
  );
  expect(rows).toEqual([
    { op: 'snapshot', id_type: 'BIGINT', id: '2', amount_type: 'BIGINT', amount: '5' },
    { op: 'snapshot', id_type: 'BIGINT', id: '9007199254740993', amount_type: 'BIGINT', amount: '-9223372036854775808' },
    { op: 'update', id_type: 'BIGINT', id: '9007199254740993', amount_type: 'BIGINT', amount: '9223372036854775807' },
    { op: 'insert', id_type: 'BIGINT', id: '9007199254740995', amount_type: 'BIGINT', amount: '9007199254740997' },
  ]);
});
