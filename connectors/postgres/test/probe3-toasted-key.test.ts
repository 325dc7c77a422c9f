/**
 * A key column stored out of line (TOASTed, e.g. a long text key with STORAGE EXTERNAL):
 * an UPDATE that keeps the key sends the old key ('K') but leaves the key column out of the
 * new tuple (unchanged TOAST). The record used to lack its key (listed in
 * `_tributary_unchanged`), so no keyed destination could apply it.
 */
import type pg from 'pg';
import { expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { applyChanges, catalogFor, cdcConfigFor, readAll, sortedEntries, tableImage, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});

const data = (records: Array<{ data: RecordData }>): RecordData[] => records.map((r) => r.data);

it('an update that keeps a TOASTed key carries the key, and no before-image; a keyed destination equals the table', async () => {
  await sql.query('CREATE TABLE long_keys (id text PRIMARY KEY, v int, doc text)');
  await sql.query('ALTER TABLE long_keys ALTER COLUMN id SET STORAGE EXTERNAL, ALTER COLUMN doc SET STORAGE EXTERNAL');
  await sql.query(`INSERT INTO long_keys VALUES (repeat('a', 2500), 1, repeat('d', 5000)), (repeat('b', 2500), 1, 'short')`);
  const config = cdcConfigFor(server, 'long_keys');
  const catalog = await catalogFor(config, ['long_keys']);
  const byId = (row: Record<string, unknown>): string => String(row.id);
  const first = await readAll(config, catalog);

  await sql.query('UPDATE long_keys SET v = 2');
  // The key changed: the old key is a real before-image.
  await sql.query(`UPDATE long_keys SET id = repeat('c', 2500) WHERE id = repeat('b', 2500)`);
  const changes = data((await readAll(config, catalog, first.state)).records);

  const [a, b, moved] = changes;
  expect(a).toMatchObject({ id: 'a'.repeat(2500), v: 2, _tributary_op: 'u', _tributary_before: null, _tributary_unchanged: ['doc'] });
  expect(b).toMatchObject({ id: 'b'.repeat(2500), v: 2, doc: 'short', _tributary_op: 'u', _tributary_before: null });
  expect(b).not.toHaveProperty('_tributary_unchanged');
  expect(moved).toMatchObject({ id: 'c'.repeat(2500), _tributary_before: { id: 'b'.repeat(2500) } });

  const image = new Map<string, Record<string, unknown>>();
  applyChanges(image, [...data(first.records), ...changes], byId);
  expect(sortedEntries(image)).toEqual(sortedEntries(await tableImage(config, 'long_keys', byId)));
});

it('a composite key with a TOASTed column and a changed one: the new key is whole, the before-image the old key', async () => {
  await sql.query('CREATE TABLE pairs (name text, n int, v int, PRIMARY KEY (name, n))');
  await sql.query('ALTER TABLE pairs ALTER COLUMN name SET STORAGE EXTERNAL');
  await sql.query(`INSERT INTO pairs VALUES (repeat('p', 2500), 1, 1)`);
  const config = cdcConfigFor(server, 'pairs');
  const catalog = await catalogFor(config, ['pairs']);
  const first = await readAll(config, catalog);
  await sql.query('UPDATE pairs SET n = 2');
  const [change] = data((await readAll(config, catalog, first.state)).records);
  expect(change).toMatchObject({ name: 'p'.repeat(2500), n: 2, v: 1, _tributary_before: { name: 'p'.repeat(2500), n: 1 } });
  expect(change).not.toHaveProperty('_tributary_unchanged');
});
