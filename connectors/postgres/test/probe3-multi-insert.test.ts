/**
 * Changes written by one WAL record: COPY FROM (heap_multi_insert) logs the rows it puts on
 * one heap page in a single record, so pgoutput sends their Insert messages with one WAL
 * position. Two identical rows of a keyless table then made identical records (same
 * position, same content): one event downstream. The lake hashed them to one event id and compaction kept one of them.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, expandRecordPages, runSync, type RecordData, type Source, type SourceMessage } from '@tributary/core';
import { compactLake, lakeDestination, readStreamRows } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { parseLsn } from '../src/cdc/lsn.js';
import { catalogFor, cdcConfigFor, memoryStateStore, readAll, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-pg-multi-insert-'));
  await chmod(dir, 0o755); // the server (another user) reads the COPY files
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let copies = 0;
/** `COPY <table> FROM '<file>'` (read by the server, which runs on this host): one statement, rows written by heap_multi_insert. */
async function copyIn(table: string, lines: string[]): Promise<void> {
  const file = join(dir, `${table}-${++copies}.tsv`);
  await writeFile(file, lines.map((l) => `${l}\n`).join(''));
  await chmod(file, 0o644);
  await sql.query(`COPY ${table} FROM '${file}'`);
}

it('keyless table: identical rows of one COPY all reach the lake and stay there after compaction', async () => {
  await sql.query('CREATE TABLE ledger (tenant_id text NOT NULL, customer_id text NOT NULL, amount int)');
  await sql.query('ALTER TABLE ledger REPLICA IDENTITY FULL');
  const config = cdcConfigFor(server, 'multi');
  const catalog = await catalogFor(config, ['ledger']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake') };
  const sync = async (): Promise<void> => {
    const result = await runSync({ connection: 'pg-multi', source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
  };
  await sync(); // empty snapshot, slot created
  for (let i = 0; i < 4; i++) {
    // One statement writes 3 rows, two of them identical, in one heap_multi_insert record.
    await copyIn('ledger', ['acme\tc1\t5', 'acme\tc1\t5', 'acme\tc1\t7']);
    await sync(); // one lake file per sync
  }
  const rows = await readStreamRows(lake, { stream: 'public.ledger' });
  expect(rows.length).toBe(12);
  await compactLake(lake, { minFiles: 2 });
  const after = await readStreamRows(lake, { stream: 'public.ledger' });
  expect(after.length).toBe(12);
});

it('keyed table: the rows of one COPY get distinct positions, in row order, after the snapshot position; a replay from the same state repeats them exactly', async () => {
  await sql.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
  await sql.query(`INSERT INTO items VALUES (0, 'before')`);
  const config = cdcConfigFor(server, 'multikey');
  const catalog = await catalogFor(config, ['items']);
  const first = await readAll(config, catalog);
  const snapshotPosition = parseLsn(String(first.records[0]!.data._tributary_position));
  await copyIn('items', ['1\ta', '2\tb', '3\tc', '4\td']);
  await sql.query(`INSERT INTO items VALUES (5, 'after')`);

  const read = await readAll(config, catalog, first.state);
  const again = await readAll(config, catalog, first.state);
  expect(again.records).toEqual(read.records);
  const changes = read.records.map((r) => [r.data.id, parseLsn(String(r.data._tributary_position))] as const);
  expect(changes.map(([id]) => id)).toEqual([1, 2, 3, 4, 5]);
  for (let i = 1; i < changes.length; i++) expect(changes[i]![1] > changes[i - 1]![1], `position of row ${changes[i]![0]}`).toBe(true);
  expect(changes[0]![1] > snapshotPosition).toBe(true);
  // One WAL record: the COPY's rows are numbered on from its LSN.
  expect(changes.slice(0, 4).map(([, lsn]) => lsn - changes[0]![1])).toEqual([0n, 1n, 2n, 3n]);
});

it('a read stopped inside a COPY transaction, then resumed, hands on the same records with the same positions', async () => {
  await sql.query('CREATE TABLE bulk (tenant_id text, n int)');
  await sql.query('ALTER TABLE bulk REPLICA IDENTITY FULL');
  const config = cdcConfigFor(server, 'bulk');
  const catalog = await catalogFor(config, ['bulk']);
  const first = await readAll(config, catalog);
  // 2 500 rows, many identical: several multi-insert records of one transaction.
  await copyIn('bulk', Array.from({ length: 2_500 }, (_, i) => `acme\t${i % 3}`));

  // Stopped after the first page of the transaction (no checkpoint inside a transaction).
  const partial: RecordData[] = [];
  for await (const m of expandRecordPages(postgresSource.read(createConnectorContext({}), config, catalog, structuredClone(first.state)))) {
    if (m.kind === 'record') partial.push(m.data);
    if (partial.length === 1_000) break;
  }
  const resumed = await readAll(config, catalog, first.state);
  expect(resumed.records).toHaveLength(2_500);
  expect(resumed.records.slice(0, 1_000).map((r) => r.data)).toEqual(partial);
  expect(new Set(resumed.records.map((r) => r.data._tributary_position)).size).toBe(2_500);
});

it('a sync stopped inside a COPY transaction of identical keyless rows, then resumed: the lake holds every row once', async () => {
  await sql.query('CREATE TABLE clicks (tenant_id text NOT NULL, customer_id text NOT NULL, n int)');
  await sql.query('ALTER TABLE clicks REPLICA IDENTITY FULL');
  const config = cdcConfigFor(server, 'clicks');
  const catalog = await catalogFor(config, ['clicks']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'clicks-lake') };
  const sync = async (source: Source, signal?: AbortSignal): Promise<string> =>
    (await runSync({ connection: 'pg-clicks', source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store, ...(signal ? { signal } : {}) })).outcome;
  expect(await sync(postgresSource as unknown as Source)).toBe('completed');
  await copyIn('clicks', Array.from({ length: 2_500 }, () => 'acme\tc1\t1'));

  // The source stopped once it handed on the transaction's first page: the runtime commits
  // that page (no checkpoint: the transaction is open), and the next sync replays it whole.
  const stop = new AbortController();
  const stopping: Source = {
    ...(postgresSource as unknown as Source),
    async *read(ctx, cfg, cat, state): AsyncGenerator<SourceMessage> {
      for await (const m of (postgresSource as unknown as Source).read(ctx, cfg, cat, state)) {
        yield m;
        if (m.kind === 'records' || m.kind === 'record') stop.abort();
      }
    },
  };
  expect(await sync(stopping, stop.signal)).toBe('interrupted');
  const partial = (await readStreamRows(lake, { stream: 'public.clicks' })).length;
  expect(partial).toBeGreaterThan(0);
  expect(partial).toBeLessThan(2_500);
  expect(await sync(postgresSource as unknown as Source)).toBe('completed');
  expect((await readStreamRows(lake, { stream: 'public.clicks' })).length).toBe(2_500);
});
