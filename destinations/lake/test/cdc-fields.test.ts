import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readStreamRows } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// Only the CDC fields sources add (`_tributary_op`, `_position`, `_txid`, `_commit_time`,
// `_before`, `_unchanged`) belong to the envelope; any other `_tributary_…` field is payload.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-cdc-fields-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

async function sync(name: string, jsonSchema: Record<string, unknown>, records: RecordData[]) {
  const config = { path: join(root, name) };
  expect(await writeSession(config, keyedStream('rows', {}, { jsonSchema }), [records])).toEqual([]);
  return (await readStreamRows(config, { stream: 'rows' })).sort((a, b) => Number(a.payload.id) - Number(b.payload.id));
}

const properties = { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' } };

it('a `_tributary_…` field that is not a CDC field is stored as payload (it was dropped)', async () => {
  const rows = await sync('payload', { type: 'object', properties }, [{ id: 1, tenant_id: 't1', customer_id: 'c1', _tributary_note: 'kept', _tributary_score: 3 }]);
  expect(rows.map((r) => [r.payload._tributary_note, r.payload._tributary_score])).toEqual([['kept', 3]]);
});

it('a stream schema that declares CDC fields other than `_tributary_op` gets them staged (its positions were lost)', async () => {
  const schema = { type: 'object', additionalProperties: false, properties: { ...properties, _tributary_position: { type: 'string' }, _tributary_txid: { type: 'string' } } };
  const rows = await sync('declared', schema, [
    { id: 1, tenant_id: 't1', customer_id: 'c1', _tributary_position: '0/16B3748', _tributary_txid: '741' },
    { id: 2, tenant_id: 't1', customer_id: 'c1', _tributary_position: '0/16B3790', _tributary_txid: '742' },
  ]);
  expect(rows.map((r) => [r.payload.id, r.source_position, r.source_txid])).toEqual([
    [1, '0/16B3748', '741'],
    [2, '0/16B3790', '742'],
  ]);
});
