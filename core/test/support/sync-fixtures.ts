/**
 * Fixtures of runtime tests: a file state store in a fresh directory per test, a destination
 * that accepts and discards what it is given, and a source of one `items` stream.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { createFileStateStore, defineDestination, defineSource, type AirbyteStream, type BatchingOptions, type SourceMessage, type StateStore } from '@tributary/core';

/** Registers, for each test of the calling file, a temp directory (`dir`) holding a file state store (`store`), both gone after it. */
export function useTempStateStore(prefix: string): { readonly dir: string; readonly store: StateStore } {
  let dir = '';
  let store: StateStore | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    store = createFileStateStore(dir);
  });
  afterEach(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    get store() {
      return store!;
    },
  };
}

/** An upsert destination (append mode) that accepts every batch and keeps nothing; `onOpen` runs when a session opens. */
export function discardingDestination(options: { batching?: BatchingOptions; onOpen?: () => void } = {}) {
  return defineDestination({
    name: 'sink',
    delivery: 'upsert',
    ...(options.batching ? { batching: options.batching } : {}),
    spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
    async check() {},
    async open() {
      options.onOpen?.();
      return { async write() {}, async commit() {}, async close() {} };
    },
  });
}

/** A source named `name` of one incremental stream `items` (with `stream`'s extra fields) whose read is `read`. */
export function itemsSource(name: string, read: () => AsyncGenerator<SourceMessage>, stream: Partial<AirbyteStream> = {}) {
  return defineSource({
    name,
    spec: { connectionSpecification: { type: 'object', properties: {} } },
    async check() {},
    async discover() {
      return { streams: [{ name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], ...stream }] };
    },
    read,
  });
}
