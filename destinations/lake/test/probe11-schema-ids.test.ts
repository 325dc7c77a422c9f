import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkpoint, createFileStateStore, defineSource, recordPage, runSync, type AirbyteStream, type ConfiguredAirbyteCatalog, type RecordData, type SourceMessage } from '@tributary/core';
import { lakeDestination, queryLake } from '../src/index.js';

// Stream schemas that carry an identifier. ajv registered every compiled schema's `$id` in
// its (process-wide) engine and refused a second schema object with the same one, so a
// catalog of two streams sharing an `$id` (a source that stamps one on every schema), or a
// stream's schema compiled again by a later session of the process, failed the session:
// 'schema with key or id "…" already exists'. A draft-04 schema's identifier keyword `id`
// failed it too: 'NOT SUPPORTED: keyword "id", use "$id" for schema ID'.
let work: string;
beforeAll(async () => (work = await mkdtemp(join(tmpdir(), 'tributary-lake-probe11-ids-'))));
afterAll(() => rm(work, { recursive: true, force: true }));

interface Stream {
  name: string;
  /** JSON text: each sync parses it again, as a source's discover makes a new object. */
  schema: string;
  records: RecordData[];
}

let current: Stream[] = [];
const source = defineSource({
  name: 'probe11-ids',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: current.map((s) => definition(s)) };
  },
  async *read(_ctx, _config, catalog): AsyncGenerator<SourceMessage> {
    for (const configured of catalog.streams) {
      const stream = current.find((s) => s.name === configured.stream.name)!;
      yield recordPage(stream.name, stream.records);
      yield checkpoint(stream.name, { done: true });
    }
  },
});

function definition(stream: Stream): AirbyteStream {
  return { name: stream.name, json_schema: JSON.parse(stream.schema) as Record<string, unknown>, supported_sync_modes: ['full_refresh'] };
}

async function sync(path: string, streams: Stream[]): Promise<void> {
  current = streams;
  const catalog: ConfiguredAirbyteCatalog = { streams: streams.map((s) => ({ stream: definition(s), sync_mode: 'full_refresh', destination_sync_mode: 'append' })) };
  const result = await runSync({
    connection: 'probe11-ids',
    source,
    sourceConfig: {},
    destination: lakeDestination,
    destinationConfig: { path },
    catalog,
    stateStore: createFileStateStore(join(work, `state-${streams.map((s) => s.name).join('-')}`)),
  });
  expect(result.error?.message).toBeUndefined();
  expect(result.outcome).toBe('completed');
}

const shared = JSON.stringify({
  $id: 'https://example.com/schemas/crm-record.json',
  type: 'object',
  definitions: { tenant: { type: 'string', minLength: 1 } },
  properties: { id: { type: 'integer' }, tenant_id: { $ref: '#/definitions/tenant' }, customer_id: { type: 'string' } },
});

it('two streams whose schemas share one $id are validated, each by its own schema, in one sync and in the next', async () => {
  const path = join(work, 'shared');
  const streams = [
    { name: 'a', schema: shared, records: [{ id: 1, tenant_id: 't', customer_id: 'c' }, { id: 2, tenant_id: '', customer_id: 'c' }] },
    { name: 'b', schema: shared, records: [{ id: 3, tenant_id: 't', customer_id: 'c' }] },
  ];
  await sync(path, streams);
  // A second sync in this process compiles new schema objects with the same $id.
  await sync(path, [{ ...streams[1]!, records: [{ id: 4, tenant_id: 't', customer_id: 'c' }, { id: 5, tenant_id: 't', customer_id: 7 } as unknown as RecordData] }]);
  expect(await queryLake({ path }, 'SELECT id FROM a UNION ALL SELECT id FROM b ORDER BY id')).toEqual([{ id: 1 }, { id: 3 }, { id: 4 }]);
  expect(await queryLake({ path }, "SELECT (record->>'id')::INT AS id, reason FROM quarantine ORDER BY id")).toEqual([
    { id: 2, reason: 'does not match the stream schema: tenant_id must NOT have fewer than 1 characters' },
    { id: 5, reason: 'does not match the stream schema: customer_id must be string' },
  ]);
}, 60_000);

it("a draft-04 schema's identifier `id` is read as draft-07's `$id`; a field named id stays a field", async () => {
  const path = join(work, 'draft04');
  const schema = JSON.stringify({
    $schema: 'http://json-schema.org/draft-04/schema#',
    id: 'https://example.com/schemas/legacy.json',
    type: 'object',
    properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, score: { type: 'number', minimum: 0, exclusiveMinimum: true } },
  });
  await sync(path, [{ name: 'legacy', schema, records: [{ id: 1, tenant_id: 't', customer_id: 'c', score: 1 }, { id: 2, tenant_id: 't', customer_id: 'c', score: 0 }, { id: 'x', tenant_id: 't', customer_id: 'c' } as unknown as RecordData] }]);
  expect(await queryLake({ path }, 'SELECT id FROM legacy')).toEqual([{ id: 1 }]);
  expect(await queryLake({ path }, "SELECT record->>'id' AS id, reason FROM quarantine ORDER BY id")).toEqual([
    { id: '2', reason: 'does not match the stream schema: score must be > 0' },
    { id: 'x', reason: 'does not match the stream schema: id must be integer' },
  ]);
}, 60_000);
