import type pg from 'pg';
import { expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { applyChanges, catalogFor, configFor, contextWithLogs, readAll, sortedEntries, tableImage, usePostgres, type EmbeddedPostgresServer } from './support.js';

// A CDC stream left out of one sync's catalog and selected again later. Its stream state
// survives in the connection's state (the runtime merges per-stream states), while the
// sync without it moved the shared position past its changes: resuming it there lost them.

let server: EmbeddedPostgresServer;
let sql: pg.Client;
const byId = (row: Record<string, unknown>): string => String(row.id);

usePostgres((started, client) => {
  server = started;
  sql = client;
});

it('a stream left out of a sync and selected again is snapshotted again: its changes made meanwhile are not lost', async () => {
  await sql.query('CREATE TABLE kept (id int PRIMARY KEY, v int)');
  await sql.query('CREATE TABLE paused (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO kept VALUES (1, 1)');
  await sql.query('INSERT INTO paused VALUES (1, 1), (2, 2)');
  const config = configFor(server, { slot_name: 'readded_slot', publication_name: 'readded_pub' });
  const both = await catalogFor(config, ['kept', 'paused']);
  const keptOnly = await catalogFor(config, ['kept']);
  const first = await readAll(config, both);

  // Written while `paused` is out of the catalog: the sync without it reads past these changes.
  await sql.query('INSERT INTO paused VALUES (3, 3)');
  await sql.query('UPDATE paused SET v = 20 WHERE id = 2');
  await sql.query('DELETE FROM paused WHERE id = 1');
  await sql.query('INSERT INTO kept VALUES (2, 2)');
  const second = await readAll(config, keptOnly, first.state);
  expect(second.records.map((r) => r.data.id)).toEqual([2]);

  await sql.query('INSERT INTO paused VALUES (4, 4)');
  const { ctx, logs } = contextWithLogs();
  const third = await readAll(config, both, second.state, ctx);
  const paused = (records: Array<{ stream: string; data: RecordData }>): RecordData[] => records.filter((r) => r.stream === 'paused').map((r) => r.data);
  const image = new Map<string, Record<string, unknown>>();
  applyChanges(image, [...paused(first.records), ...paused(third.records)], byId);
  // Without the new snapshot: row 2 stale (v 2), row 3 missing. With it, every row of the
  // table is current; row 1, deleted meanwhile, remains downstream (documented: a snapshot
  // carries no deletes).
  expect(paused(third.records).map((r) => [r._tributary_op, r.id, r.v])).toEqual([
    ['r', 2, 20],
    ['r', 3, 3],
    ['r', 4, 4],
    // The snapshot is newer than the slot position: the changes after it are replayed on top.
    ['c', 4, 4],
  ]);
  image.delete('1');
  expect(sortedEntries(image)).toEqual(sortedEntries(await tableImage(config, 'paused', byId)));
  expect(logs.some((l) => l.level === 'WARN' && l.message.startsWith('public.paused was not part of the syncs since'))).toBe(true);

  // From there on it streams as usual.
  await sql.query('UPDATE paused SET v = 30 WHERE id = 3');
  const fourth = await readAll(config, both, third.state);
  expect(paused(fourth.records).map((r) => [r._tributary_op, r.id, r.v])).toEqual([['u', 3, 30]]);
  await sql.query(`SELECT pg_drop_replication_slot('readded_slot')`);
});
