import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { parseConfig, setOwnField, TributaryError } from '@tributary/core';
import { loadLakeState, type LakeFile, type LakeState } from './commit-log.js';
import { parseTimeMs } from './envelope.js';
import { lakeConfigSchema, type LakeConfig } from './config.js';
import { epochMsTimestampSql, ident, literal, openDuckDb, plainBigInt, plainRows } from './duck.js';
import { NEWEST_FIRST, withIngestSeq } from './row-order.js';
import { loadSchemaHistory, NON_FINITE_TEXTS, type StreamSchemaHistory } from './schema-registry.js';
import { openExistingLake, openStore } from './storage/open-store.js';
import type { LakeStore } from './storage/store.js';
import { createOwnedTempDir } from './temp-dir.js';

/** A lake row as the library returns it: the envelope, and the payload under its record field names. */
export interface LakeRow {
  event_id: string;
  entity_key: string;
  customer_id: string;
  tenant_id: string;
  /** ISO-8601, UTC: `toISOString`'s form, with the microseconds when the time has digits below the millisecond (`.000600Z`). */
  event_time: string;
  ingest_time: string;
  source_system: string;
  stream: string;
  op: 'snapshot' | 'insert' | 'update' | 'delete';
  schema_version: number;
  source_position: string | null;
  source_txid: string | null;
  before_image: unknown;
  /** Payload fields a CDC update did not send (TOASTed, unchanged); point-in-time reads fill them from earlier rows. */
  unchanged_fields: string[] | null;
  payload: Record<string, unknown>;
}

