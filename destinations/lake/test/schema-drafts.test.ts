import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readStreamRows } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// Record validation reads a stream schema by its `$schema`: draft-07 (Airbyte's, and the
// default), 2019-09 and 2020-12 with their own rules, draft-04 and -06 (Singer taps) as
// draft-07. A `$schema` the validator did not know made the session fail to open.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-drafts-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const base = { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, score: { type: 'number' } }, required: ['id'] };

async function sync(name: string, jsonSchema: Record<string, unknown>, records: RecordData[]) {
  const config = { path: join(root, name) };
  const rejected = await writeSession(config, keyedStream('rows', {}, { jsonSchema }), [records]);
  const stored = (await readStreamRows(config, { stream: 'rows' })).map((r) => r.payload.id).sort();
  return { rejected: rejected.map((r) => [r.index, r.reason]), stored };
}

const row = (id: number, score: number): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', score });

it.each([
  ['draft-07', 'http://json-schema.org/draft-07/schema#'],
  ['draft-06', 'http://json-schema.org/draft-06/schema#'],
  ['2019-09', 'https://json-schema.org/draft/2019-09/schema'],
  ['2020-12', 'https://json-schema.org/draft/2020-12/schema'],
])('a %s stream schema validates records', async (name, $schema) => {
  const result = await sync(name, { $schema, ...base }, [row(1, 1), { id: 2, tenant_id: 't1', customer_id: 'c1', score: 'high' } as RecordData]);
  expect(result.stored).toEqual([1]);
  expect(result.rejected).toEqual([[1, 'does not match the stream schema: score must be number']]);
});

it('a draft-04 stream schema validates records, its boolean exclusive bounds read as draft-04 means them', async () => {
  const schema = { $schema: 'http://json-schema.org/draft-04/schema#', ...base, properties: { ...base.properties, score: { type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 10, exclusiveMaximum: false } } };
  const result = await sync('draft-04', schema, [row(1, 10), row(2, 0), row(3, 5)]);
  expect(result.stored).toEqual([1, 3]);
  expect(result.rejected).toEqual([[1, 'does not match the stream schema: score must be > 0']]);
});

it('an unknown $schema is refused with a message naming it and the way out', async () => {
  await expect(sync('unknown', { $schema: 'https://example.com/my-schema', ...base }, [row(1, 1)])).rejects.toThrow(/declares its JSON schema as "https:\/\/example.com\/my-schema".*validate_records: false/);
});
