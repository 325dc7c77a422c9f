import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryLake } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// JSON.parse reads any depth, JSON.stringify throws RangeError beyond ~4,000 levels: a
// record a source parsed could not be written, and its batch failed on every retry.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-deep-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const DEPTH = 6_000;
/** {"a":{"a":…{"a":"leaf"}…}}, `DEPTH` levels, as JSON.parse builds it from a source's answer. */
const deepValue = (): unknown => JSON.parse(`${'{"a":'.repeat(DEPTH)}"leaf"${'}'.repeat(DEPTH)}`);

it('a record nested deeper than JSON.stringify can go is stored (its batch failed on every retry) and read back whole', async () => {
  expect(() => JSON.stringify(deepValue())).toThrow(RangeError);
  const config = { path: join(root, 'stored') };
  const stream = keyedStream('docs', { body: { type: 'object' } });
  const rejected = await writeSession(config, stream, [[{ id: 1, tenant_id: 't1', customer_id: 'c1', body: deepValue() }, { id: 2, tenant_id: 't1', customer_id: 'c2', body: { a: 'shallow' } }]]);
  expect(rejected).toEqual([]);
  const rows = await queryLake(config, `SELECT id, length(CAST(body AS VARCHAR)) AS chars, json_extract_string(body, '$${'.a'.repeat(DEPTH)}') AS leaf FROM docs ORDER BY id`);
  expect(rows).toEqual([
    { id: 1, chars: DEPTH * 6 + '"leaf"'.length, leaf: 'leaf' },
    { id: 2, chars: '{"a":"shallow"}'.length, leaf: null },
  ]);
});

it('a deep record that is refused is quarantined with its reason (the quarantine write failed too)', async () => {
  const config = { path: join(root, 'quarantined') };
  const stream = keyedStream('docs', { body: { type: 'object' } });
  const rejected = await writeSession(config, stream, [[{ id: 1, tenant_id: 't1', body: deepValue() }]]);
  expect(rejected).toEqual([{ index: 0, reason: expect.stringContaining('customer') }]);
  const [q] = await queryLake(config, `SELECT count(*) AS n, max(length(CAST(record AS VARCHAR))) AS chars FROM quarantine`);
  expect(q).toEqual({ n: 1, chars: expect.any(Number) });
  expect(Number(q!.chars)).toBeGreaterThan(DEPTH * 6);
});

it('a deep record of a keyless stream (its event id hashes the whole record) is stored once when replayed after a crash', async () => {
  const config = { path: join(root, 'keyless') };
  const stream = keyedStream('notes', { body: { type: 'object' } }, { primaryKey: [], syncMode: 'full_refresh', destinationSyncMode: 'append' });
  const record = () => ({ id: 1, tenant_id: 't1', customer_id: 'c1', body: deepValue() });
  expect(await writeSession(config, stream, [[record()]], false)).toEqual([]);
  expect(await writeSession(config, stream, [[record()]])).toEqual([]);
  expect(await queryLake(config, 'SELECT count(*) AS n FROM notes')).toEqual([{ n: 1 }]);
});
