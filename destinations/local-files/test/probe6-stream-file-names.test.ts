/**
 * Stream names that cannot each name a file of their own. A name with a NUL character or
 * one whose `<stream>.jsonl` is longer than 255 bytes failed with a plain Node error
 * (ERR_INVALID_ARG_VALUE, ENAMETOOLONG) only after the manifest recorded files for it; two
 * names differing only in unpaired surrogates ("a\ud800", "a\udfff") were both written to
 * `a\ufffd.jsonl`, appending into each other's lines. All are refused now with a `config`
 * error before anything is created or written; `.`, `..`, the empty name and names
 * differing only by case (on a case-sensitive file system, as here) get files of their own.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkpoint,
  createConnectorContext,
  createFileStateStore,
  defineSource,
  parseConfig,
  record,
  runSync,
  type ConfiguredAirbyteCatalog,
  type DestinationStream,
  type SourceMessage,
  type StateStore,
} from '@tributary/core';
import { localFilesDestination } from '../src/index.js';

/** One record `{id: 1}` and one checkpoint for each stream of the catalog. */
const oneRecordSource = defineSource({
  name: 'names',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [] };
  },
  async *read(_ctx, _config, catalog): AsyncGenerator<SourceMessage> {
    for (const { stream } of catalog.streams) {
      yield record(stream.name, { id: 1 });
      yield checkpoint(stream.name, { done: true });
    }
  },
});

const catalogOf = (names: string[]): ConfiguredAirbyteCatalog => ({
  streams: names.map((name) => ({
    stream: { name, json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], source_defined_primary_key: [['id']] },
    sync_mode: 'incremental',
    destination_sync_mode: 'append_dedup',
  })),
});

let dir = '';
let out = '';
let store: StateStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe6-names-'));
  out = join(dir, 'out');
  store = createFileStateStore(join(dir, 'state'));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const sync = (names: string[], directory = out) =>
  runSync({
    connection: 'names',
    source: oneRecordSource,
    sourceConfig: {},
    destination: localFilesDestination,
    destinationConfig: { directory },
    catalog: catalogOf(names),
    stateStore: store,
  });

/** Every file under `root` (relative path → content), directories as `<path>/`. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const entries = await readdir(root, { recursive: true });
  const files: Record<string, string> = {};
  for (const entry of entries.sort()) {
    const path = join(root, entry);
    files[(await stat(path)).isDirectory() ? `${entry}/` : entry] = (await stat(path)).isDirectory() ? '' : await readFile(path, 'utf8');
  }
  return files;
}

describe('stream names that cannot each name a file', () => {
  const refused: Array<[string, string[], RegExp]> = [
    ['a NUL character', ['bad\0name'], /Stream "bad\\u0000name" cannot be written to a file: its name holds a NUL character/],
    ['256 bytes of file name (250 ASCII + .jsonl)', ['x'.repeat(250)], /Stream "x{60}….250 characters.*" has too long a name for its file: .* takes 256 bytes in UTF-8, and a file name may take at most 255/],
    ['256 bytes of file name (125 × é + .jsonl)', ['é'.repeat(125)], /has too long a name for its file: .* takes 256 bytes in UTF-8/],
    ['unpaired surrogates written as one U+FFFD', ['a\ud800', 'a\udfff'], /Streams "a\\ud800" and "a\\udfff" would both be written to a\ufffd\.jsonl/],
  ];

  for (const [rule, names, message] of refused) {
    it(`refuses ${rule} with a config error before writing anything: directory and manifest stay as they were`, async () => {
      await sync(['people']);
      const before = await snapshot(out);
      expect(Object.keys(before)).toContain(join('_tributary', 'manifest.json'));
      const stateBefore = await store.load('people');

      await expect(sync(['people', ...names])).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(message) });

      expect(await snapshot(out)).toEqual(before);
      expect(await store.load('people')).toEqual(stateBefore);
    });
  }

  it('refuses them before creating the directory of a first sync', async () => {
    await expect(sync(['ok', 'bad\0name'])).rejects.toMatchObject({ kind: 'config' });
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('writes a stream whose file name takes exactly 255 bytes', async () => {
    const longest = 'y'.repeat(249);
    await sync([longest]);
    expect(await readFile(join(out, `${longest}.jsonl`), 'utf8')).toBe('{"id":1}\n');
  });
});

describe('odd stream names that do name files', () => {
  const ctx = createConnectorContext({});
  const stream = (key: string): DestinationStream => ({
    key,
    name: key,
    syncMode: 'incremental',
    destinationSyncMode: 'append_dedup',
    primaryKey: [['id']],
    cursorField: [],
    jsonSchema: { type: 'object' },
    resuming: false,
  });

  it('gives `.`, `..`, the empty name, `a/b` and names differing only by case a file each', async () => {
    const files: Record<string, string> = { '.': '..jsonl', '..': '...jsonl', '': '.jsonl', 'a/b': 'a_b.jsonl', Account: 'Account.jsonl', account: 'account.jsonl' };
    const keys = Object.keys(files);
    const session = await localFilesDestination.open(ctx, parseConfig(localFilesDestination.spec.connectionSpecification, { directory: out }), keys.map(stream));
    for (const [i, key] of keys.entries()) await session.write({ stream: key, records: [{ id: i }], emittedAt: 0 });
    await session.close({ completed: true });
    for (const [i, key] of keys.entries()) expect(await readFile(join(out, files[key]!), 'utf8')).toBe(`{"id":${i}}\n`);
    expect((await readdir(out)).sort()).toEqual([...Object.values(files), '_quarantine', '_tributary'].sort());
  });

  it('still refuses `a/b` together with `a_b` (one file for both)', async () => {
    const open = localFilesDestination.open(ctx, parseConfig(localFilesDestination.spec.connectionSpecification, { directory: out }), [stream('a/b'), stream('a_b')]);
    await expect(open).rejects.toMatchObject({ kind: 'config', userMessage: 'Streams "a/b" and "a_b" would both be written to a_b.jsonl; select only one of them' });
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
