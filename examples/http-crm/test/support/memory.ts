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
  /** What readers of the destination see. */
  rows: Map<string, RecordData>;
  /**
   * The generation an `overwrite` sync is building: it replaces `rows` when a sync
   * completes, survives an interrupted one (the next sync resumes it) and is started afresh
   * by a sync that does not resume. Undefined when no refresh is under way.
   */
  staged?: Map<string, RecordData>;
  /** Records received per sync, in order (replays included). */
  received: RecordData[][];
}

/**
 * One stream's destination: `append_dedup` commits into `rows`; `overwrite` keeps to the
 * `DestinationStream` contract of a full refresh, publishing only a completed generation.
 */
export function memoryDestination(table: MemoryTable): Destination {
  return defineDestination({
    name: 'memory',
    delivery: 'upsert',
    spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append_dedup', 'overwrite'] },
    async check() {},
    async open(_ctx, _config, streams) {
      const overwrite = streams.some((s) => s.destinationSyncMode === 'overwrite');
      if (overwrite && (table.staged === undefined || !streams.every((s) => s.resuming))) table.staged = new Map();
      const received: RecordData[] = [];
      table.received.push(received);
      let pending: RecordData[] = [];
      return {
        async write(batch) {
          pending.push(...batch.records);
          received.push(...batch.records);
        },
        async commit() {
          const target = overwrite ? table.staged! : table.rows;
          for (const row of pending) target.set(String(row.id), row);
          pending = [];
        },
        async close({ completed }) {
          if (!overwrite || !completed) return;
          table.rows = table.staged!;
          delete table.staged;
        },
      };
    },
  });
}

export interface SyncHarness {
  table: MemoryTable;
  store: ReturnType<typeof memoryStateStore>;
  events: SyncEvent[];
  /** An incremental sync (`append_dedup`), or a full refresh (`overwrite`) with `syncMode`. */
  sync(options?: { signal?: AbortSignal; syncMode?: 'incremental' | 'full_refresh' }): Promise<SyncResult>;
}

/** Syncs of contacts from a simulator into memory, through the real runtime. */
export async function syncHarness(simulator: CrmSimulator, extra: Record<string, unknown> = {}): Promise<SyncHarness> {
  const table: MemoryTable = { rows: new Map(), received: [] };
  const store = memoryStateStore();
  const events: SyncEvent[] = [];
  const catalogs = { incremental: await contactsCatalog('incremental'), full_refresh: await contactsCatalog('full_refresh') };
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
        catalog: catalogs[options.syncMode ?? 'incremental'],
        stateStore: store,
        onEvent: (event) => events.push(event),
        ...(options.signal ? { signal: options.signal } : {}),
      }),
  };
}
