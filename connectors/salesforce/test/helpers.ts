/**
 * Test helpers: configs for a simulator, an in-memory keyed destination (the peer under test
 * is Salesforce, served by the simulator; the destination only records what arrived), an
 * in-memory state store, and a direct read that applies checkpoints as the runtime does.
 */
import {
  configureCatalog,
  createConnectorContext,
  defineDestination,
  expandRecordPages,
  parseConfig,
  runSync,
  runWriter,
  type ConfiguredAirbyteCatalog,
  type RecordData,
  type StateStore,
  type SyncResult,
  type SyncState,
} from '@tributary/core';
import { afterEach, expect } from 'vitest';
import { salesforceSource, salesforceWriter, startSalesforceSimulator, type SalesforceSimulator, type SalesforceSimulatorOptions } from '../src/index.js';

export function credentials(sim: SalesforceSimulator): Record<string, unknown> {
  return { login_url: sim.url, client_id: sim.clientId, client_secret: sim.clientSecret, refresh_token: sim.refreshToken };
}

export function passwordCredentials(sim: SalesforceSimulator): Record<string, unknown> {
  return { login_url: sim.url, client_id: sim.clientId, client_secret: sim.clientSecret, username: sim.username, password: sim.password };
}

/** Every record a destination received, and the rows it holds per key (last write wins). */
export interface MemoryTarget {
  received: Map<string, RecordData[]>;
  rows: Map<string, Map<string, RecordData>>;
}

export function memoryTarget(): MemoryTarget {
  return { received: new Map(), rows: new Map() };
}

/** An upsert destination keeping rows by Id in memory; `commit` is trivially durable for one process. */
export function memoryDestination(target: MemoryTarget) {
  return defineDestination({
    name: 'memory',
    spec: { connectionSpecification: { type: 'object', properties: {} } as const, supportedDestinationSyncModes: ['append', 'append_dedup', 'overwrite'] },
    delivery: 'upsert',
    async check() {},
    async open() {
      return {
        async write(batch) {
          const received = target.received.get(batch.stream) ?? [];
          const rows = target.rows.get(batch.stream) ?? new Map<string, RecordData>();
          for (const record of batch.records) {
            received.push(record);
            rows.set(String(record.Id), record);
          }
          target.received.set(batch.stream, received);
          target.rows.set(batch.stream, rows);
        },
        async commit() {},
        async close() {},
      };
    },
  });
}

export function memoryStateStore(): StateStore & { state: SyncState | undefined } {
  const store = {
    location: 'memory:',
    state: undefined as SyncState | undefined,
    async load() {
      return store.state === undefined ? undefined : (JSON.parse(JSON.stringify(store.state)) as SyncState);
    },
    async save(_connection: string, state: SyncState) {
      store.state = JSON.parse(JSON.stringify(state)) as SyncState;
    },
    async reset() {
      store.state = undefined;
    },
    async list() {
      return store.state ? ['test'] : [];
    },
    async close() {},
  };
  return store;
}

export async function catalogOf(config: Record<string, unknown>, streams: string[], syncMode: 'incremental' | 'full_refresh' = 'incremental'): Promise<ConfiguredAirbyteCatalog> {
  const parsed = parseConfig(salesforceSource.spec.connectionSpecification, config);
  const discovered = await salesforceSource.discover(createConnectorContext({}), parsed);
  return configureCatalog(
    discovered,
    streams.map((name) => ({ name, sync_mode: syncMode })),
    ['append_dedup'],
  );
}

/** One sync through the runtime into `target`, state kept in `store`. */
export async function sync(
  config: Record<string, unknown>,
  catalog: ConfiguredAirbyteCatalog,
  target: MemoryTarget,
  store: StateStore,
): Promise<SyncResult> {
  return runSync({
    connection: 'test',
    source: salesforceSource,
    sourceConfig: config,
    destination: memoryDestination(target),
    destinationConfig: {},
    catalog,
    stateStore: store,
    batching: { maxRecords: 50, commitIntervalMs: 0 },
  });
}

/** Reads directly (no runtime): every record in order, and every checkpoint's state. */
export async function readAll(config: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog, state: SyncState = { streams: {} }, warnings: string[] = []) {
  const parsed = parseConfig(salesforceSource.spec.connectionSpecification, config);
  const logger = { debug() {}, info() {}, error() {}, warn: (message: string) => void warnings.push(message) };
  const ctx = createConnectorContext({ logger, rateLimit: salesforceSource.rateLimit ?? {}, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 } });
  const records: RecordData[] = [];
  const checkpoints: Array<{ after: number; state: SyncState }> = [];
  const current: SyncState = JSON.parse(JSON.stringify(state)) as SyncState;
  for await (const message of expandRecordPages(salesforceSource.read(ctx, parsed, catalog, state))) {
    if (message.kind === 'record') records.push(message.data);
    if (message.kind === 'checkpoint') {
      current.streams[message.stream] = message.state;
      checkpoints.push({ after: records.length, state: JSON.parse(JSON.stringify(current)) as SyncState });
    }
  }
  return { records, checkpoints, state: current };
}

/**
 * `org(options)` starts a simulator for the test that calls it; every one is closed after
 * that test (call `useOrgs` at the top level of a test file).
 */
export function useOrgs(): (options?: SalesforceSimulatorOptions) => Promise<SalesforceSimulator> {
  const running: SalesforceSimulator[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.close()));
  });
  return async (options = {}) => {
    const sim = await startSalesforceSimulator(options);
    running.push(sim);
    return sim;
  };
}

/** The state as if its syncs had run `hours` ago: every stream's deletions are read from then. */
export function agedDeletionWindow(state: SyncState, hours: number): void {
  for (const stream of Object.values(state.streams)) (stream as Record<string, unknown>).deleted_through = new Date(Date.now() - hours * 3_600_000).toISOString();
}

/** A writer run upserting Account rows of `sim` by `idProperty` (default External_Id__c), as `runWriter` does it. */
export function upsertAccounts(sim: SalesforceSimulator, records: Array<Record<string, unknown>>, options: { idProperty?: string; dryRun?: boolean } = {}) {
  return runWriter({
    writer: salesforceWriter,
    config: parseConfig(salesforceWriter.spec.connectionSpecification, credentials(sim)),
    object: 'Account',
    mode: 'upsert',
    idProperty: options.idProperty ?? 'External_Id__c',
    records,
    ...(options.dryRun ? { dryRun: true } : {}),
  });
}

type UpsertSummary = Awaited<ReturnType<typeof upsertAccounts>>;

/** Per input record, in the order of the results: [key, status or failure reason]. */
export const outcomes = (summary: UpsertSummary): Array<[string, string]> => (summary.results ?? []).map((r) => [r.key, r.reason ?? r.status]);

/**
 * `records` upserted into Account twice: as a dry run, which must leave the org's accounts as
 * they were (checked here), then for real. Returns both summaries, for a test to check that
 * the dry run reports what the real run does.
 */
export async function dryRunThenReal(sim: SalesforceSimulator, records: Array<Record<string, unknown>>, options: { idProperty?: string } = {}): Promise<{ dry: UpsertSummary; real: UpsertSummary }> {
  const before = JSON.stringify(sim.records('Account'));
  const dry = await upsertAccounts(sim, records, { ...options, dryRun: true });
  expect(JSON.stringify(sim.records('Account'))).toBe(before);
  const real = await upsertAccounts(sim, records, options);
  return { dry, real };
}
