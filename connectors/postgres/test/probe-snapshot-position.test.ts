import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { parseLsn } from '../src/index.js';
import { catalogFor, configFor, readAll, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

// The position of the initial snapshot's rows against the positions of the changes streamed
// after it. A change's position is the LSN of its WAL record, written when the statement ran,
// not when its transaction committed. A transaction that runs across the slot's consistent
// point is not in the exported snapshot and streams after it, with records written *before*
// the consistent point: snapshot rows at the consistent point then sorted after a newer
// change of their row, and a destination keeping the latest record per key by
// `_tributary_position` (the stream's cursor; the lake's as-of order) kept the stale row.

let server: EmbeddedPostgresServer;
let sql: pg.Client;
const clients: pg.Client[] = [];

beforeAll(async () => {
  server = await startPostgres();
  sql = await sqlClient(server);
});
afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await sql?.end();
  await server?.stop();
});

async function client(): Promise<pg.Client> {
  const c = await sqlClient(server);
  clients.push(c);
  return c;
}

/** Begins a transaction that holds an xid (it appears in the running-transactions records the slot's snapshot builder reads). */
async function openTransaction(c: pg.Client): Promise<string> {
  await c.query('BEGIN');
  return (await c.query<{ xid: string }>('SELECT txid_current()::text AS xid')).rows[0]!.xid;
}

/** Waits until the slot being created waits for transaction `xid` to end. */
async function slotCreationWaitsFor(xid: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const r = await sql.query(
      `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE a.application_name = 'tributary-cdc' AND l.locktype = 'transactionid' AND NOT l.granted AND l.transactionid::text = $1`,
      [xid],
    );
    if (r.rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`slot creation never waited for ${xid}`);
}

it('a change of a transaction running across the consistent point sorts after the snapshot row it replaces', async () => {
  await sql.query('CREATE TABLE straddle (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO straddle VALUES (1, 1), (2, 2)');
  const config = configFor(server, { slot_name: 'straddle_slot', publication_name: 'straddle_pub' });
  const catalog = await catalogFor(config, ['straddle']);
  const [a, b, c] = [await client(), await client(), await client()];

  // The snapshot builder becomes consistent only once the transactions running at each of its
  // steps ended: T0 holds the first step, T1 the second; T2, begun after that, runs across
  // the consistent point and writes its change before it.
  const t0 = await openTransaction(a);
  const first = readAll(config, catalog);
  await slotCreationWaitsFor(t0);
  const t1 = await openTransaction(b);
  await a.query('COMMIT');
  await slotCreationWaitsFor(t1);
  await c.query('BEGIN');
  await c.query('UPDATE straddle SET v = 10 WHERE id = 1');
  await b.query('COMMIT');
  for (let i = 0; i < 400; i++) {
    const r = await sql.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'straddle_slot' AND confirmed_flush_lsn IS NOT NULL`);
    if (r.rows.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await c.query('COMMIT');
  const one = await first;
  const two = await readAll(config, catalog, one.state);
  const records = [...one.records, ...two.records].map((r) => r.data);
  const snapshotRow = records.find((r) => r._tributary_op === 'r' && r.id === 1)!;
  const update = records.find((r) => r._tributary_op === 'u' && r.id === 1)!;
  // The snapshot has the row as it was before T2 (T2 committed after the consistent point).
  expect([snapshotRow.v, update.v]).toEqual([1, 10]);

  // The latest record per key by position, as a destination ordering by the cursor keeps it.
  const latest = new Map<unknown, RecordData>();
  for (const r of records) {
    const kept = latest.get(r.id);
    if (!kept || parseLsn(String(r._tributary_position)) > parseLsn(String(kept._tributary_position))) latest.set(r.id, r);
  }
  // Before: the snapshot row (at the consistent point) sorted after the update, whose record
  // was written before that point: the stale v 1 was kept.
  expect(parseLsn(String(update._tributary_position))).toBeGreaterThan(parseLsn(String(snapshotRow._tributary_position)));
  const table = (await sql.query<{ id: number; v: number }>('SELECT id, v FROM straddle ORDER BY id')).rows;
  expect([...latest.values()].map((r) => ({ id: r.id, v: r.v })).sort((x, y) => Number(x.id) - Number(y.id))).toEqual(table);
  await sql.query(`SELECT pg_drop_replication_slot('straddle_slot')`);
});
