/**
 * Positions of the rows of a keyless table's initial snapshot in the Debezium format. The
 * default format gives each such row its own `_tributary_position` below the snapshot's
 * (probe3-snapshot-rows.test.ts); the Debezium envelope carried the one snapshot position in
 * `source.lsn` for every row, so two identical rows were identical records: the lake hashes
 * a keyless record whole (its cursor, `source.lsn`, included) into its event id: identical
 * rows were one event downstream (one event id). `source.lsn` now carries the same per-row
 * position.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runSync, type RecordData, type Source, type SourceMessage } from '@tributary/core';
import { lakeDestination, readStreamRows } from '@tributary/destination-lake';
import { postgresSource } from '../src/index.js';
import { catalogFor, cdcConfigFor, memoryStateStore, readAll, readFirstChunk, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-pg-dbz-positions-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface DebeziumRecord {
  op: string;
  after: Record<string, unknown> | null;
  source: { lsn: number; snapshot: string };
}
const envelope = (r: RecordData): DebeziumRecord => r as unknown as DebeziumRecord;

it('Debezium format, keyless table: identical rows of an initial snapshot stopped and resumed all reach the lake, each its own event', async () => {
  await sql.query('CREATE TABLE dbz_ledger (customer_id text NOT NULL, amount int)');
  await sql.query('ALTER TABLE dbz_ledger REPLICA IDENTITY FULL');
  // Identical rows, also in different chunks of a snapshot that is stopped and resumed (the
  // lake takes a record whose event id and content match a row of a session that did not
  // complete for a replay of it): every row must stay its own event.
  await sql.query(`INSERT INTO dbz_ledger VALUES ('c1', 5), ('c1', 5), ('c1', 5), ('c1', 5), ('c2', 1), ('c2', 1)`);
  const config = cdcConfigFor(server, 'dbz_ledger', { output_format: 'debezium', chunk_size: 2 });
  const catalog = await catalogFor(config, ['dbz_ledger']);
  const store = memoryStateStore();
  // A Debezium envelope has no top-level row columns: the customer id comes from a field that
  // every record has (`op`), the tenant is a constant.
  const lake = { path: join(dir, 'lake'), streams: { 'public.dbz_ledger': { customer_id_field: 'op', tenant_id: 'acme' } } };
  const sync = async (source: Source, signal?: AbortSignal): Promise<string> =>
    (await runSync({ connection: 'pg-dbz-ledger', source, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: store, ...(signal ? { signal } : {}) })).outcome;

  // Stopped once the source handed on its first page of snapshot rows.
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
  const partial = await readStreamRows(lake, { stream: 'public.dbz_ledger' });
  expect(partial.length).toBeGreaterThan(0);
  expect(partial.length).toBeLessThan(6);
  expect(await sync(postgresSource as unknown as Source)).toBe('completed');
  await sql.query(`INSERT INTO dbz_ledger VALUES ('c1', 5)`);
  expect(await sync(postgresSource as unknown as Source)).toBe('completed');

  const rows = await readStreamRows(lake, { stream: 'public.dbz_ledger' });
  const after = rows.map((r) => r.payload.after as { customer_id: string; amount: number });
  expect(after.map((a) => `${a.customer_id}:${a.amount}`).sort()).toEqual(['c1:5', 'c1:5', 'c1:5', 'c1:5', 'c1:5', 'c2:1', 'c2:1']);
  expect(new Set(rows.map((r) => r.event_id)).size).toBe(7);
  await sql.query(`SELECT pg_drop_replication_slot('dbz_ledger_slot')`);
});

it('Debezium format, keyless table: a resumed snapshot gives the rows it reads again their positions, all distinct and before every streamed change', async () => {
  await sql.query('CREATE TABLE dbz_clicks (n int, note text)');
  await sql.query('ALTER TABLE dbz_clicks REPLICA IDENTITY FULL');
  await sql.query(`INSERT INTO dbz_clicks SELECT g % 3, 'same' FROM generate_series(1, 30) g`);
  const config = cdcConfigFor(server, 'dbz_clicks', { chunk_size: 10, output_format: 'debezium' });
  const catalog = await catalogFor(config, ['dbz_clicks']);
  const first = await readFirstChunk(config, catalog);
  expect(first.records).toHaveLength(10);

  // Read the rest once (the records a crashed sync may have handed on) …
  const rest = await readAll(config, catalog, first.state);
  // … then again from the same state after other rows changed: the rows read again keep their positions.
  await sql.query(`DELETE FROM dbz_clicks WHERE ctid = '(0,15)'`);
  await sql.query(`INSERT INTO dbz_clicks VALUES (7, 'new')`);
  const again = await readAll(config, catalog, first.state);

  const snapshot = (records: RecordData[]): DebeziumRecord[] => records.map(envelope).filter((r) => r.op === 'r');
  const firstRead = snapshot([...first.records, ...rest.records.map((r) => r.data)]);
  expect(firstRead).toHaveLength(30);
  expect(firstRead.every((r) => r.source.snapshot === 'true' && r.after !== null)).toBe(true);
  expect(new Set(firstRead.map((r) => r.source.lsn)).size).toBe(30);
  const byPosition = new Map(firstRead.map((r) => [r.source.lsn, r]));
  const reread = snapshot(again.records.map((r) => r.data)).filter((r) => r.after?.note === 'same');
  expect(reread).toHaveLength(19);
  for (const r of reread) expect(byPosition.get(r.source.lsn), `row at ${r.source.lsn}`).toEqual(r);

  // The changes streamed after the snapshot follow every snapshot row.
  const changes = again.records.map((r) => envelope(r.data)).filter((r) => r.op !== 'r');
  expect(changes.map((r) => r.op).sort()).toEqual(['c', 'd']);
  const lastSnapshotRow = Math.max(...firstRead.map((r) => r.source.lsn));
  for (const c of changes) expect(c.source.lsn).toBeGreaterThan(lastSnapshotRow);
  await sql.query(`SELECT pg_drop_replication_slot('dbz_clicks_slot')`);
});
