/**
 * A checkpoint's state is a JSON object (the Airbyte `stream_state` / `shared_state` is an
 * object, and the state stores refuse anything else on load). A source that yields another
 * value (`null`, an array, a string — easy from JavaScript) must fail the sync at that
 * checkpoint, with the last good state kept. Before, the runtime saved it: the sync
 * "completed", and every later sync of the connection failed to load its state.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStateStore, defineDestination, defineSource, runSync, type SourceMessage, type StateStore } from '@tributary/core';

let dir: string;
let store: StateStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-blob-'));
  store = createFileStateStore(dir);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const destination = defineDestination({
  name: 'sink',
  delivery: 'upsert',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
  async check() {},
  async open() {
    return { async write() {}, async commit() {}, async close() {} };
  },
});

/** Yields a good checkpoint, then `bad` as the next one (as JavaScript lets a source do). */
function sourceYielding(bad: (messages: { good: SourceMessage }) => SourceMessage) {
  return defineSource({
    name: 'js',
    spec: { connectionSpecification: { type: 'object', properties: {} } },
    async check() {},
    async discover() {
      return { streams: [{ name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }] };
    },
    async *read(): AsyncGenerator<SourceMessage> {
      const good: SourceMessage = { kind: 'checkpoint', stream: 'items', state: { page: 1 } };
      yield { kind: 'record', stream: 'items', data: { id: 1 } };
      yield good;
      yield { kind: 'record', stream: 'items', data: { id: 2 } };
      yield bad({ good });
    },
  });
}

const cases: Array<[string, () => SourceMessage]> = [
  ['a null stream state', () => ({ kind: 'checkpoint', stream: 'items', state: null as unknown as Record<string, unknown> })],
  ['an array stream state', () => ({ kind: 'checkpoint', stream: 'items', state: [2] as unknown as Record<string, unknown> })],
  ['a string shared state', () => ({ kind: 'global-checkpoint', shared: 'lsn/2' as unknown as Record<string, unknown>, streams: [{ stream: 'items', state: { page: 2 } }] })],
];

describe('a checkpoint whose state is not a JSON object', () => {
  it.each(cases)('%s fails the sync and keeps the last good state loadable', async (_what, bad) => {
    const run = (source: ReturnType<typeof sourceYielding>) =>
      runSync({
        connection: 'c',
        source,
        sourceConfig: {},
        destination,
        destinationConfig: {},
        catalog: { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] },
        stateStore: store,
        batching: { commitIntervalMs: 0 },
      });
    const result = await run(sourceYielding(bad));
    expect(result.outcome).toBe('failed');
    expect(result.error?.kind).toBe('fatal');
    expect(result.error?.userMessage).toContain('JSON object');
    // The connection still syncs: its state is the last good one.
    expect(await store.load('c')).toEqual({ streams: { items: { page: 1 } } });
  });
});
