import type pg from 'pg';
import { expect, it } from 'vitest';
import { applyChanges, catalogFor, configFor, contextWithLogs, readAll, sortedEntries, usePostgres, type EmbeddedPostgresServer } from './support.js';

// What a publication made by someone else leaves out of the stream. A row filter (PostgreSQL
// 15+: FOR TABLE t WHERE (…)) streams only the changes of rows inside it: an update that keeps
// a row outside, or its delete, is never sent, so a snapshot row outside it would stay
// downstream as it was. A `publish` list without some kinds of change never sends those.

let server: EmbeddedPostgresServer;
let sql: pg.Client;
const byId = (row: Record<string, unknown>): string => String(row.id);
usePostgres((started, client) => {
  server = started;
  sql = client;
});

it("a CDC snapshot reads only the rows of the publication's row filter: the destination ends as the filtered table", async () => {
  await sql.query('CREATE TABLE filtered (id int PRIMARY KEY, v int)');
  // A row filter on a non-key column needs the whole old row to judge updates and deletes.
  await sql.query('ALTER TABLE filtered REPLICA IDENTITY FULL');
  await sql.query('INSERT INTO filtered VALUES (1, 5), (2, 20), (3, 30)');
  await sql.query('CREATE PUBLICATION filtered_pub FOR TABLE filtered WHERE (v > 10)');
  const config = configFor(server, { slot_name: 'filtered_slot', publication_name: 'filtered_pub', manage_publication: false, chunk_size: 1 });
  const catalog = await catalogFor(config, ['filtered']);
  const first = await readAll(config, catalog);
  // Row 1 stays outside the filter: neither change is streamed. Row 2 leaves it (streamed as a
  // delete), row 4 is inserted outside it (not streamed), row 3 stays inside.
  await sql.query('UPDATE filtered SET v = 6 WHERE id = 1');
  await sql.query('DELETE FROM filtered WHERE id = 1');
  await sql.query('UPDATE filtered SET v = 2 WHERE id = 2');
  await sql.query('INSERT INTO filtered VALUES (4, 4)');
  await sql.query('UPDATE filtered SET v = 31 WHERE id = 3');
  const second = await readAll(config, catalog, first.state);
  const image = new Map<string, Record<string, unknown>>();
  applyChanges(image, [...first.records, ...second.records].map((r) => r.data), byId);
  // Row 1, read by the snapshot, stayed downstream with v = 5 although it was deleted.
  expect(sortedEntries(image)).toEqual([['3', { id: 3, v: 31 }]]);
  expect(first.records.map((r) => r.data.id)).toEqual([2, 3]);
  await sql.query(`SELECT pg_drop_replication_slot('filtered_slot')`);
});

it("a publication that leaves deletes and truncates out is used as it is, with a warning naming them (they never reach the destination)", async () => {
  await sql.query('CREATE TABLE no_deletes (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO no_deletes VALUES (1, 1), (2, 2)');
  // Made beforehand under the name the connector manages: it is extended, not re-created.
  await sql.query("CREATE PUBLICATION no_deletes_pub WITH (publish = 'insert, update')");
  const config = configFor(server, { slot_name: 'no_deletes_slot', publication_name: 'no_deletes_pub' });
  const catalog = await catalogFor(config, ['no_deletes']);
  const { ctx, logs } = contextWithLogs();
  const first = await readAll(config, catalog, undefined, ctx);
  await sql.query('DELETE FROM no_deletes WHERE id = 1');
  await sql.query('TRUNCATE no_deletes');
  const second = await readAll(config, catalog, first.state);
  expect(second.records).toEqual([]);
  expect(logs.filter((l) => l.level === 'WARN').map((l) => l.message)).toContain(
    'publication "no_deletes_pub" does not publish delete, truncate: those changes of its tables never reach the destination (e.g. deleted or truncated rows stay there)',
  );
  await sql.query(`SELECT pg_drop_replication_slot('no_deletes_slot')`);
});
