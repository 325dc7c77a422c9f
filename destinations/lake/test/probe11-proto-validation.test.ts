import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkpoint, createFileStateStore, defineSource, recordPage, runSync, type ConfiguredAirbyteCatalog, type RecordData, type SourceMessage } from '@tributary/core';
import { lakeDestination, queryLake } from '../src/index.js';

// Record validation of fields named as Object.prototype's members, through the runtime
// (`runSync`): the catalog's schema and the records are parsed from JSON, so a key
// `__proto__` is an own field of each (as a source's JSON.parse makes it). ajv (8.20) reads
// a field `f` as `data.f`: a required `__proto__` (or `toString`) was never missing, a
// declared `constructor` absent was validated as Object.prototype.constructor, and a
// declared `__proto__` was not checked at all (and refused as additional under
// `additionalProperties: false`).
let work: string;
beforeAll(async () => (work = await mkdtemp(join(tmpdir(), 'tributary-lake-probe11-proto-'))));
afterAll(() => rm(work, { recursive: true, force: true }));

/** A stream whose schema and records are JSON text, parsed as a source parses them. */
interface JsonStream {
  name: string;
  schema: string;
  records: string[];
}

const streams = new Map<string, JsonStream>();

function catalogOf(stream: JsonStream): ConfiguredAirbyteCatalog {
  const definition = { name: stream.name, json_schema: JSON.parse(stream.schema) as Record<string, unknown>, supported_sync_modes: ['incremental' as const], source_defined_primary_key: [['id']] };
  return { streams: [{ stream: definition, sync_mode: 'incremental', destination_sync_mode: 'append', primary_key: [['id']] }] };
}

/** Sends the stream's records, each parsed from its JSON text, in one page and a checkpoint. */
const jsonSource = defineSource({
  name: 'probe11-json',
  spec: { connectionSpecification: { type: 'object', properties: { stream: { type: 'string' } }, required: ['stream'] } },
  async check() {},
  async discover(_ctx, config) {
    return { streams: catalogOf(streams.get(config.stream)!).streams.map((s) => s.stream) };
  },
  async *read(_ctx, config): AsyncGenerator<SourceMessage> {
    const stream = streams.get(config.stream)!;
    yield recordPage(stream.name, stream.records.map((text) => JSON.parse(text) as RecordData));
    yield checkpoint(stream.name, { done: true });
  },
});

/** Syncs `stream` into a new lake; returns the lake's config. */
async function sync(stream: JsonStream): Promise<Record<string, unknown>> {
  streams.set(stream.name, stream);
  const config = { path: join(work, stream.name) };
  const result = await runSync({
    connection: `probe11-${stream.name}`,
    source: jsonSource,
    sourceConfig: { stream: stream.name },
    destination: lakeDestination,
    destinationConfig: config,
    catalog: catalogOf(stream),
    stateStore: createFileStateStore(join(work, `state-${stream.name}`)),
  });
  expect(result.error?.message).toBeUndefined();
  expect(result.outcome).toBe('completed');
  return config;
}

/** The quarantined records' ids and reasons, by id. */
async function quarantined(config: Record<string, unknown>): Promise<Array<[number, string]>> {
  const rows = await queryLake(config, "SELECT (record->>'id')::INT AS id, reason FROM quarantine ORDER BY id");
  return rows.map((r) => [r.id as number, r.reason as string]);
}

const ids = (rows: Record<string, unknown>[]): number[] => rows.map((r) => Number(r.id));

