import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { admitsIntegerText, columnTypeOf } from '../src/schema-registry.js';
import { keyedStream, writeSession } from './helpers.js';
import { DuckDBInstance } from '@duckdb/node-api';

// Sources send integers a double cannot hold as decimal text and say so in the schema
// (PostgreSQL int8, Salesforce Number(18,0): type integer|string, strings limited to digits).
// The lake gave such fields a JSON column; every digit must land in a BIGINT column.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-big-integers-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const INT8 = { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$' };
const T = '2026-03-01T10:00:00Z';
const orders = keyedStream('orders', { updated_at: { type: 'string', format: 'date-time' }, amount: INT8 }, { cursorField: ['updated_at'] });
const order = (id: number, amount: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: T, amount });

/** Column types and values as an independent DuckDB reads them from the files, BIGINTs as text. */
async function stored(path: string): Promise<{ type: string; rows: Array<[number, string | null]> }> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const glob = join(path, 'data', 'orders', '**', '*.parquet');
    const described = (await connection.runAndReadAll(`SELECT column_type FROM (DESCRIBE SELECT amount FROM read_parquet('${glob}'))`)).getRows();
    const rows = (await connection.runAndReadAll(`SELECT id, CAST(amount AS VARCHAR) FROM read_parquet('${glob}') ORDER BY ingest_time, _tributary_ingest_seq`)).getRows();
    return { type: String(described[0]![0]), rows: rows.map((r) => [Number(r[0]), r[1] === null ? null : String(r[1])]) };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

it('recognises integer text by the schema: integer|string with a digits-only pattern', () => {
  expect(columnTypeOf(INT8)).toBe('integer');
  expect(admitsIntegerText({ type: ['string', 'integer'], pattern: '^-?\\d+$' })).toBe(true);
  expect(admitsIntegerText({ type: ['integer', 'string'], pattern: '^-?(0|[1-9][0-9]*)$' })).toBe(true);
  // A union without the pattern may hold any text: still JSON.
  expect(columnTypeOf({ type: ['integer', 'string', 'null'] })).toBe('json');
  expect(columnTypeOf({ type: ['integer', 'string'], pattern: '^[0-9a-f]+$' })).toBe('json');
  expect(columnTypeOf({ type: ['integer', 'string'], pattern: '^-?[0-9.]+$' })).toBe('json');
  expect(columnTypeOf({ type: ['integer', 'string'], pattern: '(' })).toBe('json');
});

it('stores every digit of integers beyond 2^53 in a BIGINT column, given as text or (unvalidated: no JSON type) as a bigint', async () => {
  const config = { path: join(root, 'digits'), validate_records: false };
  const rejected = await writeSession(config, orders, [
    [order(1, '9007199254740993'), order(2, 42), order(3, '-9223372036854775808'), order(4, '9223372036854775807'), order(5, 2n ** 62n + 1n), order(6, '00017'), order(7, null)],
  ]);
  expect(rejected).toEqual([]);
  const files = await stored(config.path);
  expect(files.type).toBe('BIGINT');
  expect(files.rows).toEqual([
    [1, '9007199254740993'],
    [2, '42'],
    [3, '-9223372036854775808'],
    [4, '9223372036854775807'],
    [5, '4611686018427387905'],
    [6, '17'],
    [7, null],
  ]);
  // The lake's own readers: numbers while exact, digits beyond ±2^53.
  const latest = await readLatestAsOf(config, { stream: 'orders' });
  expect(latest.map((r) => r.payload.amount)).toEqual(['9007199254740993', 42, '-9223372036854775808', '9223372036854775807', '4611686018427387905', 17, null]);
  // The registry's payload schema says what the readers return.
  const registry = JSON.parse(await readFile(join(config.path, '_tributary', 'schemas', 'orders.json'), 'utf8')) as { versions: Array<{ columns: Array<{ field: string; type: string }>; jsonSchema: { properties: Record<string, unknown> } }> };
  expect(registry.versions.at(-1)!.columns.find((c) => c.field === 'amount')!.type).toBe('integer');
  expect(admitsIntegerText(registry.versions.at(-1)!.jsonSchema.properties.amount)).toBe(true);
});

