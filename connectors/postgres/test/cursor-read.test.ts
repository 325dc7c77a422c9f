import type pg from 'pg';
import { expect, it } from 'vitest';
import { catalogFor, configFor, contextWithLogs, readAll, usePostgres, type EmbeddedPostgresServer } from './support.js';

// The standard method (cursor column) across syncs, on a real server.

let server: EmbeddedPostgresServer;
let sql: pg.Client;

usePostgres((started, client) => {
  server = started;
  sql = client;
});

it('a cursor changed in cursor_fields reads the table from the start instead of resuming after a position of the old column', async () => {
  await sql.query(`CREATE TABLE cursor_change (id int PRIMARY KEY, updated_at timestamptz, seq int)`);
  await sql.query(`INSERT INTO cursor_change VALUES (1, '2030-01-01', 5), (2, '2030-01-02', 6)`);
  const before = configFor(server, { replication_method: 'standard', chunk_size: 10 });
  const first = await readAll(before, await catalogFor(before, ['cursor_change']));
  expect(first.records.map((r) => r.data.id)).toEqual([1, 2]);
  await sql.query(`INSERT INTO cursor_change VALUES (3, '2020-01-01', 7)`);
  // Now by `seq`: the saved updated_at position is no position in it (it failed to cast).
  const after = configFor(server, { replication_method: 'standard', chunk_size: 10, cursor_fields: { cursor_change: 'seq' } });
  const { ctx, logs } = contextWithLogs();
  const second = await readAll(after, await catalogFor(after, ['cursor_change']), first.state, ctx);
  expect(second.records.map((r) => r.data.id)).toEqual([1, 2, 3]);
  expect(second.state.streams['public.cursor_change']).toMatchObject({ cursor_field: 'seq', cursor: 7, key: [3] });
  expect(logs.some((l) => l.level === 'WARN' && l.message.includes('changed from updated_at to seq'))).toBe(true);
  // Two integer columns: a position of `seq` (7) would skip every row of `rank` below 7.
  await sql.query(`ALTER TABLE cursor_change ADD COLUMN rank int`);
  await sql.query(`UPDATE cursor_change SET rank = id`);
  const byRank = configFor(server, { replication_method: 'standard', chunk_size: 10, cursor_fields: { cursor_change: 'rank' } });
  const third = await readAll(byRank, await catalogFor(byRank, ['cursor_change']), second.state);
  expect(third.records.map((r) => r.data.id)).toEqual([1, 2, 3]);
  // And from its own position, nothing again.
  const fourth = await readAll(byRank, await catalogFor(byRank, ['cursor_change']), third.state);
  expect(fourth.records).toEqual([]);
});

it('rows written after a sync with the saved cursor value and a lower key are read by the next sync (ties across syncs)', async () => {
  await sql.query(`CREATE TABLE cursor_ties (id int PRIMARY KEY, updated_at date, v int)`);
  await sql.query(`INSERT INTO cursor_ties SELECT g, '2024-01-01', 0 FROM generate_series(1, 10) g`);
  const config = configFor(server, { replication_method: 'standard', chunk_size: 3 });
  const catalog = await catalogFor(config, ['cursor_ties']);
  const first = await readAll(config, catalog);
  expect(first.records.map((r) => r.data.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // Same day, so the same cursor value: an update of a row already read, and a new row with a lower key.
  await sql.query(`UPDATE cursor_ties SET v = 1 WHERE id = 5`);
  await sql.query(`INSERT INTO cursor_ties VALUES (0, '2024-01-01', 1)`);
  const second = await readAll(config, catalog, first.state);
  expect(second.records.map((r) => [r.data.id, r.data.v])).toEqual([
    [0, 1],
    [5, 1],
  ]);
  // Nothing is read again after that, and rows after the saved key still come once.
  const third = await readAll(config, catalog, second.state);
  expect(third.records).toEqual([]);
  await sql.query(`INSERT INTO cursor_ties VALUES (11, '2024-01-01', 2), (-1, '2024-01-02', 2)`);
  const fourth = await readAll(config, catalog, third.state);
  expect(fourth.records.map((r) => r.data.id)).toEqual([11, -1]);
  expect((await readAll(config, catalog, fourth.state)).records).toEqual([]);
});

it('a resume from every checkpoint of a read that re-reads ties loses none of them', async () => {
  await sql.query(`CREATE TABLE cursor_ties_resume (id int PRIMARY KEY, updated_at int, v int)`);
  await sql.query(`INSERT INTO cursor_ties_resume SELECT g, 1, 0 FROM generate_series(1, 10) g`);
  const config = configFor(server, { replication_method: 'standard', chunk_size: 2 });
  const catalog = await catalogFor(config, ['cursor_ties_resume']);
  const first = await readAll(config, catalog);
  await sql.query(`UPDATE cursor_ties_resume SET v = 1 WHERE id IN (2, 4, 6, 8)`);
  await sql.query(`INSERT INTO cursor_ties_resume VALUES (20, 2, 1), (21, 2, 1), (22, 3, 1)`);
  const second = await readAll(config, catalog, first.state);
  expect(second.records.map((r) => r.data.id)).toEqual([2, 4, 6, 8, 20, 21, 22]);
  // Every checkpoint of the second read, resumed: what follows it is read, nothing is lost.
  const checkpoints = second.messages.filter((m) => m.kind === 'checkpoint');
  for (const checkpoint of checkpoints) {
    if (checkpoint.kind !== 'checkpoint') continue;
    const resumed = await readAll(config, catalog, { streams: { 'public.cursor_ties_resume': checkpoint.state } });
    const at = second.messages.indexOf(checkpoint);
    const following = second.messages.slice(at).flatMap((m) => (m.kind === 'record' ? [m.data.id] : []));
    const ids = resumed.records.map((r) => r.data.id);
    for (const id of following) expect(ids).toContain(id);
  }
});

it('rows whose cursor is NULL are not read, and the read says so', async () => {
  await sql.query(`CREATE TABLE cursor_nulls (id int PRIMARY KEY, updated_at timestamptz)`);
  await sql.query(`INSERT INTO cursor_nulls VALUES (1, NULL), (2, '2024-01-01 00:00:00.000001+00')`);
  const config = configFor(server, { replication_method: 'standard', chunk_size: 10 });
  const catalog = await catalogFor(config, ['cursor_nulls']);
  const { ctx, logs } = contextWithLogs();
  const first = await readAll(config, catalog, { streams: {} }, ctx);
  expect(first.records.map((r) => r.data.id)).toEqual([2]);
  expect(logs.filter((l) => l.level === 'WARN').map((l) => l.message)).toEqual(['rows of public.cursor_nulls whose cursor updated_at is NULL are not read']);
  // Once it has a cursor value after the saved one, the row is read.
  await sql.query(`UPDATE cursor_nulls SET updated_at = '2024-01-01 00:00:00.000002+00' WHERE id = 1`);
  const second = contextWithLogs();
  expect((await readAll(config, catalog, first.state, second.ctx)).records.map((r) => r.data)).toEqual([{ id: 1, updated_at: '2024-01-01T00:00:00.000002Z' }]);
  expect(second.logs.filter((l) => l.level === 'WARN')).toEqual([]);
});
