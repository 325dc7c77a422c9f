import {
  configureCatalog,
  createConnectorContext,
  defineDestination,
  expandRecordPages,
  parseConfig,
  runSync,
  type ConfiguredAirbyteCatalog,
  type Destination,
  type FlatSourceMessage,
  type RecordData,
  type StateStore,
  type SyncEvent,
  type SyncResult,
  type SyncState,
} from '@tributary/core';
import { httpCrmSource } from '../../src/source.js';
import type { CrmSimulator } from '../../src/simulator.js';

/** A raw source config for a simulator (validated by the runtime like a user's). */
export function configFor(simulator: CrmSimulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { base_url: simulator.url, api_token: simulator.token, ...extra };
}

export async function contactsCatalog(syncMode: 'incremental' | 'full_refresh' = 'incremental'): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await httpCrmSource.discover(createConnectorContext(), { base_url: 'http://unused.invalid', api_token: 'unused', page_size: 100 });
  return configureCatalog(discovered, [{ name: 'contacts', sync_mode: syncMode }], ['append_dedup', 'overwrite']);
}

/** Reads as the conformance suite does, with the source's own rate limit and retry policy. */
export async function readMessages(raw: Record<string, unknown>, state: SyncState = { streams: {} }, signal?: AbortSignal): Promise<FlatSourceMessage[]> {
  const config = parseConfig(httpCrmSource.spec.connectionSpecification, raw);
  const ctx = createConnectorContext({
    ...(httpCrmSource.rateLimit ? { rateLimit: httpCrmSource.rateLimit } : {}),
    ...(httpCrmSource.retry ? { retry: httpCrmSource.retry } : {}),
    ...(signal ? { signal } : {}),
  });
  const out: FlatSourceMessage[] = [];
  for await (const message of expandRecordPages(httpCrmSource.read(ctx, config, await contactsCatalog(), state))) out.push(message);
  return out;
}

export function recordsOf(messages: readonly FlatSourceMessage[]): RecordData[] {
  return messages.flatMap((m) => (m.kind === 'record' ? [m.data] : []));
}

export function memoryStateStore(): StateStore & { saved: SyncState[] } {
  const states = new Map<string, SyncState>();
  const saved: SyncState[] = [];
  return {
    location: 'memory:',
    saved,
    async load(connection) {
      const state = states.get(connection);
      return state === undefined ? undefined : structuredClone(state);
    },
    async save(connection, state) {
      states.set(connection, structuredClone(state));
      saved.push(structuredClone(state));
    },
    async reset(connection) {
      states.delete(connection);
    },
    async list() {
      return [...states.keys()];
    },
    async close() {},
  };
}

/** Rows keyed by `id`: a replayed record overwrites its earlier copy (delivery `upsert`). */
export interface MemoryTable {
  rows: Map<string, RecordData>;
  /** Records received per sync, in order (replays included). */
  received: RecordData[][];
}

export function memoryDestination(table: MemoryTable): Destination {
  return defineDestination({
    name: 'memory',
    delivery: 'upsert',
    spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append_dedup', 'overwrite'] },
    async check() {},
    async open() {
      const received: RecordData[] = [];
      table.received.push(received);
      let staged: RecordData[] = [];
      return {
        async write(batch) {
          staged.push(...batch.records);
          received.push(...batch.records);
        },
        async commit() {
          for (const row of staged) table.rows.set(String(row.id), row);
          staged = [];
        },
        async close() {},
      };
    },
  });
}

export interface SyncHarness {
  table: MemoryTable;
  store: ReturnType<typeof memoryStateStore>;
  events: SyncEvent[];
  sync(options?: { signal?: AbortSignal }): Promise<SyncResult>;
}

/** Incremental syncs of contacts from a simulator into memory, through the real runtime. */
export async function syncHarness(simulator: CrmSimulator, extra: Record<string, unknown> = {}): Promise<SyncHarness> {
  const table: MemoryTable = { rows: new Map(), received: [] };
  const store = memoryStateStore();
  const events: SyncEvent[] = [];
  const catalog = await contactsCatalog();
  return {
    table,
    store,
    events,
    sync: (options = {}) =>
      runSync({
        connection: 'crm-contacts',
        source: httpCrmSource,
        sourceConfig: configFor(simulator, extra),
        destination: memoryDestination(table),
        destinationConfig: {},
        catalog,
        stateStore: store,
        onEvent: (event) => events.push(event),
        ...(options.signal ? { signal: options.signal } : {}),
      }),
  };
}
