/**
 * ALTER TABLE … ALTER COLUMN … TYPE … USING rewrites every row, and logical decoding emits no
 * change for a rewrite: the rows stored downstream keep their old values. Between syncs the
 * retype went unreported (the configured catalog has no type oids, so only added and dropped
 * columns were compared); it is now reported from the column's JSON type, saying what to do.
 */
import type pg from 'pg';
import { expect, it } from 'vitest';
import { catalogFor, cdcConfigFor, contextWithLogs, readAll, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});

it('a column retyped between syncs (ALTER … TYPE … USING: rows rewritten without change events) is reported with what to do', async () => {
  await sql.query('CREATE TABLE retyped (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO retyped VALUES (1, 1), (2, 2)');
  const config = cdcConfigFor(server, 'retyped');
  const catalog = await catalogFor(config, ['retyped']);
  const first = await readAll(config, catalog);
  await sql.query('ALTER TABLE retyped ALTER COLUMN v TYPE text USING (v * 10)::text');
  await sql.query(`INSERT INTO retyped VALUES (3, 'x')`);
  const { ctx, logs } = contextWithLogs();
  const next = await readAll(config, catalog, first.state, ctx);
  // PostgreSQL streams no change for the rewritten rows 1 and 2 (now '10' and '20').
  expect(next.records.map((r) => [r.data._tributary_op, r.data.id, r.data.v])).toEqual([['c', 3, 'x']]);
  const warning = logs.find((l) => l.level === 'WARN' && l.message.startsWith('schema change on public.retyped'));
  expect(warning?.fields).toMatchObject({ added: [], dropped: [], retyped: ['v'] });
  expect(warning?.message).toMatch(/rewritten without change events.*reset its state/);
  await sql.query(`SELECT pg_drop_replication_slot('retyped_slot')`);
});
