/**
 * An incremental read into an `overwrite` stream: each sync reads only what changed since
 * the last checkpoint, and publishing that generation replaces the stream's file with it.
 * `tributary sync` refuses the combination when it builds the catalog; `runSync` (and
 * `tributary write`) took it from a configured catalog as given, and the second sync left
 * only its own records in the file.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import {
  checkpoint,
  createFileStateStore,
  defineSource,
  record,
  runSync,
  type ConfiguredAirbyteCatalog,
  type SourceMessage,
  type StateStore,
} from '@tributary/core';
import { localFilesDestination } from '../src/index.js';

/** Records 0‥(available − 1) of `items`, from the checkpointed offset on, one checkpoint at the end. */
let available = 0;
const itemsSource = defineSource({
  name: 'items',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [{ name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental', 'full_refresh'], default_cursor_field: ['id'] }] };
  },
  async *read(_ctx, _config, _catalog, state): AsyncGenerator<SourceMessage> {
    const start = Number(state.streams.items?.offset ?? 0);
    for (let id = start; id < available; id++) yield record('items', { id });
    yield checkpoint('items', { offset: available });
  },
});

const catalog: ConfiguredAirbyteCatalog = {
  streams: [
    {
      stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental', 'full_refresh'], default_cursor_field: ['id'] },
      sync_mode: 'incremental',
      destination_sync_mode: 'overwrite',
      cursor_field: ['id'],
    },
  ],
};

let dir = '';
let store: StateStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe4-overwrite-'));
  store = createFileStateStore(join(dir, 'state'));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const sync = () =>
  runSync({
    connection: 'items',
    source: itemsSource,
    sourceConfig: {},
    destination: localFilesDestination,
    destinationConfig: { directory: join(dir, 'out') },
    catalog,
    stateStore: store,
  });

it('runSync refuses sync_mode incremental with destination_sync_mode overwrite before anything is written', async () => {
  available = 3;
  await expect(sync()).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringContaining('incremental with destination_sync_mode overwrite') });
  expect(await store.load('items')).toBeUndefined();
  // Without the refusal: the first sync published ids 0‥2, the second replaced them by id 3.
  available = 4;
  await sync().catch(() => undefined);
  const text = await readFile(join(dir, 'out', 'items.jsonl'), 'utf8').catch(() => '');
  expect(text).toBe('');
});
