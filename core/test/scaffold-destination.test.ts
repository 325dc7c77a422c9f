/**
 * The destination that `tributary new destination` generates, imported from a package
 * generated into a scratch directory of this repository (so that `@tributary/core` resolves
 * to this checkout), and run by the real runtime.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkpoint,
  createFileStateStore,
  defineSource,
  recordPage,
  runSync,
  type ConfiguredAirbyteCatalog,
  type Destination,
} from '../src/index.js';
import { createConnectorPackage } from '../src/scaffold/create-connector.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

const tenItems = defineSource({
  name: 'ten-items',
  spec: { connectionSpecification: { type: 'object' } },
  async check() {},
  async discover() {
    return { streams: [] };
  },
  async *read() {
    yield recordPage('items', Array.from({ length: 10 }, (_, i) => ({ id: i + 1, name: `item ${i + 1}` })));
    yield checkpoint('items', { after: 10 });
  },
});

const catalog: ConfiguredAirbyteCatalog = {
  streams: [
    {
      stream: {
        name: 'items',
        json_schema: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } } },
        supported_sync_modes: ['incremental'],
        source_defined_primary_key: [['id']],
      },
      sync_mode: 'incremental',
      destination_sync_mode: 'append_dedup',
      primary_key: [['id']],
    },
  ],
};

describe('scaffold: generated destination', () => {
  it('a write retried after a transient failure stores the batch (it is not dropped as a replay of itself)', async () => {
    const root = await mkdtemp(join(REPO, 'zz-scaffold-destination-'));
    scratch.push(root);
    const created = await createConnectorPackage({ kind: 'destination', name: 'acme', directory: join(root, 'acme') });
    const file = join(created.directory, 'src', 'index.ts');
    // The file target swapped for one whose first write times out (a database, an API), as
    // its author would after REPLACE: the runtime retries the same batch.
    const write = '        await append(target.data, lines);\n';
    const manifest = "const MANIFEST = join('_tributary', 'manifest.json');\n";
    const text = await readFile(file, 'utf8');
    expect(text).toContain(write);
    expect(text).toContain(manifest);
    await writeFile(
      file,
      text
        .replace(manifest, `${manifest}let timeouts = 1;\n`)
        .replace(write, `        if (timeouts-- > 0) throw new TributaryError('transient', { userMessage: 'write timed out' });\n${write}`),
    );
    const destination = ((await import(pathToFileURL(file).href)) as { default: Destination }).default;

    const directory = join(root, 'out');
    const store = createFileStateStore(join(root, 'state'));
    try {
      const result = await runSync({
        connection: 'items',
        source: tenItems,
        sourceConfig: {},
        destination,
        destinationConfig: { directory },
        catalog,
        stateStore: store,
      });
      expect(result.outcome, result.error?.userMessage).toBe('completed');
      expect(result.state.streams.items).toEqual({ after: 10 });
    } finally {
      await store.close();
    }
    const stored = (await readFile(join(directory, 'items.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { id: number }).id);
    expect(stored).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
