/**
 * Positions of the rows of a keyless table's initial snapshot. Every snapshot row carried the
 * one snapshot position, so two identical rows were identical records: the lake hashes a
 * keyless record whole into its event id, and compaction kept one of them. Each row now has
 * its own position below the snapshot's (derived from its ctid), still before every change
 * streamed after the snapshot, and the same again when an interrupted snapshot reads the row
 * again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type RecordData, type Source } from '@tributary/core';
import { compactLake, lakeDestination, readLatestAsOf, readStreamRows } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { parseLsn } from '../src/cdc/lsn.js';
import { SnapshotRowPositions } from '../src/cdc/snapshot-positions.js';
import { catalogFor, cdcConfigFor, memoryStateStore, readAll, readFirstChunk, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-pg-snapshot-rows-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const position = (r: RecordData): bigint => parseLsn(String(r._tributary_position));

it('keyless table: identical rows of the initial snapshot all reach the lake, stay there after compaction, and sort before later changes', async () => {
  await sql.query('CREATE TABLE snap_ledger (tenant_id text NOT NULL, customer_id text NOT NULL, amount int)');
  await sql.query('ALTER TABLE snap_ledger REPLICA IDENTITY FULL');
  // Six rows, two pairs of identical ones.
  await sql.query(`INSERT INTO snap_ledger VALUES ('acme', 'c1', 5), ('acme', 'c1', 5), ('acme', 'c1', 7), ('acme', 'c2', 1), ('acme', 'c2', 1), ('acme', 'c3', 2)`);
  const config = cdcConfigFor(server, 'snap_ledger');
  const catalog = await catalogFor(config, ['snap_ledger']);
  const store = memoryStateStore();
  const lake = { path: join(dir, 'lake') };
  const sync = async (): Promise<void> => {
    const result = await runSync({ connection: 'pg-snap-ledger', source: postgresSource as unknown as Source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
  };
  await sync(); // the snapshot: one lake file
  await sql.query(`INSERT INTO snap_ledger VALUES ('acme', 'c3', 9)`);
  await sync(); // a change: a second file

  const rows = await readStreamRows(lake, { stream: 'public.snap_ledger' });
  expect(rows.length).toBe(7);
  await compactLake(lake, { minFiles: 2 });
  const compacted = await readStreamRows(lake, { stream: 'public.snap_ledger' });
  expect(compacted.map((r) => `${r.customer_id}:${String(r.payload.amount)}`).sort()).toEqual(['c1:5', 'c1:5', 'c1:7', 'c2:1', 'c2:1', 'c3:2', 'c3:9']);
  // The change streamed after the snapshot is the latest row of its customer.
  const latest = await readLatestAsOf(lake, { stream: 'public.snap_ledger', key: 'customer_id', keys: ['c3'] });
  expect(latest.map((r) => r.payload.amount)).toEqual([9]);
});


it('keyless table: a resumed snapshot gives the rows it reads again their positions, all distinct and before every streamed change', async () => {
  await sql.query('CREATE TABLE snap_clicks (n int, note text)');
  await sql.query('ALTER TABLE snap_clicks REPLICA IDENTITY FULL');
  await sql.query(`INSERT INTO snap_clicks SELECT g % 3, 'same' FROM generate_series(1, 30) g`);
  const config = cdcConfigFor(server, 'snap_clicks', { chunk_size: 10 });
  const catalog = await catalogFor(config, ['snap_clicks']);
  const first = await readFirstChunk(config, catalog);
  expect(first.records).toHaveLength(10);

  // Read the rest once (the records a crashed sync may have handed on) …
  const rest = await readAll(config, catalog, first.state);
  // … then again from the same state after other rows changed: the resumed snapshot is a
  // fresh one (the exported snapshot died), yet the rows read again keep their positions.
  await sql.query(`DELETE FROM snap_clicks WHERE ctid = '(0,15)'`);
  await sql.query(`INSERT INTO snap_clicks VALUES (7, 'new')`);
  const again = await readAll(config, catalog, first.state);

  const snapshot = (records: Array<{ data: RecordData }>): RecordData[] => records.map((r) => r.data).filter((r) => r._tributary_op === 'r');
  const firstRead = [...first.records, ...snapshot(rest.records)];
  expect(firstRead).toHaveLength(30);
  expect(new Set(firstRead.map((r) => r._tributary_position)).size).toBe(30);
  const byPosition = new Map(firstRead.map((r) => [r._tributary_position, r]));
  const reread = snapshot(again.records).filter((r) => r.note === 'same');
  expect(reread).toHaveLength(19);
  for (const r of reread) expect(byPosition.get(r._tributary_position), `row at ${String(r._tributary_position)}`).toEqual(r);

  // The changes streamed after the snapshot follow every snapshot row.
  const changes = again.records.map((r) => r.data).filter((r) => r._tributary_op !== 'r');
  expect(changes.map((r) => r._tributary_op).sort()).toEqual(['c', 'd']);
  const lastSnapshotRow = firstRead.map(position).reduce((a, b) => (a > b ? a : b));
  for (const c of changes) expect(position(c) > lastSnapshotRow).toBe(true);
  await sql.query(`SELECT pg_drop_replication_slot('snap_clicks_slot')`);
});

it('partitioned keyless table: identical rows of different partitions and of one partition get distinct positions', async () => {
  await sql.query('CREATE TABLE snap_parted (v int, k int) PARTITION BY LIST (k)');
  await sql.query('CREATE TABLE snap_parted_1 PARTITION OF snap_parted FOR VALUES IN (1)');
  await sql.query('CREATE TABLE snap_parted_2 PARTITION OF snap_parted FOR VALUES IN (2)');
  for (const t of ['snap_parted', 'snap_parted_1', 'snap_parted_2']) await sql.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
  await sql.query('INSERT INTO snap_parted VALUES (1, 1), (1, 1), (1, 2), (1, 2)');
  const config = cdcConfigFor(server, 'snap_parted', { chunk_size: 1 });
  const catalog = await catalogFor(config, ['snap_parted']);
  const first = await readFirstChunk(config, catalog);
  const rest = await readAll(config, catalog, first.state);
  const rows = [...first.records, ...rest.records.map((r) => r.data)];
  expect(rows).toHaveLength(4);
  expect(new Set(rows.map((r) => r._tributary_position)).size).toBe(4);
  // Read again from the state after the first row: the same three records.
  const again = await readAll(config, catalog, first.state);
  expect(again.records.map((r) => r.data)).toEqual(rest.records.map((r) => r.data));
  await sql.query(`SELECT pg_drop_replication_slot('snap_parted_slot')`);
});

it('positions below the base: across the 32-bit halves, interleaved over partitions, and the base itself when there is no room', () => {
  const plain = new SnapshotRowPositions('1/0', parseLsn('1/0'), 291);
  expect([plain.of('(0,1)', null), plain.of('(0,2)', null), plain.of('(1,1)', null)]).toEqual(['0/FFFFFFFF', '0/FFFFFFFE', '0/FFFFFEDC']);
  const small = new SnapshotRowPositions('0/10', parseLsn('0/10'), 291);
  expect([small.of('(0,15)', null), small.of('(0,16)', null), small.of('(3,1)', null)]).toEqual(['0/1', '0/10', '0/10']);
  expect(small.fallbacks).toBe(2);
  const parted = new SnapshotRowPositions('0/1000', parseLsn('0/1000'), 291, ['16400', '16500']);
  expect([parted.of('(0,1)', '16400'), parted.of('(0,1)', '16500'), parted.of('(0,2)', '16400'), parted.of('(0,1)', '16600')]).toEqual(['0/FFF', '0/FFE', '0/FFD', '0/1000']);
});
