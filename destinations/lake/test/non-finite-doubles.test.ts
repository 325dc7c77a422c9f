import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { admitsNonFiniteText, columnTypeOf } from '../src/schema-registry.js';
import { keyedStream, writeSession } from './helpers.js';

// Doubles JSON has no number for arrive as text: the PostgreSQL source sends float4/float8
// NaN and ±infinity as "NaN", "Infinity", "-Infinity" and declares them (number|string with
// a pattern allowing those three). The lake gave such fields a JSON column; a column a
// source added mid-stream (no declared schema) quarantined them, and beyond-2^53 digits in
// an inferred integer column too.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-non-finite-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const FLOAT8 = { type: ['number', 'string', 'null'], pattern: '^(NaN|Infinity|-Infinity)$' };
const T = '2026-03-01T10:00:00Z';
const row = (id: number, extra: Record<string, unknown>): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: T, ...extra });

/** `(id, typeof(column), column as text)` per row, as an independent DuckDB reads the files. */
async function stored(path: string, stream: string, column: string): Promise<Array<[number, string, string | null]>> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const glob = join(path, 'data', stream, '**', '*.parquet');
    const rows = (await connection.runAndReadAll(`SELECT id, typeof(${column}), CAST(${column} AS VARCHAR) FROM read_parquet('${glob}', union_by_name = true) ORDER BY ingest_time, id`)).getRows();
    return rows.map((r) => [Number(r[0]), String(r[1]), r[2] === null ? null : String(r[2])]);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

it('recognises non-finite text by the schema: number|string with a pattern allowing exactly NaN, Infinity, -Infinity', () => {
  expect(columnTypeOf(FLOAT8)).toBe('number');
  expect(admitsNonFiniteText({ type: ['string', 'number'], pattern: '^(?:NaN|-?Infinity)$' })).toBe(true);
  expect(columnTypeOf({ type: ['number', 'string', 'null'] })).toBe('json');
  expect(columnTypeOf({ type: ['number', 'string'], pattern: '^(NaN|Infinity|-Infinity|[0-9.]+)$' })).toBe('json');
  expect(columnTypeOf({ type: ['number', 'string'], pattern: '^NaN$' })).toBe('json');
});

it('a declared float column is a DOUBLE; NaN and ±infinity read back as their text, through every reader', async () => {
  const config = { path: join(root, 'declared') };
  const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' }, f: FLOAT8 }, { cursorField: ['updated_at'] });
  expect(await writeSession(config, stream, [[row(1, { f: 1.5 }), row(2, { f: 'NaN' }), row(3, { f: 'Infinity' }), row(4, { f: '-Infinity' }), row(5, { f: null })]])).toEqual([]);
  expect(await stored(config.path, 'm', 'f')).toEqual([
    [1, 'DOUBLE', '1.5'],
    [2, 'DOUBLE', 'nan'],
    [3, 'DOUBLE', 'inf'],
    [4, 'DOUBLE', '-inf'],
    [5, 'DOUBLE', null],
  ]);
  const latest = await readLatestAsOf(config, { stream: 'm' });
  expect(latest.map((r) => r.payload.f)).toEqual([1.5, 'NaN', 'Infinity', '-Infinity', null]);
  expect((await queryLake(config, 'SELECT f FROM m ORDER BY id')).map((r) => r.f)).toEqual([1.5, 'NaN', 'Infinity', '-Infinity', null]);
});

it('a replay of NaN and ±infinity rows after a crash adds no row', async () => {
  const config = { path: join(root, 'replay') };
  const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' }, f: FLOAT8 }, { cursorField: ['updated_at'] });
  const batch = [row(1, { f: 'NaN' }), row(2, { f: '-Infinity' })];
  await writeSession(config, stream, [batch], false);
  await writeSession(config, stream, [batch]);
  expect((await stored(config.path, 'm', 'f')).map((r) => r[0])).toEqual([1, 2]);
});

it('fields added mid-stream (no declared schema) keep NaN/±infinity in their inferred DOUBLE and beyond-2^53 digits in their inferred BIGINT', async () => {
  const config = { path: join(root, 'inferred') };
  const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } }, { cursorField: ['updated_at'] });
  const rejected = await writeSession(config, stream, [
    [row(1, { f: 1.5, big: 5 })],
    [row(2, { f: 'NaN', big: '9223372036854775807' }), row(3, { f: '-Infinity', big: '-9007199254740993' })],
    // Text that is not how such a value reads back stays refused: a safe integer as text, or a word.
    [row(4, { big: '12' }), row(5, { f: 'nan' }), row(6, { big: '09007199254740993' })],
  ]);
  expect(rejected.map((r) => r.reason)).toEqual(['field "big": expected an integer, got string "12"', 'field "f": expected a number, got string "nan"', 'field "big": expected an integer, got string "09007199254740993"']);
  expect(await stored(config.path, 'm', 'f')).toEqual([
    [1, 'DOUBLE', '1.5'],
    [2, 'DOUBLE', 'nan'],
    [3, 'DOUBLE', '-inf'],
  ]);
  expect(await stored(config.path, 'm', 'big')).toEqual([
    [1, 'BIGINT', '5'],
    [2, 'BIGINT', '9223372036854775807'],
    [3, 'BIGINT', '-9007199254740993'],
  ]);
});
