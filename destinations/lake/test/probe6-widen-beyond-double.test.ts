import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import type { RecordData } from '@tributary/core';
import { keyedStream, writeSession } from './helpers.js';

// A field the stream schema does not declare gets a column typed by its first values; an
// inferred BIGINT column takes the digits of an integer beyond ±2^53, and widens to DOUBLE
// when a fraction arrives. Both in one session: the staged digits were cast to DOUBLE at
// the commit, so 9223372036854775807 was stored as 9.223372036854776e18, no record refused.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-widen-beyond-double-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const T = '2026-03-01T10:00:00Z';
const row = (id: number, big: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: T, big });

/** `(id, typeof(big), big as text)` per row, as an independent DuckDB reads the files. */
async function stored(path: string): Promise<string[][]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const glob = join(path, 'data', 'm', '**', '*.parquet');
    const rows = (await connection.runAndReadAll(`SELECT id, typeof(big), CAST(big AS VARCHAR) FROM read_parquet('${glob}', union_by_name = true) ORDER BY id`)).getRows();
    return rows.map((r) => r.map(String));
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

it('an inferred BIGINT column holding digits beyond 2^53 keeps them: a later fraction in the session is quarantined, not the column widened', async () => {
  const config = { path: join(root, 'one-session') };
  const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } }, { cursorField: ['updated_at'] });
  const rejected = await writeSession(config, stream, [[row(1, 5)], [row(2, '9223372036854775807')], [row(3, 1.5)]]);
  expect(rejected.map((r) => r.reason)).toEqual(['field "big": expected an integer, got number 1.5']);
  expect(await stored(config.path)).toEqual([
    ['1', 'BIGINT', '5'],
    ['2', 'BIGINT', '9223372036854775807'],
  ]);
});

it('without such digits the inferred column still widens to DOUBLE for a fraction', async () => {
  const config = { path: join(root, 'widens') };
  const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } }, { cursorField: ['updated_at'] });
  expect(await writeSession(config, stream, [[row(1, 5)], [row(3, 1.5)]])).toEqual([]);
  expect(await stored(config.path)).toEqual([
    ['1', 'DOUBLE', '5.0'],
    ['3', 'DOUBLE', '1.5'],
  ]);
});