export interface LakeReader {
  readonly state: LakeState;
  /** Stream names with at least one visible file. */
  readonly streams: string[];
  /**
   * Runs SQL over the views: `events` (every stream), `quarantine`, and one per stream named
   * after it, unless that name is already taken (see VIEWS).
   */
  query(sql: string): Promise<Record<string, unknown>[]>;
  /** Like `query` but JSON columns stay JSON text. */
  queryRaw(sql: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export interface ReaderOptions {
  /** Only this tenant's partitions are opened: another tenant's rows cannot appear in any result (so there is no `quarantine` view, see `openLakeReader`). */
  tenant?: string;
  /** Only these streams get views. */
  streams?: readonly string[];
}

/**
 * The reader's own views. DuckDB matches view names regardless of letter case, and creating
 * a second view of one name fails the whole reader: so a stream named like one of these, or
 * differing only in case from a stream whose view came first, gets no view of its own; its
 * rows are `events WHERE stream = '<name>'`.
 */
const VIEWS = ['events', 'quarantine'];

/** A lake config from raw JSON (defaults applied, validated), or one already parsed. */
function lakeConfig(config: LakeConfig | Record<string, unknown>): LakeConfig {
  return parseConfig(lakeConfigSchema, config, 'lake config');
}

/**
 * Opens the lake for reading: the visible files are those of the commit log (never a
 * directory listing), so a reader sees whole commits only. On S3 the files are downloaded
 * to a temp directory first (removed by `close`).
 */
export function openLakeReader(rawConfig: LakeConfig | Record<string, unknown>, options: ReaderOptions = {}): Promise<LakeReader> {
  return openReader(rawConfig, options, new Set());
}

/**
 * `openLakeReader`, whose `events` view reads the payload columns `exact` (see
 * `widenedColumns`: BIGINT in some files, DOUBLE in others) as their exact text (see
 * `exactWidenedSource`) instead of unioned to DOUBLE. For the library's reads of one stream,
 * which rebuild each value (see `payloadBuilder`); SQL views keep the DOUBLE union.
 */
async function openReader(rawConfig: LakeConfig | Record<string, unknown>, options: ReaderOptions, exact: ReadonlySet<string>): Promise<LakeReader> {
  const config = lakeConfig(rawConfig);
  // A path that holds no lake is refused, not read as an empty lake (see assertLakeExists).
  const store = await openExistingLake(config);
  const cache = join(tmpdir(), `tributary-lake-read-${randomUUID()}`);
  const duck = await openDuckDb();
  try {
    // Owned (see temp-dir.ts): a session starting meanwhile must not take it for a crashed reader's.
    if (config.target === 's3') await createOwnedTempDir(cache);
    const { state, local } = await loadSnapshot(store, cache, options);
    const files = [...state.files.values()].filter((f) => opensFile(f, options));
    const byStream = new Map<string, LakeFile[]>();
    for (const f of files) byStream.set(f.stream, [...(byStream.get(f.stream) ?? []), f]);
    const list = (fs: readonly LakeFile[]): string => `[${fs.map((f) => literal(local.get(f.path)!)).join(', ')}]`;
    const tenantFilter = options.tenant !== undefined ? ` WHERE tenant_id = ${literal(options.tenant)}` : '';
    const views: string[] = [];
    const taken = new Set(VIEWS);
    for (const [stream, fs] of [...byStream].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (taken.has(stream.toLowerCase())) continue;
      taken.add(stream.toLowerCase());
      views.push(stream);
      await duck.connection.run(`CREATE VIEW ${ident(stream)} AS SELECT * FROM ${withIngestSeq(`read_parquet(${list(fs)}, union_by_name = true, hive_partitioning = false)`)}${tenantFilter}`);
    }
    if (files.length > 0) {
      const source = exact.size > 0 && byStream.size === 1 ? await exactWidenedSource(duck.connection, files, (f) => local.get(f.path)!, list, exact) : await eventsSource(duck.connection, [...byStream.values()], list);
      await duck.connection.run(`CREATE VIEW events AS SELECT * FROM ${withIngestSeq(source)}${tenantFilter}`);
    }
    // Quarantine files are per stream, not per tenant (a refused record may have no tenant at
    // all), so none can be opened for one tenant without showing another's records: reading
    // one tenant has no quarantine view.
    const quarantine = options.tenant !== undefined ? [] : state.quarantine.filter((q) => options.streams === undefined || options.streams.includes(q.stream));
    if (quarantine.length > 0) {
      const paths = quarantine.map((q) => local.get(q.path)!);
      await duck.connection.run(
        `CREATE VIEW quarantine AS SELECT * FROM read_json([${paths.map(literal).join(', ')}], format = 'newline_delimited', columns = {stream: 'VARCHAR', reason: 'VARCHAR', quarantined_at: 'TIMESTAMP', tenant_id: 'VARCHAR', record: 'JSON'})`,
      );
    }
    const run = async (sql: string, parseJson: boolean): Promise<Record<string, unknown>[]> => {
      try {
        return plainNested(plainRows(await duck.connection.runAndReadAll(sql), parseJson));
      } catch (error) {
        const known = [...views, ...(files.length > 0 ? ['events'] : []), ...(quarantine.length > 0 ? ['quarantine'] : [])];
        const noQuarantine = options.tenant !== undefined && state.quarantine.length > 0 ? ' (no quarantine view when reading one tenant, --tenant: quarantined records are not partitioned by tenant)' : '';
        throw new TributaryError('config', {
          userMessage: `Query failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}. Views: ${known.length > 0 ? known.join(', ') : '(none: the lake is empty)'}${noQuarantine}`,
          cause: error,
        });
      }
    };
    return {
      state,
      streams: [...byStream.keys()].sort(),
      query: (sql) => run(sql, true),
      queryRaw: (sql) => run(sql, false),
      async close() {
        duck.close();
        store.close();
        await rm(cache, { recursive: true, force: true });
      },
    };
  } catch (error) {
    duck.close();
    store.close();
    await rm(cache, { recursive: true, force: true });
    throw error;
  }
}

/** Whether a reader with `options` reads this data file (its tenant's, of its streams). */
function opensFile(file: LakeFile, options: ReaderOptions): boolean {
  return (options.tenant === undefined || file.tenant === options.tenant) && (options.streams === undefined || options.streams.includes(file.stream));
}

/** How often a reader loads the log again after files of the snapshot it was downloading were deleted. */
const SNAPSHOT_ATTEMPTS = 5;

/** Whether `error` says the object is not in the store (S3 NoSuchKey). */
function isMissingObject(error: unknown): boolean {
  return TributaryError.is(error) && error.cause instanceof Error && error.cause.name === 'NoSuchKey';
}

/**
 * Loads the log and makes a local copy of each file the reader opens: the data files of its
 * tenant and streams, and the quarantine files of its streams (none when reading one tenant,
 * see `openLakeReader`). Copies are made only on S3 (locally `localCopy` is the file itself).
 *
 * Files a compaction or retention removed from the log are deleted once their grace period
 * (default 10 min) ends, counted from their removal; downloading a large lake can take
 * longer. A file of the loaded snapshot that is gone meanwhile was therefore removed by a
 * later commit: the log is loaded again and the newer snapshot's files downloaded (copies
 * already made are kept), rather than the reader failing with the missing object. Gives up
 * (rethrows) after SNAPSHOT_ATTEMPTS snapshots.
 */
async function loadSnapshot(store: LakeStore, cache: string, options: ReaderOptions): Promise<{ state: LakeState; local: Map<string, string> }> {
  const local = new Map<string, string>();
  for (let attempt = 1; ; attempt++) {
    const state = await loadLakeState(store);
    const paths = [...state.files.values()]
      .filter((f) => opensFile(f, options))
      .map((f) => f.path);
    if (options.tenant === undefined) paths.push(...state.quarantine.filter((q) => options.streams === undefined || options.streams.includes(q.stream)).map((q) => q.path));
    try {
      for (const path of paths) if (!local.has(path)) local.set(path, await store.localCopy(path, cache));
      return { state, local };
    } catch (error) {
      if (!isMissingObject(error) || attempt >= SNAPSHOT_ATTEMPTS) throw error;
    }
  }
}

/**
 * The rows of every stream, unioned by column name. Streams are typed apart, so one name
 * can be a JSON column in one stream and text in another: read as one, DuckDB parsed the
 * text as JSON and the whole `events` view failed ("Malformed JSON"). Such a column is JSON
 * in `events`, the other streams' values converted with `to_json` (text `abc` is `"abc"`).
 * So is a column that is BOOLEAN in one stream and a number in another: DuckDB unions them
 * as the number type, and a stream's `true` read as `1` (JSON keeps `true` and `5` apart).
 */
async function eventsSource(connection: DuckDBConnection, groups: readonly LakeFile[][], list: (fs: readonly LakeFile[]) => string): Promise<string> {
  const read = (fs: readonly LakeFile[]): string => `read_parquet(${list(fs)}, union_by_name = true, hive_partitioning = false)`;
  if (groups.length < 2) return read(groups.flat());
  const columns: Array<Array<[string, string]>> = [];
  for (const fs of groups) columns.push((await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${read(fs)}`)).getRows().map((r) => [String(r[0]), String(r[1])]));
  // Column names match regardless of letter case, as DuckDB matches them.
  const types = new Map<string, Set<string>>();
  for (const [name, type] of columns.flat()) types.set(name.toLowerCase(), (types.get(name.toLowerCase()) ?? new Set()).add(type));
  const numeric = new Set(['BIGINT', 'DOUBLE', 'INTEGER']);
  const mixed = (name: string): boolean => {
    const t = types.get(name.toLowerCase())!;
    return t.size > 1 && (t.has('JSON') || (t.has('BOOLEAN') && [...t].some((type) => numeric.has(type))));
  };
  if (!columns.flat().some(([name]) => mixed(name))) return read(groups.flat());
  const parts = groups.map((fs, i) => {
    const replace = columns[i]!.filter(([name, type]) => type !== 'JSON' && mixed(name)).map(([name, type]) => `${toJsonSql(ident(name), type)} AS ${ident(name)}`);
    return `SELECT *${replace.length > 0 ? ` REPLACE (${replace.join(', ')})` : ''} FROM ${read(fs)}`;
  });
  return `(${parts.join(' UNION ALL BY NAME ')})`;
}

/**
 * Payload columns some schema version types integer and another number: an integer → number
 * widening (see schema-registry.ts `evolve`). Files written before it hold the column as
 * BIGINT, later ones as DOUBLE; read together by name, DuckDB types it DOUBLE, and a BIGINT
 * beyond ±2^53 (PostgreSQL int8, whose digits the lake stores) read back rounded.
 */
function widenedColumns(history: StreamSchemaHistory): Set<string> {
  const typed = (type: string): Set<string> => new Set(history.versions.flatMap((v) => v.columns.filter((c) => c.type === type).map((c) => c.column)));
  const integers = typed('integer');
  return new Set([...typed('number')].filter((column) => integers.has(column)));
}

/**
 * The rows of one stream's `files` with the payload columns `columns` (see `widenedColumns`)
 * as text that holds each stored value exactly: a BIGINT's digits, a DOUBLE in DuckDB's
 * shortest round-trip form (`1.5`, `5.0`, `1e+300`) or `NaN`/`Infinity`/`-Infinity`.
 * `payloadBuilder` turns the text back into the value (see `exactNumber`). Files are grouped
 * by the Parquet types they hold those columns in (from their footers) and each group read
 * alone, so no group's values pass through the DOUBLE union.
 */
async function exactWidenedSource(connection: DuckDBConnection, files: readonly LakeFile[], localPath: (f: LakeFile) => string, list: (fs: readonly LakeFile[]) => string, columns: ReadonlySet<string>): Promise<string> {
  const read = (fs: readonly LakeFile[]): string => `read_parquet(${list(fs)}, union_by_name = true, hive_partitioning = false)`;
  const physical = new Map<string, Map<string, string>>();
  const schema = await connection.runAndReadAll(`SELECT file_name, name, type FROM parquet_schema(${list(files)})`);
  for (const [file, name, type] of schema.getRows()) {
    if (!columns.has(String(name))) continue;
    const types = physical.get(String(file)) ?? new Map<string, string>();
    physical.set(String(file), types.set(String(name), String(type)));
  }
  const groups = new Map<string, { files: LakeFile[]; types: Map<string, string> }>();
  for (const f of files) {
    const types = physical.get(localPath(f)) ?? new Map<string, string>();
    const key = JSON.stringify([...columns].map((c) => types.get(c) ?? ''));
    groups.set(key, { files: [...(groups.get(key)?.files ?? []), f], types });
  }
  const parts = [...groups.values()].map(({ files: fs, types }) => {
    const replace = [...types].map(([name, type]) => `${exactTextSql(ident(name), type)} AS ${ident(name)}`);
    return `SELECT *${replace.length > 0 ? ` REPLACE (${replace.join(', ')})` : ''} FROM ${read(fs)}`;
  });
  return `(${parts.join(' UNION ALL BY NAME ')})`;
}

/** SQL: a BIGINT or DOUBLE column (Parquet INT64 or DOUBLE) as the text `exactNumber` reads. */
function exactTextSql(column: string, parquetType: string): string {
  if (parquetType !== 'DOUBLE' && parquetType !== 'FLOAT') return `CAST(${column} AS VARCHAR)`;
  return `CASE WHEN isnan(${column}) THEN 'NaN' WHEN isinf(${column}) THEN (CASE WHEN ${column} > 0 THEN 'Infinity' ELSE '-Infinity' END) ELSE CAST(${column} AS VARCHAR) END`;
}

const DECIMAL_INTEGER = /^-?[0-9]+$/;

/**
 * A value of `exactTextSql` as the readers return numbers elsewhere: digits as an integer (its
 * text beyond ±2^53, as `plainBigInt`), `NaN`/`Infinity`/`-Infinity` as that text (see
 * duck.ts), any other text as the double it spells.
 */
function exactNumber(text: string): number | string {
  if (DECIMAL_INTEGER.test(text)) return plainBigInt(BigInt(text));
  return NON_FINITE_TEXTS.has(text) ? text : Number(text);
}

/**
 * SQL: a non-JSON column's value as JSON. DuckDB's to_json writes a DOUBLE's NaN and
 * ±infinity as bare `NaN`/`Infinity`/`-Infinity`, which is no JSON (parsing it failed the
 * query): they become the JSON strings `"NaN"`, `"Infinity"`, `"-Infinity"`, the text the
 * readers return for them elsewhere (see duck.ts).
 */
function toJsonSql(column: string, type: string): string {
  if (type !== 'DOUBLE' && type !== 'FLOAT') return `to_json(${column})`;
  return `CASE WHEN isnan(${column}) THEN '"NaN"'::JSON WHEN isinf(${column}) THEN (CASE WHEN ${column} > 0 THEN '"Infinity"' ELSE '"-Infinity"' END)::JSON ELSE to_json(${column}) END`;
}

function plainValue(v: unknown): unknown {
  if (typeof v === 'bigint') return plainBigInt(v);
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(plainValue);
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) setOwnField(out, k, plainValue(x));
    return out;
  }
  return v;
}

/**
 * Query rows as plain JSON values all the way down: `plainRows` converts top-level BIGINTs,
 * but a LIST, STRUCT, MAP or INTERVAL value (`list(id)`, `max(t) - min(t)`) still held
 * BigInts, which JSON.stringify refuses: `tributary lake query` failed on such a query in
 * either output format. Only object values are walked.
 */
function plainNested(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  for (const row of rows) {
    for (const name in row) {
      const v = row[name];
      if (typeof v === 'object' && v !== null) row[name] = plainValue(v);
    }
  }
  return rows;
}

/** Runs one SQL statement over the lake (see `openLakeReader`). */
export async function queryLake(config: LakeConfig | Record<string, unknown>, sql: string, options: ReaderOptions = {}): Promise<Record<string, unknown>[]> {
  const reader = await openLakeReader(config, options);
  try {
    return await reader.query(sql);
  } finally {
    await reader.close();
  }
}

const ENVELOPE_FIELDS = ['event_id', 'entity_key', 'customer_id', 'tenant_id', 'event_time', 'ingest_time', 'source_system', 'stream', 'op', 'schema_version', 'source_position', 'source_txid', 'before_image', 'unchanged_fields'] as const;

/**
 * Rebuilds payloads under their record field names. Each row says which schema version it
 * was written with; that version says which column holds each field (its own column,
 * `payload_<name>`, the envelope column of the same name, or `<field>__v<n>` after a
 * breaking change).
 */
function payloadBuilder(history: StreamSchemaHistory, exact: ReadonlySet<string> = new Set()): (row: Record<string, unknown>) => LakeRow {
  const byVersion = new Map(history.versions.map((v) => [v.version, v.columns]));
  const latest = history.versions[history.versions.length - 1]?.columns ?? [];
  return (row) => {
    const version = typeof row.schema_version === 'number' ? row.schema_version : Number(row.schema_version);
    const columns = byVersion.get(version) ?? latest;
    const payload: Record<string, unknown> = {};
    for (const c of columns) {
      if (!Object.hasOwn(row, c.column)) continue; // not `in`: every object has `__proto__`
      const value = row[c.column];
      if (value === undefined || value === null) setOwnField(payload, c.field, null);
      else if (typeof value === 'string' && exact.has(c.column)) setOwnField(payload, c.field, exactNumber(value));
      else setOwnField(payload, c.field, c.type === 'json' && typeof value === 'string' ? (JSON.parse(value) as unknown) : value);
    }
    const out: Record<string, unknown> = { payload };
    for (const f of ENVELOPE_FIELDS) out[f] = row[f] ?? null;
    if (typeof out.before_image === 'string') out.before_image = JSON.parse(out.before_image) as unknown;
    if (typeof out.unchanged_fields === 'string') out.unchanged_fields = JSON.parse(out.unchanged_fields) as unknown;
    return out as unknown as LakeRow;
  };
}

export interface StreamRowsQuery {
  stream: string;
  tenant?: string;
}

/**
 * A reader of one stream (optionally one tenant) for the library's reads, and the builder of
 * its rows' payloads. Columns an integer → number widening left BIGINT in some files and
 * DOUBLE in others are read exactly (see `openReader`). The history the builder uses is
 * loaded after the reader's snapshot, so it holds the version of every row read; when it
 * shows a widening the first load did not (committed meanwhile), the reader is opened again.
 */
async function openStreamReader(config: LakeConfig, stream: string, tenant: string | undefined): Promise<{ reader: LakeReader; build: (row: Record<string, unknown>) => LakeRow }> {
  const loadHistory = async (store: LakeStore): Promise<StreamSchemaHistory> => loadSchemaHistory(store, stream).finally(() => store.close());
  // A path that holds no lake is refused here, as `openLakeReader` refuses it.
  let exact = widenedColumns(await loadHistory(await openExistingLake(config)));
  for (;;) {
    const reader = await openReader(config, { streams: [stream], ...(tenant !== undefined ? { tenant } : {}) }, exact);
    try {
      const history = await loadHistory(openStore(config));
      const widened = widenedColumns(history);
      if ([...widened].every((column) => exact.has(column))) return { reader, build: payloadBuilder(history, exact) };
      exact = widened;
    } catch (error) {
      await reader.close();
      throw error;
    }
    await reader.close();
  }
}

/** Every row of a stream (replayed duplicates would show here: tests count them). */
export async function readStreamRows(rawConfig: LakeConfig | Record<string, unknown>, query: StreamRowsQuery): Promise<LakeRow[]> {
  const config = lakeConfig(rawConfig);
  const { reader, build } = await openStreamReader(config, query.stream, query.tenant);
  try {
    if (!reader.streams.includes(query.stream)) return [];
    // `events`, not the stream's own view (which it may lack, see VIEWS): the reader holds this stream only.
    return (await reader.queryRaw('SELECT * FROM events ORDER BY event_time, event_id')).map(build);
  } finally {
    await reader.close();
  }
}

export interface AsOfQuery {
  /** Stream name (the stream key for namespaced streams). */
  stream: string;
  /** Point in time (ISO-8601 string, UTC when it has no offset; Date or epoch ms); default now. Rows with event_time ≤ asOf count. */
  asOf?: string | Date | number;
  /** Restrict to one tenant (only its partitions are read). */
  tenant?: string;
  /** Which column identifies "the same thing": `entity_key` (the primary key, default) or `customer_id`. */
  key?: 'entity_key' | 'customer_id';
  /** Only these keys (values of `key`). */
  keys?: readonly string[];
  /** Keep keys whose latest row is a delete (with op `delete`); default false: they are absent as of T. */
  includeDeleted?: boolean;
}

/** The event times the lake stores (see envelope.ts): JavaScript's dates, ±8.64e15 ms. */
const MAX_TIME_MS = 8.64e15;

/**
 * The as-of time as a SQL TIMESTAMP, computed from epoch ms exactly as the writer computes
 * `event_time` (a DOUBLE of ms to its exact microsecond, see `epochMsTimestampSql`), so a row whose
 * event time is the as-of time counts also when it has a fraction of a millisecond (an epoch
 * ms number such as 1700000000000.5), and years after 9999 work: a `TIMESTAMP '…'` literal
 * from `toISOString` dropped the fraction, and DuckDB refused its `+010000-…` years.
 */
function asOfTimestamp(ms: number): string {
  return epochMsTimestampSql(`CAST(${literal(String(ms))} AS DOUBLE)`);
}

/**
 * Point-in-time read: per (tenant, key) the latest row with event_time ≤ asOf (see
 * NEWEST_FIRST for the order). Keys whose latest row is a delete are left out. Rows come
 * sorted by tenant, key.
 */
export async function readLatestAsOf(rawConfig: LakeConfig | Record<string, unknown>, query: AsOfQuery): Promise<LakeRow[]> {
  const config = lakeConfig(rawConfig);
  const asOfMs = query.asOf === undefined ? Date.now() : query.asOf instanceof Date ? query.asOf.getTime() : typeof query.asOf === 'number' ? query.asOf : parseTimeMs(query.asOf);
  if (!Number.isFinite(asOfMs)) throw new TributaryError('config', { userMessage: `as-of time ${JSON.stringify(query.asOf)} is not an ISO-8601 date-time` });
  if (!(Math.abs(asOfMs) <= MAX_TIME_MS)) throw new TributaryError('config', { userMessage: `as-of time ${JSON.stringify(query.asOf)} is outside the range of dates (±${MAX_TIME_MS} ms from 1970)` });
  const key = query.key ?? 'entity_key';
  const { reader, build } = await openStreamReader(config, query.stream, query.tenant);
  try {
    if (!reader.streams.includes(query.stream)) return [];
    const at = asOfTimestamp(asOfMs);
    // The reader holds this stream only: its rows are `events` (the stream may have no view of its own, see VIEWS).
    const keyFilter = query.keys !== undefined ? ` AND ${key} IN (${query.keys.length > 0 ? query.keys.map(literal).join(', ') : 'NULL'})` : '';
    const sql =
      `SELECT * FROM (SELECT * FROM events WHERE event_time <= ${at}${keyFilter} ` +
      `QUALIFY row_number() OVER (PARTITION BY tenant_id, ${key} ORDER BY ${NEWEST_FIRST}) = 1)` +
      `${query.includeDeleted ? '' : " WHERE op <> 'delete'"} ORDER BY tenant_id, ${key}`;
    const latest = (await reader.queryRaw(sql)).map(build);
    await fillUnchanged(reader, at, latest, build);
    return latest;
  } finally {
    await reader.close();
  }
}

/** A row to fill: the fields it still misses, and where the walk of its history continues. */
interface FillTarget {
  row: LakeRow;
  missing: Set<string>;
  /** The moved update (see `isMovedUpdate`) that began the life of the entity the walk passed, when fields are still missing: their values are in its old key's rows. */
  moved: LakeRow | undefined;
  /** Event ids of the old keys' deletes already followed (a key moved back and forth must not loop). */
  followed: Set<string>;
}

const entityOf = (r: LakeRow): string => JSON.stringify([r.tenant_id, r.entity_key]);
const sameRow = (a: LakeRow, b: LakeRow): boolean => a.event_id === b.event_id && a.event_time === b.event_time && a.ingest_time === b.ingest_time;

/**
 * A CDC update that left TOASTed columns out (`unchanged_fields`) stored no value for them:
 * their value as of T is the one of the latest earlier row of the same entity (tenant and
 * `entity_key`, whatever `key` the read groups by: with `customer_id`, another entity of
 * the same customer holds other values) that had them. When the entity's rows do not hold
 * them and one of those rows moved the row from another key, the old key's earlier rows
 * are walked too (`fillAcrossKeyMoves`). `reader` holds one stream (its `events` view).
 * Reads whose rows miss nothing run no query here.
 */
async function fillUnchanged(reader: LakeReader, /** SQL TIMESTAMP (see asOfTimestamp) */ at: string, rows: LakeRow[], build: (row: Record<string, unknown>) => LakeRow): Promise<void> {
  const partial = rows.filter((r) => (r.unchanged_fields?.length ?? 0) > 0);
  if (partial.length === 0) return;
  // With `key: 'customer_id'` an entity that moved between customers can be the latest row of two of them.
  const targets: FillTarget[] = partial.map((row) => ({ row, missing: new Set(row.unchanged_fields), moved: undefined, followed: new Set() }));
  const keys = [...new Set(partial.map((r) => r.entity_key))];
  const history = byEntity(
    (await reader.queryRaw(`SELECT * FROM events WHERE event_time <= ${at} AND entity_key IN (${keys.map(literal).join(', ')}) ORDER BY ${NEWEST_FIRST}`)).map(build),
  );
  for (const target of targets) walkHistory(target, history.get(entityOf(target.row)) ?? [], target.row);
  await fillAcrossKeyMoves(reader, at, targets, build);
}

/** Rows grouped by entity (tenant and `entity_key`), each group in the order of `rows`. */
function byEntity(rows: LakeRow[]): Map<string, LakeRow[]> {
  const groups = new Map<string, LakeRow[]>();
  for (const r of rows) {
    const group = groups.get(entityOf(r)) ?? [];
    group.push(r);
    groups.set(entityOf(r), group);
  }
  return groups;
}

/**
 * Walks `rows` (one entity, NEWEST_FIRST) from `from` on: each older row fills the target's
 * missing fields it does not list itself. Stops at a delete older than `from`: the rows
 * before it are an earlier life of the key, whose values are not the row's. An update
 * reaches one only when it moved the row onto the key (`4 → 33 → 4`: the delete of 4 at the
 * first move), and the values it left out are then in the rows of the key it came from,
 * which `fillAcrossKeyMoves` walks. Taken from the delete (whose row is its before-image,
 * often the key alone), they were null.
 *
 * When fields are still missing, `target.moved` is the oldest row of the life walked (the
 * last one, `from` included) if it may be a moved update: only the row that began the life
 * can have moved the row onto the key. Not the newest update with a before-image: under
 * REPLICA IDENTITY FULL every update has one, and a plain update's position has no delete
 * of a move, so the walk ended there with the field null.
 */
function walkHistory(target: FillTarget, rows: LakeRow[], from: LakeRow): void {
  target.moved = undefined;
  const start = rows.findIndex((r) => sameRow(r, from));
  if (start < 0) return;
  let oldest = rows[start]!;
  for (let i = start + 1; i < rows.length && target.missing.size > 0; i++) {
    const older = rows[i]!;
    if (older.op === 'delete') break;
    oldest = older;
    for (const field of [...target.missing]) {
      if (older.unchanged_fields?.includes(field)) continue;
      target.row.payload[field] = older.payload[field] ?? null;
      target.missing.delete(field);
    }
  }
  if (target.missing.size > 0 && isMovedUpdate(oldest)) target.moved = oldest;
}

/** A row that may be an update that moved its row from another key (key-moves.ts): a CDC update with a before-image. */
function isMovedUpdate(row: LakeRow): boolean {
  return row.op === 'update' && row.before_image !== null && row.source_position !== null;
}

/**
 * Whether `row` is the delete the lake stored for the old key of the moved update `moved`
 * (key-moves.ts `movedKeyDelete`): another entity's delete (another key, or the same key in
 * another tenant: an update that changed only the tenant, key-moves.ts `tenantMovedFrom`)
 * at the update's position, txid and event time, with the same before-image. In any tenant:
 * an update that changed the key and the tenant together ends the old key in its old tenant
 * (required to match, the walk did not find that delete, and the moved row's fields stayed
 * null).
 */
function isDeleteOfMove(row: LakeRow, moved: LakeRow): boolean {
  return (
    row.op === 'delete' &&
    (row.entity_key !== moved.entity_key || row.tenant_id !== moved.tenant_id) &&
    row.source_position === moved.source_position &&
    row.source_txid === moved.source_txid &&
    row.event_time === moved.event_time &&
    JSON.stringify(row.before_image) === JSON.stringify(moved.before_image)
  );
}

/**
 * Fields still missing after a target's own entity's rows, whose walk passed an update that
 * moved the row from another key (an update that moved its key is filled at write time
 * from the old key's latest row, but when that row listed the field too, the value is in an
 * older row of the old key): the walk continues in the old key's rows older than its delete.
 * Repeats for keys moved more than once (4 → 33 → 60); one query per step of such chains.
 */
async function fillAcrossKeyMoves(reader: LakeReader, at: string, targets: FillTarget[], build: (row: Record<string, unknown>) => LakeRow): Promise<void> {
  for (;;) {
    const pending = targets.filter((t) => t.missing.size > 0 && t.moved !== undefined);
    if (pending.length === 0) return;
    const positions = [...new Set(pending.map((t) => t.moved!.source_position!))];
    // Every row (as of T) of the keys deleted at these positions: the old keys and their history.
    const rows = (
      await reader.queryRaw(
        `SELECT * FROM events WHERE event_time <= ${at} AND entity_key IN ` +
          `(SELECT entity_key FROM events WHERE op = 'delete' AND event_time <= ${at} AND source_position IN (${positions.map(literal).join(', ')})) ` +
          `ORDER BY ${NEWEST_FIRST}`,
      )
    ).map(build);
    const history = byEntity(rows);
    for (const target of pending) {
      const moved = target.moved!;
      target.moved = undefined;
      const deleted = rows.find((r) => isDeleteOfMove(r, moved));
      if (deleted === undefined || target.followed.has(deleted.event_id)) continue;
      target.followed.add(deleted.event_id);
      walkHistory(target, history.get(entityOf(deleted)) ?? [], deleted);
    }
  }
}
