/**
 * Fixtures of runtime tests: a file state store in a fresh directory per test, a destination
 * that accepts and discards what it is given, a source of one `items` stream, and a dry-run
 * sync of records into a writer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import {
  createFileStateStore,
  defineDestination,
  defineSource,
  dryRunStateStore,
  runSync,
  writerDestination,
  type AirbyteStream,
  type BatchingOptions,
  type RecordData,
  type SourceMessage,
  type StateStore,
  type SyncResult,
  type WriteAuditEntry,
} from '@tributary/core';

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

/**
 * A dry-run sync of `records` (one `items` stream, then a checkpoint) into `writer` through
 * `writerDestination` (upsert of `object` by `idProperty`), `recordsPerBatch` per batch so
 * that a row's later records also arrive in later `write`s. Returns the sync's outcome and
 * its audit entries.
 */
export async function dryRunSyncOf(options: {
  writer: Parameters<typeof writerDestination>[0];
  writerConfig?: Record<string, unknown>;
  object: string;
  idProperty: string;
  records: readonly RecordData[];
  store: StateStore;
  recordsPerBatch: number;
}): Promise<{ outcome: SyncResult['outcome']; audit: WriteAuditEntry[] }> {
  const audit: WriteAuditEntry[] = [];
  const source = itemsSource(options.object, async function* (): AsyncGenerator<SourceMessage> {
    for (const data of options.records) yield { kind: 'record', stream: 'items', data };
    yield { kind: 'checkpoint', stream: 'items', state: { done: true } };
  });
  const result = await runSync({
    connection: 'dry',
    source,
    sourceConfig: {},
    destination: writerDestination(options.writer, { object: options.object, mode: 'upsert', idProperty: options.idProperty, dryRun: true, audit: (e) => audit.push(e) }),
    destinationConfig: options.writerConfig ?? {},
    catalog: { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] },
    stateStore: dryRunStateStore(options.store),
    batching: { maxRecords: options.recordsPerBatch },
  });
  return { outcome: result.outcome, audit };
}