it('quarantines text that is not a decimal integer or does not fit a BIGINT, with the reason', async () => {
  const config = { path: join(root, 'refused'), validate_records: false };
  const rejected = await writeSession(config, orders, [[order(1, '12.5'), order(2, '9223372036854775808'), order(3, 'abc'), order(4, 2n ** 63n), order(5, 7)]]);
  expect(rejected.map((r) => [r.index, r.reason])).toEqual([
    [0, 'field "amount": expected an integer, got string "12.5"'],
    [1, 'field "amount": integer 9223372036854775808 is beyond the range of a BIGINT (±2^63)'],
    [2, 'field "amount": expected an integer, got string "abc"'],
    [3, 'field "amount": integer 9223372036854775808 is beyond the range of a BIGINT (±2^63)'],
  ]);
  expect((await stored(config.path)).rows).toEqual([[5, '7']]);
  // The quarantine holds them all; the bigint (no JSON form) as its digits.
  const quarantined = await queryLake(config, "SELECT CAST(record->'amount' AS VARCHAR) AS amount FROM quarantine ORDER BY CAST(record->'id' AS INTEGER)");
  expect(quarantined.map((r) => r.amount)).toEqual(['"12.5"', '"9223372036854775808"', '"abc"', '"9223372036854775808"']);
});

it('with validation, the schema refuses text that is not digits before the lake sees it', async () => {
  const config = { path: join(root, 'validated') };
  const rejected = await writeSession(config, orders, [[order(1, '12.5'), order(2, '12')]]);
  expect(rejected.map((r) => r.index)).toEqual([0]);
  expect(rejected[0]!.reason).toMatch(/amount must match pattern/);
  expect((await stored(config.path)).rows).toEqual([[2, '12']]);
});

it('a replay of big integers after a crash adds no row; a changed last digit is stored', async () => {
  const config = { path: join(root, 'replay') };
  // The crashed sync committed both rows (its checkpoint was not stored: they come again).
  await writeSession(config, orders, [[order(1, '9007199254740993'), order(2, '-9007199254740995')]], false);
  await writeSession(config, orders, [[order(1, '9007199254740993'), order(2, '-9007199254740994')]]);
  expect((await stored(config.path)).rows).toEqual([
    [1, '9007199254740993'],
    [2, '-9007199254740995'],
    [2, '-9007199254740994'],
  ]);
});

it('a lake that stored such a field as JSON keeps its JSON column (no breaking change on upgrade)', async () => {
  const config = { path: join(root, 'upgrade') };
  // What the lake made of the field before it knew integer text: a JSON column.
  const before = keyedStream('orders', { updated_at: { type: 'string', format: 'date-time' }, amount: { type: ['integer', 'string', 'null'] } }, { cursorField: ['updated_at'] });
  expect(await writeSession(config, before, [[order(1, '9007199254740993')]])).toEqual([]);
  expect(await writeSession(config, orders, [[order(2, '9007199254740995'), order(3, 5)]])).toEqual([]);
  const rows = await queryLake(config, 'SELECT id, CAST(amount AS VARCHAR) AS amount FROM orders ORDER BY id');
  expect(rows).toEqual([
    { id: 1, amount: '"9007199254740993"' },
    { id: 2, amount: '"9007199254740995"' },
    { id: 3, amount: '5' },
  ]);
});

it('a JSON column is kept when the source narrows the field to string (a union before), instead of failing the sync', async () => {
  const config = { path: join(root, 'narrowed') };
  const union = keyedStream('orders', { updated_at: { type: 'string', format: 'date-time' }, amount: { type: ['string', 'number', 'boolean', 'null'] } }, { cursorField: ['updated_at'] });
  expect(await writeSession(config, union, [[order(1, 42)]])).toEqual([]);
  const text = keyedStream('orders', { updated_at: { type: 'string', format: 'date-time' }, amount: { type: ['string', 'null'] } }, { cursorField: ['updated_at'] });
  expect(await writeSession(config, text, [[order(2, '42')]])).toEqual([]);
  const latest = await readLatestAsOf(config, { stream: 'orders' });
  expect(latest.map((r) => r.payload.amount)).toEqual([42, '42']);
});
