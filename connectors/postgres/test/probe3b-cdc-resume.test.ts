import type pg from 'pg';
import { expect, it } from 'vitest';
import { createConnectorContext } from '@tributary/core';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, contextWithLogs, readAll, readFirstChunk, usePostgres, type EmbeddedPostgresServer } from './support.js';

// CDC syncs resumed after PostgreSQL moved things under them: the slot (created again by
// another connection), a keyless table's rows (renumbered by a rewrite), and the tables the
// managed publication is about to take in (without a replica identity).

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((started, client) => {
  server = started;
  sql = client;
});


it('a slot created again by another connection with the same slot_name fails the resumed sync instead of skipping the changes in between', async () => {
  await sql.query('CREATE TABLE shared_slot (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO shared_slot VALUES (1, 1)');
  const config = configFor(server, { slot_name: 'shared_slot_slot', publication_name: 'shared_slot_pub' });
  const catalog = await catalogFor(config, ['shared_slot']);
  const first = await readAll(config, catalog);
  await sql.query('INSERT INTO shared_slot VALUES (2, 2)');
  // Another connection configured with the same slot_name has no state: it drops the slot and
  // creates it again, at a position past row 2.
  await readAll(config, catalog);
  await sql.query('INSERT INTO shared_slot VALUES (3, 3)');
  // Resumed, the server would stream from the new slot's position: row 3 only, row 2 lost.
  const resumed = readAll(config, catalog, first.state);
  await expect(resumed).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/slot "shared_slot_slot" has confirmed changes up to .* past this connection's committed position/) });
  await sql.query(`SELECT pg_drop_replication_slot('shared_slot_slot')`);
});

it("a keyless table rewritten (VACUUM FULL) while its CDC snapshot was interrupted is read again, not resumed after a ctid of the old file", async () => {
  await sql.query('CREATE TABLE keyless_log (v int, note text)');
  await sql.query('ALTER TABLE keyless_log REPLICA IDENTITY FULL');
  await sql.query("INSERT INTO keyless_log SELECT g, 'x' FROM generate_series(1, 50) g");
  const config = configFor(server, { slot_name: 'keyless_log_slot', publication_name: 'keyless_log_pub', chunk_size: 10 });
  const catalog = await catalogFor(config, ['keyless_log']);
  expect(catalog.streams[0]!.sync_mode).toBe('incremental');
  // The snapshot stopped after rows 1–10 (ctid (0,10))…
  const first = await readFirstChunk(config, catalog);
  expect(first.records.map((r) => r.v)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  // …then rows 1–30 were deleted and VACUUM FULL moved rows 31–50 to ctids (0,1)–(0,20).
  await sql.query('DELETE FROM keyless_log WHERE v <= 30');
  await sql.query('VACUUM FULL keyless_log');
  const { ctx, logs } = contextWithLogs();
  const rest = await readAll(config, catalog, first.state, ctx);
  // Applied as a keyless destination would (a multiset of rows; a delete removes one equal row).
  const rows = new Map<number, number>();
  for (const record of [...first.records, ...rest.records.map((r) => r.data)]) {
    const v = (record._tributary_op === 'd' ? (record._tributary_before as { v: number }).v : record.v) as number;
    const count = (rows.get(v) ?? 0) + (record._tributary_op === 'd' ? -1 : 1);
    if (count > 0) rows.set(v, count);
    else rows.delete(v);
  }
  // Resumed after (0,10) of the new file, rows 31–40 were never read nor streamed.
  expect([...rows.entries()].sort((a, b) => a[0] - b[0])).toEqual(Array.from({ length: 20 }, (_, i) => [i + 31, 1]));
  expect(logs.some((l) => l.level === 'WARN' && l.message.includes('public.keyless_log was rewritten'))).toBe(true);
  await sql.query(`SELECT pg_drop_replication_slot('keyless_log_slot')`);
});

it('a table without a replica identity is not put in the publication: its UPDATEs and DELETEs would fail', async () => {
  await sql.query('CREATE TABLE no_identity (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO no_identity VALUES (1, 1)');
  const config = configFor(server, { slot_name: 'no_identity_slot', publication_name: 'no_identity_pub' });
  // Configured for CDC while it had its primary key as identity…
  const catalog = await catalogFor(config, ['no_identity']);
  // …then its identity was taken away: discovery offers a full refresh only.
  await sql.query('ALTER TABLE no_identity REPLICA IDENTITY NOTHING');
  const discovered = await postgresSource.discover(createConnectorContext({}), config);
  expect(discovered.streams.find((s) => s.name === 'no_identity')!.supported_sync_modes).toEqual(['full_refresh']);
  // The stale catalog's CDC read is refused before the publication takes the table in.
  await expect(readAll(config, catalog)).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/no_identity \(REPLICA IDENTITY NOTHING\)/) });
  await sql.query('UPDATE no_identity SET v = 2');
  await sql.query('DELETE FROM no_identity');

  // A keyless partitioned table with REPLICA IDENTITY FULL on its root only: each partition is
  // checked on its own (an UPDATE on a partition with no identity fails just the same).
  await sql.query('CREATE TABLE parted_log (v int, k int) PARTITION BY LIST (k)');
  await sql.query('CREATE TABLE parted_log_1 PARTITION OF parted_log FOR VALUES IN (1)');
  await sql.query('ALTER TABLE parted_log REPLICA IDENTITY FULL');
  await sql.query('INSERT INTO parted_log VALUES (1, 1)');
  const partedConfig = configFor(server, { slot_name: 'parted_log_slot', publication_name: 'parted_log_pub' });
  const parted = await catalogFor(partedConfig, ['parted_log']);
  await expect(readAll(partedConfig, parted)).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/parted_log_1 \(no primary key\)/) });
  await sql.query('UPDATE parted_log SET v = 2');
  await sql.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ('no_identity_slot', 'parted_log_slot')`);
});
