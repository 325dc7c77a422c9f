import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import type { RecordData } from '@tributary/core';
import { compactLake } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// A PostgreSQL int8 column (integer|string with a digits-only pattern) lands in a BIGINT with
// every digit. When the source column becomes float8 the lake widens it to DOUBLE (integer →
// number). Compaction merged the BIGINT files with the DOUBLE ones into one file, whose
// column DuckDB types as DOUBLE: 9223372036854775807 was rewritten as 9.223372036854776e18.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-compact-widened-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const INT8 = { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' };
const FLOAT8 = { type: ['number', 'string', 'null'], pattern: '^(NaN|Infinity|-Infinity)$' };
const row = (id: number, big: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: '2026-03-01T10:00:00Z', big });
const stream = (big: unknown) => keyedStream('m', { updated_at: { type: 'string', format: 'date-time' }, big }, { cursorField: ['updated_at'] });

/** `big` of each row as text, file by file (each file read alone: its own column type), as an independent DuckDB reads them. */
async function storedPerFile(path: string): Promise<string[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const glob = join(path, 'data', 'm', '**', '*.parquet');
    const files = (await connection.runAndReadAll(`SELECT file FROM glob('${glob}')`)).getRows().map((r) => String(r[0]));
    const out: string[] = [];
    for (const file of files) {
      const rows = (await connection.runAndReadAll(`SELECT id, typeof(big), CAST(big AS VARCHAR) FROM read_parquet('${file}')`)).getRows();
      out.push(...rows.map((r) => r.map(String).join(' ')));
    }
    return out.sort();
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

it('compaction keeps every digit of BIGINTs whose column a later schema widened to DOUBLE', async () => {
  const config = { path: join(root, 'widened') };
  expect(await writeSession(config, stream(INT8), [[row(1, '9007199254740993')]])).toEqual([]);
  expect(await writeSession(config, stream(INT8), [[row(2, '9223372036854775807')]])).toEqual([]);
  expect(await writeSession(config, stream(FLOAT8), [[row(3, 1.5)]])).toEqual([]);
  expect(await writeSession(config, stream(FLOAT8), [[row(4, 2.5)]])).toEqual([]);
  // The BIGINT files merge with each other, the DOUBLE files with each other; the removed files go at once.
  expect(await compactLake(config, { minFiles: 2 })).toMatchObject({ filesBefore: 4, filesAfter: 2, rows: 4 });
  await compactLake(config, { minFiles: 2, graceMs: 0 });
  expect(await storedPerFile(config.path)).toEqual(['1 BIGINT 9007199254740993', '2 BIGINT 9223372036854775807', '3 DOUBLE 1.5', '4 DOUBLE 2.5']);
});
