import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// The `events` view unions the streams: a column that is JSON in one stream and DOUBLE in
// another is read as JSON, the DOUBLE stream's values through DuckDB's to_json, which writes
// NaN and ±infinity as bare `NaN`/`Infinity` (no JSON): parsing them failed the query.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-events-non-finite-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const FLOAT8 = { type: ['number', 'string', 'null'], pattern: '^(NaN|Infinity|-Infinity)$' };
const T = '2026-03-01T10:00:00Z';
const row = (id: number, f: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: T, f });

it('events: a DOUBLE column holding NaN/±infinity that is JSON in another stream reads as their text', async () => {
  const config = { path: join(root, 'mixed') };
  const props = (f: unknown): Record<string, unknown> => ({ updated_at: { type: 'string', format: 'date-time' }, f });
  expect(await writeSession(config, keyedStream('doubles', props(FLOAT8), { cursorField: ['updated_at'] }), [[row(1, 1.5), row(2, 'NaN'), row(3, 'Infinity'), row(4, '-Infinity'), row(5, null)]])).toEqual([]);
  expect(await writeSession(config, keyedStream('objects', props({ type: 'object' }), { cursorField: ['updated_at'] }), [[row(6, { a: 1 })]])).toEqual([]);
  const rows = await queryLake(config, 'SELECT id, f FROM events ORDER BY id');
  expect(rows.map((r) => r.f)).toEqual([1.5, 'NaN', 'Infinity', '-Infinity', null, { a: 1 }]);
});
