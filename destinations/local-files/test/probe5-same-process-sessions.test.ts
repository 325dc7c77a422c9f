/**
 * Two sessions on one directory in one process (two syncs started in one Node process with
 * the same target, or a library user opening it twice). The directory lock only kept other
 * processes out: a second `open` here took the lock over and both sessions wrote on. The
 * second one's open cut the first one's unacknowledged lines back while the first still
 * counted them, so a commit of the first that returned named bytes that were gone: its
 * committed records were lost on the next open, which cut the file at the wrong length; two
 * sessions opened at once each stored every record (keyed rows twice). Now a session opened
 * while the holder has a call running is refused, and one opened while the holder is idle
 * (what a session dropped without close looks like) takes over: the holder's later calls
 * fail with a `config` error before they touch a file.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import {
  checkpoint,
  createConnectorContext,
  createFileStateStore,
  defineSource,
  parseConfig,
  record,
  runSync,
  TributaryError,
  type ConfiguredAirbyteCatalog,
  type DestinationStream,
  type SourceMessage,
  type StateStore,
} from '@tributary/core';
import { localFilesDestination } from '../src/index.js';

const people: DestinationStream = {
  key: 'people',
  name: 'people',
  syncMode: 'incremental',
  destinationSyncMode: 'append_dedup',
  primaryKey: [['id']],
  cursorField: ['id'],
  jsonSchema: { type: 'object', properties: { id: { type: 'integer' } } },
  resuming: false,
};

let directory = '';
let store: StateStore | undefined;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'tributary-probe5-sessions-'));
});
afterEach(async () => {
  await store?.close();
  store = undefined;
  await rm(directory, { recursive: true, force: true });
});

const ctx = createConnectorContext({});
const open = (resuming = false) =>
  localFilesDestination.open(ctx, parseConfig(localFilesDestination.spec.connectionSpecification, { directory: join(directory, 'out') }), [{ ...people, resuming }]);
const batch = (from: number, to: number) => ({
  stream: 'people',
  records: Array.from({ length: to - from }, (_, i) => ({ id: from + i, name: `Person ${from + i}` })),
  emittedAt: 0,
});

async function storedIds(): Promise<number[]> {
  const text = await readFile(join(directory, 'out', 'people.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { id: number }).id);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

it('a session opened while the holder is idle takes the directory over: the holder fails with a config error instead of losing its commit', async () => {
  const first = await open();
  await first.write(batch(1, 4));
  await first.commit();
  await first.write(batch(4, 7)); // not committed: the next session cuts it and it is replayed

  const second = await open(true);
  await second.write(batch(4, 7));
  // Before: accepted, committed (commit returned), and then lost.
  await expect(first.write(batch(7, 10))).rejects.toMatchObject({ kind: 'config', message: expect.stringContaining('opened by another session of this process') });
  await expect(first.commit()).rejects.toMatchObject({ kind: 'config' });
  await expect(first.close({ completed: true })).rejects.toMatchObject({ kind: 'config' });
  await second.commit();
  await second.close({ completed: true });

  expect(await storedIds()).toEqual(range(1, 7));
  // The manifest matches the file: the next session opens it and cuts nothing.
  const third = await open(true);
  await third.close({ completed: true });
  expect(await storedIds()).toEqual(range(1, 7));
});

it('a session opened while another one is in the middle of a write is refused with a config error, and that write goes on undisturbed', async () => {
  // The data file is a FIFO: the write blocks once the pipe is full, until the test drains it.
  await mkdir(join(directory, 'out'));
  execFileSync('mkfifo', [join(directory, 'out', 'people.jsonl')]);
  // Unkeyed: a keyed stream's open reads its file to the end, which a FIFO never reaches.
  const unkeyed = [{ ...people, destinationSyncMode: 'append' as const, primaryKey: [] }];
  const config = parseConfig(localFilesDestination.spec.connectionSpecification, { directory: join(directory, 'out') });
  const first = await localFilesDestination.open(ctx, config, unkeyed);
  const records = batch(1, 10_001); // more than a pipe holds (64 KiB)
  const text = records.records.map((r) => JSON.stringify(r) + '\n').join('');
  const writing = first.write(records);

  const refused = await localFilesDestination.open(ctx, config, unkeyed).then(
    () => undefined,
    (error: unknown) => error as TributaryError,
  );
  // Before: opened (it took the lock over), while the first session's write was running.
  expect(refused?.kind).toBe('config');
  expect(refused?.userMessage).toContain('is being written by another session of this process');

  const reader = createReadStream(join(directory, 'out', 'people.jsonl'), { encoding: 'utf8' });
  let drained = '';
  for await (const chunk of reader) {
    drained += chunk as string;
    if (drained.length >= text.length) break;
  }
  await writing;
  expect(drained).toBe(text);
  // A pipe cannot be fsynced: the session ends as a failed one would, and lets the lock go.
  await first.close({ completed: false }).catch(() => undefined);
  await rm(join(directory, 'out', 'people.jsonl'));
  const next = await localFilesDestination.open(ctx, config, unkeyed);
  await next.close({ completed: false });
});

it('two sessions opened at once, each writing the same rows: one of them stops with a config error, and no row is stored twice', async () => {
  // Which one stops depends on how their opens interleave: the later one is refused while
  // the other is still opening, or takes over once it opened and is idle.
  const errors: TributaryError[] = [];
  const sessions = await Promise.allSettled([open(), open()]);
  const runs = sessions.map(async (opened) => {
    if (opened.status === 'rejected') throw opened.reason;
    const session = opened.value;
    try {
      await session.write(batch(1, 4));
      await session.commit();
    } catch (error) {
      await session.close({ completed: false }).catch(() => undefined); // lets its file handles go
      throw error;
    }
    await session.close({ completed: true });
  });
  for (const run of await Promise.allSettled(runs)) if (run.status === 'rejected') errors.push(run.reason as TributaryError);
  // Before: neither stopped, and ids 1‥3 were stored twice.
  expect(errors.map((e) => e.kind)).toEqual(['config']);
  expect(errors[0]!.userMessage).toMatch(/(is being written by|was opened by) another session of this process/);
  expect(await storedIds()).toEqual(range(1, 4));
});

const COUNT = 60;
/** Ids 1‥COUNT from the checkpointed offset on, a checkpoint every 10, yielding to the event loop between records. */
const numbersSource = defineSource({
  name: 'numbers',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [{ name: 'people', json_schema: people.jsonSchema, supported_sync_modes: ['incremental'], default_cursor_field: ['id'], source_defined_primary_key: [['id']] }] };
  },
  async *read(_ctx, _config, _catalog, state): AsyncGenerator<SourceMessage> {
    for (let id = Number(state.streams.people?.offset ?? 0) + 1; id <= COUNT; id++) {
      await new Promise((resolve) => setImmediate(resolve));
      yield record('people', { id, name: `Person ${id}` });
      if (id % 10 === 0) yield checkpoint('people', { offset: id });
    }
  },
});
const catalog: ConfiguredAirbyteCatalog = {
  streams: [
    {
      stream: { name: 'people', json_schema: people.jsonSchema, supported_sync_modes: ['incremental'], default_cursor_field: ['id'], source_defined_primary_key: [['id']] },
      sync_mode: 'incremental',
      destination_sync_mode: 'append_dedup',
      cursor_field: ['id'],
      primary_key: [['id']],
    },
  ],
};

it('two syncs started at once in one process into one directory: one stops with a config error, the other completes, and its rerun stores each row once', async () => {
  store = createFileStateStore(join(directory, 'state'));
  const sync = (connection: string) =>
    runSync({
      connection,
      source: numbersSource,
      sourceConfig: {},
      destination: localFilesDestination,
      destinationConfig: { directory: join(directory, 'out') },
      catalog,
      stateStore: store!,
      batching: { maxRecords: 5 },
    });
  const outcomes = await Promise.allSettled([sync('one'), sync('two')]);
  const failures = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as TributaryError) : o.value.error));
  // Before: both completed, and the file held rows twice (or lost committed ones).
  expect(failures.filter((e) => e !== undefined).map((e) => e!.kind)).toEqual(['config']);

  const failed = failures[0] ? 'one' : 'two';
  const rerun = await sync(failed);
  expect(rerun.outcome, rerun.error?.userMessage).toBe('completed');
  expect(await storedIds()).toEqual(range(1, COUNT + 1));
});
