/**
 * A record nested deeper than JSON.stringify recurses (~4,000 levels; JSON.parse reads any
 * depth, so a source can deliver one): the runtime's batch sizing and this destination
 * serialized it with JSON.stringify, and the sync failed on it at every run.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { checkpoint, createFileStateStore, defineSource, record, runSync, type ConfiguredAirbyteCatalog, type SourceMessage } from '@tributary/core';
import { localFilesDestination } from '../src/index.js';

const DEPTH = 6_000;
const deepText = `${'{"a":'.repeat(DEPTH)}"leaf"${'}'.repeat(DEPTH)}`;

const jsonSchema = { type: 'object', properties: { id: { type: 'integer' }, body: { type: 'object' } }, required: ['id'] };
const stream = { name: 'docs', json_schema: jsonSchema, supported_sync_modes: ['incremental' as const], source_defined_primary_key: [['id']], default_cursor_field: ['id'] };
const deepSource = defineSource({
  name: 'deep',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [stream] };
  },
  async *read(): AsyncGenerator<SourceMessage> {
    // The first record of a stream is the one the runtime samples for batch sizes.
    yield record('docs', { id: 1, body: JSON.parse(deepText) as unknown });
    yield record('docs', { id: 2, body: { a: 'shallow' } });
    // Refused (no id): its quarantine line holds the deep body.
    yield record('docs', { body: JSON.parse(deepText) as unknown });
    yield checkpoint('docs', { offset: 3 });
  },
});
const catalog: ConfiguredAirbyteCatalog = { streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }] };

let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tributary-local-deep-'));
});
afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

it('a record nested deeper than JSON.stringify can go is synced and stored whole, and quarantined whole when refused', async () => {
  const store = createFileStateStore(join(workDir, 'state'));
  const result = await runSync({ connection: 'deep', source: deepSource, sourceConfig: {}, destination: localFilesDestination, destinationConfig: { directory: join(workDir, 'out') }, catalog, stateStore: store });
  await store.close();
  expect(result.error?.userMessage ?? '').toBe('');
  expect(result.outcome).toBe('completed');
  const lines = (await readFile(join(workDir, 'out', 'docs.jsonl'), 'utf8')).split('\n').filter(Boolean);
  expect(lines).toEqual([`{"id":1,"body":${deepText}}`, '{"id":2,"body":{"a":"shallow"}}']);
  const quarantined = (await readFile(join(workDir, 'out', '_quarantine', 'docs.jsonl'), 'utf8')).split('\n').filter(Boolean);
  expect(quarantined).toHaveLength(1);
  expect(quarantined[0]).toContain(`"record":{"body":${deepText}}`);
});
