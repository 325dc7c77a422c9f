import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import type { RecordData } from '@tributary/core';
import { keyedStream, writeSession } from './helpers.js';

// A bigint (an in-process source's value) in a field the schema does not declare lands in
// an inferred BIGINT column. In a stream without positions (no cursor, no CDC position) the
// event id hashes the whole record's JSON, and JSON.stringify threw on the bigint: the
// batch failed ("Do not know how to serialize a BigInt").
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-bigint-positionless-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const record = (): RecordData => ({ id: 1, tenant_id: 't1', customer_id: 'c1', updated_at: '2026-03-01T10:00:00Z', big: 12345678901234567n });

it('a bigint in a stream without positions is stored as a BIGINT with every digit, and its replay adds no row', async () => {
  const config = { path: join(root, 'positionless') };
  const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } });
  expect(await writeSession(config, stream, [[record()]], false)).toEqual([]);
  expect(await writeSession(config, stream, [[record()]])).toEqual([]);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const glob = join(config.path, 'data', 'm', '**', '*.parquet');
    const rows = (await connection.runAndReadAll(`SELECT typeof(big), CAST(big AS VARCHAR) FROM read_parquet('${glob}', union_by_name = true)`)).getRows();
    expect(rows.map((r) => r.map(String))).toEqual([['BIGINT', '12345678901234567']]);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
});
