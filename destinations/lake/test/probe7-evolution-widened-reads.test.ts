import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf, readStreamRows } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// A PostgreSQL int8 column lands in a BIGINT with every digit; when the source column becomes
// float8, the lake widens it to number (DOUBLE from then on, integer → number). The files
// written before keep their BIGINTs, but read together by name DuckDB types the column
// DOUBLE: the library's reads (`readLatestAsOf`, `readStreamRows`) returned
// 9223372036854775807 as 9223372036854776000 for every row written before the widening.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe7-widened-reads-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const INT8 = { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' };
const FLOAT8 = { type: ['number', 'string', 'null'], pattern: '^(NaN|Infinity|-Infinity)$' };
const row = (id: number, big: unknown, day: string): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: `2026-03-0${day}T10:00:00Z`, big });
const stream = (big: unknown) => keyedStream('m', { updated_at: { type: 'string', format: 'date-time' }, big }, { cursorField: ['updated_at'] });

it('reads of a stream whose int8 column was widened to float8 return the digits stored before the widening, and the doubles after', async () => {
  const config = { path: join(root, 'lake') };
  expect(await writeSession(config, stream(INT8), [[row(1, '9007199254740993', '1'), row(2, '9223372036854775807', '1'), row(3, 7, '1')]])).toEqual([]);
  expect(await writeSession(config, stream(FLOAT8), [[row(1, 1.5, '2'), row(4, 'NaN', '2'), row(5, '-Infinity', '2'), row(6, 1e300, '2'), row(7, 9007199254740992, '2')]])).toEqual([]);
  // The files hold every digit (an independent DuckDB, each file alone: its own column type).
  const glob = join(config.path, 'data', 'm', '**', '*.parquet');
  const files = (await duckQuery(`SELECT file FROM glob('${glob}')`)).map((r) => String(r.file));
  const stored: string[] = [];
  for (const file of files) stored.push(...(await duckQuery(`SELECT id, typeof(big) AS t, CAST(big AS VARCHAR) AS v FROM read_parquet('${file}')`)).map((r) => `${String(r.id)} ${String(r.t)} ${String(r.v)}`));
  expect(stored.sort()).toEqual(['1 BIGINT 9007199254740993', '1 DOUBLE 1.5', '2 BIGINT 9223372036854775807', '3 BIGINT 7', '4 DOUBLE nan', '5 DOUBLE -inf', '6 DOUBLE 1e+300', '7 DOUBLE 9007199254740992.0']);

  const payloads = (rows: Awaited<ReturnType<typeof readStreamRows>>) => rows.map((r) => [r.payload.id, r.payload.big]).sort((a, b) => Number(a[0]) - Number(b[0]) || String(a[1]).localeCompare(String(b[1])));
  // As of the day before the widening: the int8 values as they were stored.
  expect(payloads(await readLatestAsOf(config, { stream: 'm', asOf: '2026-03-01T23:00:00Z' }))).toEqual([
    [1, '9007199254740993'],
    [2, '9223372036854775807'],
    [3, 7],
  ]);
  expect(payloads(await readLatestAsOf(config, { stream: 'm' }))).toEqual([
    [1, 1.5],
    [2, '9223372036854775807'],
    [3, 7],
    [4, 'NaN'],
    [5, '-Infinity'],
    [6, 1e300],
    [7, 9007199254740992],
  ]);
  expect(payloads(await readStreamRows(config, { stream: 'm', tenant: 't1' }))).toEqual([
    [1, 1.5],
    [1, '9007199254740993'],
    [2, '9223372036854775807'],
    [3, 7],
    [4, 'NaN'],
    [5, '-Infinity'],
    [6, 1e300],
    [7, 9007199254740992],
  ]);
});
