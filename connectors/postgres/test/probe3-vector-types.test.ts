/**
 * int2vector and oidvector are array types (category 'A') that PostgreSQL prints without
 * braces (`1 2 3`). The array parser scanned for a ',' or '}' that never came and looped
 * forever: a snapshot or stream reaching such a column blocked the process (100% CPU, no
 * error, not even cancellable).
 */
import type pg from 'pg';
import { expect, it } from 'vitest';
import { parseArrayLiteral } from '../src/schema/values.js';
import { catalogFor, cdcConfigFor, readAll, usePostgres, type Server } from './support.js';

let server: Server;
let sql: pg.Client;
usePostgres((s, c) => {
  server = s;
  sql = c;
});

it('int2vector and oidvector columns are read as arrays of numbers, in the snapshot and in the stream', async () => {
  await sql.query('CREATE TABLE vectors (id int PRIMARY KEY, iv int2vector, ov oidvector)');
  await sql.query(`INSERT INTO vectors VALUES (1, '1 2 3', '23 25'), (2, '', ''), (3, NULL, NULL)`);
  const config = cdcConfigFor(server, 'vectors');
  const catalog = await catalogFor(config, ['vectors']);
  const first = await readAll(config, catalog);
  expect(first.records.map((r) => [r.data.id, r.data.iv, r.data.ov])).toEqual([
    [1, [1, 2, 3], [23, 25]],
    [2, [], []],
    [3, null, null],
  ]);
  await sql.query(`INSERT INTO vectors VALUES (4, '7 8', '26')`);
  const next = await readAll(config, catalog, first.state);
  expect(next.records.map((r) => [r.data.id, r.data.iv, r.data.ov])).toEqual([[4, [7, 8], [26]]]);
  await sql.query(`SELECT pg_drop_replication_slot('vectors_slot')`);
});

it('an array literal that ends inside an element is refused, not scanned past its end', () => {
  expect(() => parseArrayLiteral('{"abc')).toThrow(/malformed array literal/);
  expect(() => parseArrayLiteral('{1,2')).toThrow(/malformed array literal/);
  expect(parseArrayLiteral('{1,"a}b",NULL,{x}}')).toEqual(['1', 'a}b', null, ['x']]);
});