it('a declared, required field `__proto__` (also in nested objects) is checked: a wrong type or a missing one is quarantined with a reason naming it; a valid record is stored', async () => {
  const config = await sync({
    name: 'proto',
    schema: JSON.stringify({
      type: 'object',
      required: ['id', '__proto__'],
      properties: {
        id: { type: 'integer' },
        tenant_id: { type: 'string' },
        customer_id: { type: 'string' },
        // Computed keys: own fields, as JSON.parse makes them (a literal `__proto__:` sets the prototype).
        ['__proto__']: { type: 'string' },
        n: { type: 'object', additionalProperties: false, required: ['__proto__'], properties: { ['__proto__']: { type: 'integer' } } },
        list: { type: 'array', items: { type: 'object', required: ['__proto__'], properties: { ['__proto__']: { type: 'boolean' } } } },
      },
    }),
    records: [
      '{"id":1,"tenant_id":"t","customer_id":"c","__proto__":"ok","n":{"__proto__":1},"list":[{"__proto__":true}]}',
      '{"id":2,"tenant_id":"t","customer_id":"c","__proto__":5}',
      '{"id":3,"tenant_id":"t","customer_id":"c"}',
      '{"id":4,"tenant_id":"t","customer_id":"c","__proto__":"ok","n":{"__proto__":"x"}}',
      '{"id":5,"tenant_id":"t","customer_id":"c","__proto__":"ok","n":{}}',
      '{"id":6,"tenant_id":"t","customer_id":"c","__proto__":"ok","n":{"__proto__":1,"extra":1}}',
      '{"id":7,"tenant_id":"t","customer_id":"c","__proto__":"ok","list":[{"__proto__":"yes"}]}',
      '{"id":8,"tenant_id":"t","customer_id":"c","__proto__":"ok","list":[{}]}',
      '{"id":9,"tenant_id":"t","customer_id":"c","__proto__":"fine"}',
    ],
  });
  // Seen without the fix: records 3, 5, 7, 8 and 9 stored; 1, 4 and 6 quarantined as "n must NOT
  // have additional properties", 2 only by the staging ('field "__proto__": expected a string, got number 5').
  const stored = await queryLake(config, 'SELECT id, "__proto__" FROM proto ORDER BY id');
  expect(stored.map((row) => JSON.stringify(row))).toEqual(['{"id":1,"__proto__":"ok"}', '{"id":9,"__proto__":"fine"}']);
  const prefix = 'does not match the stream schema: ';
  expect(await quarantined(config)).toEqual([
    [2, `${prefix}__proto__ must be string`],
    [3, `${prefix}(record) must have required property '__proto__'`],
    [4, `${prefix}n.__proto__ must be integer`],
    [5, `${prefix}n must have required property '__proto__'`],
    [6, `${prefix}n must NOT have additional properties`],
    [7, `${prefix}list.0.__proto__ must be boolean`],
    [8, `${prefix}list.0 must have required property '__proto__'`],
  ]);
}, 60_000);

it('under `additionalProperties: false`, a declared field `__proto__` is no additional property: the record is stored; an undeclared one is still refused', async () => {
  const schema = (properties: Record<string, unknown>): string =>
    JSON.stringify({ type: 'object', additionalProperties: false, properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, ...properties } });
  const declared = await sync({ name: 'closed', schema: schema({ ['__proto__']: { type: 'integer' } }), records: ['{"id":1,"tenant_id":"t","customer_id":"c","__proto__":5}', '{"id":2,"tenant_id":"t","customer_id":"c"}'] });
  // Seen without the fix: record 1 quarantined, "(record) must NOT have additional properties".
  const stored = await queryLake(declared, 'SELECT id, "__proto__" FROM closed ORDER BY id');
  expect(stored.map((row) => JSON.stringify(row))).toEqual(['{"id":1,"__proto__":5}', '{"id":2,"__proto__":null}']);
  const undeclared = await sync({ name: 'closed2', schema: schema({}), records: ['{"id":1,"tenant_id":"t","customer_id":"c","__proto__":5}', '{"id":2,"tenant_id":"t","customer_id":"c"}'] });
  expect(ids(await queryLake(undeclared, 'SELECT id FROM closed2'))).toEqual([2]);
  expect(await quarantined(undeclared)).toEqual([[1, 'does not match the stream schema: (record) must NOT have additional properties']]);
}, 60_000);

it('a required field `toString` that a record lacks is quarantined as missing; a declared `constructor` of the wrong type is quarantined, of the right type stored', async () => {
  const config = await sync({
    name: 'members',
    schema: JSON.stringify({
      type: 'object',
      properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, constructor: { type: 'string' }, toString: { type: 'string' } },
      required: ['id', 'toString'],
    }),
    records: [
      '{"id":2,"tenant_id":"t","customer_id":"c","toString":"b","constructor":"x"}',
      '{"id":3,"tenant_id":"t","customer_id":"c","toString":"c","constructor":3}',
      '{"id":4,"tenant_id":"t","customer_id":"c","constructor":"y"}',
      // Without `constructor`: the staging read Object.prototype.constructor there before
      // ('field "constructor": expected a string, got function function Object() …').
      '{"id":5,"tenant_id":"t","customer_id":"c","toString":"e"}',
    ],
  });
  expect(await queryLake(config, 'SELECT id, "constructor" AS c, "toString" AS s FROM members ORDER BY id')).toEqual([
    { id: 2, c: 'x', s: 'b' },
    { id: 5, c: null, s: 'e' },
  ]);
  // Seen without the fix: record 4's reason was "toString must be string" (its `toString` read as Object.prototype.toString).
  expect(await quarantined(config)).toEqual([
    [3, 'does not match the stream schema: constructor must be string'],
    [4, "does not match the stream schema: (record) must have required property 'toString'"],
  ]);
}, 60_000);
