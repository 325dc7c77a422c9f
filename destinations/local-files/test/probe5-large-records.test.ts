/**
 * Large records whose lines fit in a string one by one but not together. The runtime sizes
 * a batch from one sampled record in 256, so two 270-million-character documents after a
 * small record came in one batch; the destination joined the batch's lines into one string
 * and failed with "a record's JSON text is longer than the longest string Node.js can hold"
 * (neither was), the same on every replay. Now a batch's lines are written out before they
 * outgrow a string, and the batch is still stored whole or not at all.
 */
import { constants } from 'node:buffer';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { checkpoint, createFileStateStore, defineSource, record, runSync, type ConfiguredAirbyteCatalog, type SourceMessage, type StateStore } from '@tributary/core';
import { localFilesDestination } from '../src/index.js';

// Two of them are longer together than a string can be (536,870,888 characters on Node 20).
const TEXT_LENGTH = Math.ceil(constants.MAX_STRING_LENGTH / 2) + 1_000;
const schema = { type: 'object', properties: { id: { type: 'integer' }, text: { type: 'string' } } };
const docsStream = { name: 'docs', json_schema: schema, supported_sync_modes: ['incremental' as const], source_defined_primary_key: [['id']] };

const docsSource = defineSource({
  name: 'docs',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [docsStream] };
  },
  async *read(): AsyncGenerator<SourceMessage> {
    const text = 'x'.repeat(TEXT_LENGTH);
    yield record('docs', { id: 1 });
    yield record('docs', { id: 2, text });
    yield record('docs', { id: 3, text });
    yield checkpoint('docs', { done: true });
  },
});
const catalog: ConfiguredAirbyteCatalog = {
  streams: [{ stream: docsStream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', cursor_field: ['id'], primary_key: [['id']] }],
};

let dir = '';
let store: StateStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe5-large-'));
  store = createFileStateStore(join(dir, 'state'));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Each line's id and length, read line by line (the file is longer than a string can be). */
async function storedLines(): Promise<Array<{ id: number; length: number }>> {
  const lines = createInterface({ input: createReadStream(join(dir, 'out', 'docs.jsonl'), 'utf8'), crlfDelay: Infinity });
  const found: Array<{ id: number; length: number }> = [];
  lines.on('line', (line) => found.push({ id: (JSON.parse(line) as { id: number }).id, length: line.length }));
  await once(lines, 'close');
  return found;
}

it('a batch of records longer together than a string can be is stored whole', async () => {
  const first = await runSync({ connection: 'docs', source: docsSource, sourceConfig: {}, destination: localFilesDestination, destinationConfig: { directory: join(dir, 'out') }, catalog, stateStore: store });
  // Before: failed, "a record's JSON text is longer than the longest string Node.js can hold".
  expect(first.outcome, first.error?.userMessage).toBe('completed');
  const lineLength = JSON.stringify({ id: 2, text: '' }).length + TEXT_LENGTH;
  expect(await storedLines()).toEqual([
    { id: 1, length: JSON.stringify({ id: 1 }).length },
    { id: 2, length: lineLength },
    { id: 3, length: lineLength },
  ]);
}, 180_000);

it('a batch written out in pieces that the file system takes only in part is cut back out whole', () => {
  // 80 MiB: the first piece (about 60 MiB) fits, the rest does not.
  const runner = join(dirname(fileURLToPath(import.meta.url)), 'support', 'probe5-large-batch-writer.ts');
  const out = join(dir, 'out');
  const child = spawnSync('bash', ['-c', `ulimit -f ${80 * 1024}; exec "$0" "$@"`, process.execPath, '--conditions=tributary-source', '--import', 'tsx', runner, out], { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  const steps = Object.fromEntries(child.stdout.split('\n').filter(Boolean).map((line) => Object.values(JSON.parse(line) as { step: string; outcome: string })));
  expect(steps.first).toBe('ok');
  expect(steps.second).not.toBe('ok');
  expect(steps.close).toBe('ok');
  // Compared by ids: a diff of the text would print megabytes.
  return readFile(join(out, 'docs.jsonl'), 'utf8').then((text) => expect(text.split('\n').map((line) => line && (JSON.parse(line) as { id: number }).id)).toEqual([1, 2, '']));
}, 120_000);
