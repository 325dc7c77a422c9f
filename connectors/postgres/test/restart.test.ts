import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  applyChanges,
  catalogFor,
  configFor,
  memoryStateStore,
  memoryTarget,
  sortedEntries,
  sqlClient,
  startRestartablePostgres,
  syncInProcess,
  tableImage,
  type RestartablePostgres,
} from './support.js';

// PostgreSQL restarted while a sync streams a large transaction: the source reconnects and
// resumes after the last transaction it handed on; the destination ends equal to the table,
// each change once.

let server: RestartablePostgres;
let sql: pg.Client;
beforeAll(async () => {
  server = await startRestartablePostgres();
  sql = await sqlClient(server);
});
afterAll(async () => {
  await sql?.end().catch(() => undefined);
  await server?.stop();
});

it('PostgreSQL restarted mid-stream: the sync reconnects, nothing lost, nothing duplicated', async () => {
  await sql.query('CREATE TABLE moving (id int PRIMARY KEY, v int, pad text)');
  await sql.query(`INSERT INTO moving SELECT g, 0, repeat('p', 100) FROM generate_series(1, 1000) g`);
  const config = configFor(server, { slot_name: 'moving_slot', publication_name: 'moving_pub', cdc_until: 'stopped', heartbeat_interval_ms: 200 });
  const catalog = await catalogFor(config, ['moving']);
  const store = memoryStateStore();
  const target = memoryTarget();
  const logs: string[] = [];
  const stop = new AbortController();
  const sync = syncInProcess({ config, catalog, target, store, signal: stop.signal, onEvent: (e) => e.type === 'log' && logs.push(e.message) });
  const waitFor = async (what: () => boolean | Promise<boolean>, label: string): Promise<void> => {
    for (let i = 0; i < 1200; i++) {
      if (await what()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${label}; logs:\n${logs.join('\n')}`);
  };
  await waitFor(() => logs.some((l) => l.includes('streaming slot')), 'streaming');
  // Small transactions, then a big one that is still streaming when the server goes down.
  for (let i = 0; i < 50; i++) await sql.query('UPDATE moving SET v = v + 1 WHERE id = $1', [1 + i]);
  await sql.query(`INSERT INTO moving SELECT g, 1, repeat('q', 100) FROM generate_series(1001, 150000) g`);
  await waitFor(() => (target.committed.get('public.moving')?.length ?? 0) > 1100, 'the big transaction to start arriving');
  await sql.end();
  await server.restart();
  sql = await sqlClient(server);
  await sql.query('DELETE FROM moving WHERE id BETWEEN 10 AND 19');
  await sql.query('UPDATE moving SET v = -1 WHERE id BETWEEN 140000 AND 140010');
  const committed = async (): Promise<boolean> => {
    const r = await sql.query<{ ok: boolean }>(
      `SELECT confirmed_flush_lsn >= pg_current_wal_lsn() AS ok FROM pg_replication_slots WHERE slot_name = 'moving_slot'`,
    );
    return r.rows[0]?.ok === true;
  };
  await waitFor(committed, 'the slot to confirm everything written');
  stop.abort();
  const result = await sync;
  expect(result.outcome, result.error?.userMessage).toBe('interrupted');
  expect(logs.some((l) => l.includes('replication connection lost'))).toBe(true);

  const records = target.committed.get('public.moving')!;
  const events = records.filter((r) => r._tributary_op !== 'r').map((r) => `${String(r._tributary_op)} ${String(r._tributary_position)} ${String(r.id)}`);
  expect(new Set(events).size).toBe(events.length);
  const image = new Map<string, Record<string, unknown>>();
  applyChanges(image, records, (row) => String(row.id));
  expect(sortedEntries(image)).toEqual(sortedEntries(await tableImage(config, 'moving', (row) => String(row.id))));
}, 180_000);
