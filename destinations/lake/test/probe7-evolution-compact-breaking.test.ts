import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, type RecordData } from '@tributary/core';
import { compactLake, lakeConfigSchema, loadLakeState, openStore } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// A PostgreSQL int8 column lands in a BIGINT with every digit; when it becomes float8 the
// lake widens it to DOUBLE (integer → number), and compaction keeps BIGINT and DOUBLE files
// apart. When the field then changed type again (text, `on_breaking_change: new_column`:
// written to `x__v3`), compaction looked only at the latest version, which no longer names
// column `x` at all: it merged the BIGINT files with the DOUBLE ones, and 9223372036854775807
// was rewritten as 9.223372036854776e+18.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe7-compact-breaking-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const INT8 = { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' };
const FLOAT8 = { type: ['number', 'string', 'null'], pattern: '^(NaN|Infinity|-Infinity)$' };
const row = (id: number, x: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: '2026-03-01T10:00:00Z', x });
const stream = (x: unknown) => keyedStream('m', { updated_at: { type: 'string', format: 'date-time' }, x }, { cursorField: ['updated_at'] });

/** `id type value` of each row's `x…` columns, file by file as the log lists them (each file read alone: its own column types), by an independent DuckDB. */
async function storedPerFile(path: string): Promise<string[]> {
  const store = openStore(parseConfig(lakeConfigSchema, { path }));
  const files = [...(await loadLakeState(store)).files.values()].map((f) => join(path, f.path));
  store.close();
  const out: string[] = [];
  for (const file of files) {
    const types = new Map((await duckQuery(`DESCRIBE SELECT COLUMNS('^x') FROM read_parquet('${file}')`)).map((c) => [String(c.column_name), String(c.column_type)]));
    for (const r of await duckQuery(`SELECT id, CAST(COLUMNS('^x') AS VARCHAR) FROM read_parquet('${file}')`)) {
      for (const [column, type] of types) if (r[column] !== null) out.push(`${String(r.id)} ${column} ${type} ${String(r[column])}`);
    }
  }
  return out.sort();
}

it('compaction keeps every digit of BIGINTs widened to DOUBLE when a later breaking change moved the field to a new column', async () => {
  const config = { path: join(root, 'lake'), on_breaking_change: 'new_column' };
  expect(await writeSession(config, stream(INT8), [[row(1, '9007199254740993')]])).toEqual([]);
  expect(await writeSession(config, stream(INT8), [[row(2, '9223372036854775807')]])).toEqual([]);
  expect(await writeSession(config, stream(FLOAT8), [[row(3, 1.5)]])).toEqual([]);
  expect(await writeSession(config, stream(FLOAT8), [[row(4, 2.5)]])).toEqual([]);
  expect(await writeSession(config, stream({ type: 'string' }), [[row(5, 'five')]])).toEqual([]);
  const before = await storedPerFile(config.path);
  expect(before).toEqual(['1 x BIGINT 9007199254740993', '2 x BIGINT 9223372036854775807', '3 x DOUBLE 1.5', '4 x DOUBLE 2.5', '5 x__v3 VARCHAR five']);
  // The BIGINT files merge with each other; the DOUBLE files with the one written after the change (no `x` there).
  const compacted = await compactLake(config, { minFiles: 2 });
  expect(await storedPerFile(config.path)).toEqual(before);
  expect(compacted).toMatchObject({ filesBefore: 5, filesAfter: 2, rows: 5 });
});
