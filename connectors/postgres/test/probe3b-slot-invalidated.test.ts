import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { catalogFor, configFor, contextWithLogs, readAll, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

// A slot PostgreSQL invalidated (its WAL removed past max_slot_wal_keep_size) still exists but
// never streams again. The resumed sync must say so and what to do, before it reads anything.

let server: EmbeddedPostgresServer;
let sql: pg.Client;
beforeAll(async () => {
  // The smallest allowance: a few WAL segments written past the slot and a checkpoint invalidate it.
  server = await startPostgres({ postgresFlags: ['-c', 'max_slot_wal_keep_size=1MB'] });
  sql = await sqlClient(server);
});
afterAll(async () => {
  await sql?.end();
  await server?.stop();
});

it('a slot invalidated by max_slot_wal_keep_size fails the resumed sync with a config error saying to reset the state, before any snapshot is read', async () => {
  await sql.query('CREATE TABLE kept (id int PRIMARY KEY, v text)');
  await sql.query('CREATE TABLE later (id int PRIMARY KEY, v text)');
  await sql.query("INSERT INTO kept VALUES (1, 'a')");
  await sql.query("INSERT INTO later VALUES (1, 'a')");
  const config = configFor(server, { slot_name: 'lost_slot', publication_name: 'lost_pub' });
  const first = await readAll(config, await catalogFor(config, ['kept']));
  await sql.query("INSERT INTO kept VALUES (2, 'b')");
  // Unpublished writes fill several WAL segments; the checkpoint removes them and the slot with them.
  await sql.query('CREATE TABLE filler (t text)');
  for (let i = 0; i < 4; i++) {
    await sql.query("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000)");
    await sql.query('SELECT pg_switch_wal()');
  }
  await sql.query('CHECKPOINT');
  const slot = await sql.query<{ wal_status: string }>(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost_slot'`);
  expect(slot.rows[0]?.wal_status).toBe('lost');

  // A newly selected stream would be snapshotted first: the failure must come before that read.
  const { ctx, logs } = contextWithLogs();
  const resumed = readAll(config, await catalogFor(config, ['kept', 'later']), first.state, ctx);
  await expect(resumed).rejects.toMatchObject({
    kind: 'config',
    userMessage: expect.stringMatching(/slot "lost_slot" was invalidated by PostgreSQL \(wal_removed.*Reset this connection's state/),
  });
  expect(logs.map((l) => l.message).filter((m) => m.includes('snapshot') || m.includes('streaming slot'))).toEqual([]);
});
