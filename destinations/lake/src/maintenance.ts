import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseConfig, parseDateTimeMs, TributaryError } from '@tributary/core';
import {
  CommitLease,
  commitEntry,
  fileOwner,
  LEASE_PREFIX,
  LEASE_TTL_MS,
  leaseOwner,
  loadLakeState,
  pruneCheckpoints,
  pruneLog,
  type EntryDraft,
  type LakeFile,
  type LakeState,
  type LogEntry,
  type QuarantineFile,
} from './commit-log.js';
import { ownEventTimeMs, parseTimeMs } from './envelope.js';
import { lakeConfigSchema, type LakeConfig } from './config.js';
import { epochMsTimestampSql, ident, literal, openDuckDb } from './duck.js';
import { streamDir } from './layout.js';
import { loadSchemaHistory, type StreamSchemaHistory } from './schema-registry.js';
import { openExistingLake } from './storage/open-store.js';
import type { LakeStore } from './storage/store.js';
import { createOwnedTempDir } from './temp-dir.js';

/**
 * Files a commit removed from the log stay in storage for `graceMs`, so a reader that
 * loaded the log just before can still read them: removal is logical first (the log entry),
 * physical later (the next compaction or retention run past the grace period). A trash
 * record (`_tributary/trash/<ms>-<uuid>.json`, the paths as a JSON array) names them with
 * the time the grace period counts from.
 */
const TRASH_PREFIX = '_tributary/trash/';
const DEFAULT_GRACE_MS = 10 * 60_000;

async function trash(store: LakeStore, paths: readonly string[]): Promise<string | undefined> {
  if (paths.length === 0) return undefined;
  const key = `${TRASH_PREFIX}${String(Date.now()).padStart(15, '0')}-${randomUUID()}.json`;
  await store.put(key, JSON.stringify(paths));
  return key;
}

/**
 * Commits an entry that removes files (compaction, retention). Its trash record is written
 * before each attempt to write the entry, replacing the previous attempt's, never after the
 * entry: a file is thus never out of the log without a record, so an orphan sweep running
 * meanwhile (or after this run crashed right after the entry) does not take it for a
 * crashed session's leftover and delete it at once, under a reader still on the older
 * snapshot. The grace period so counts from just before the attempt that wrote the entry.
 * A record whose entry was never written (nothing left to commit, or a crash before it)
 * names files still in the log, which `emptyTrash` leaves alone.
 *
 * A failure thrown before an attempt of the entry was handed to the store (refused by
 * `validate`, or failed in `beforeWrite`; every earlier attempt lost its race) leaves no
 * entry in the log: `entryNotStored` tells so. Any other may have stored it although the
 * call failed (a conditional write whose answer was lost).
 */
async function commitRemoval(
  store: LakeStore,
  state: LakeState,
  entry: EntryDraft | ((state: LakeState) => EntryDraft | undefined),
  validate?: (state: LakeState) => void,
  leases: readonly CommitLease[] = [],
): Promise<LogEntry | undefined> {
  let record: string | undefined;
  const dropRecord = async (): Promise<void> => {
    // Best effort: a record left behind only names files the log still has, or files another commit removed.
    if (record !== undefined) await store.delete([record]).catch(() => undefined);
    record = undefined;
  };
  // An attempt of the entry is being written: from the end of `beforeWrite` until the next `validate` (after a lost race).
  let writing = false;
  let committed: LogEntry | undefined;
  try {
    committed = await commitEntry(store, state, entry, {
      validate: (current) => {
        writing = false;
        validate?.(current);
      },
      beforeWrite: async (draft) => {
        // The files the entry adds were published under `leases`: not committed once one may have lapsed.
        for (const lease of leases) await lease.keep();
        const previous = record;
        record = await trash(store, draft.remove ?? []);
        if (previous !== undefined) await store.delete([previous]).catch(() => undefined);
        writing = true;
      },
    });
  } catch (error) {
    // No attempt of this entry was written: its record goes. Any other error keeps the
    // record: the entry may have been written although its answer was lost.
    if (!writing) {
      await dropRecord();
      if (typeof error === 'object' && error !== null) unstoredEntries.add(error);
    }
    throw error;
  }
  if (committed === undefined) await dropRecord();
  return committed;
}

/** Errors of `commitRemoval` thrown before any attempt of its entry reached the store. */
const unstoredEntries = new WeakSet<object>();

/** Whether `error`, thrown by `commitRemoval`, left its entry out of the log for certain (see there); false when it may be in it. */
const entryNotStored = (error: unknown): boolean => typeof error === 'object' && error !== null && unstoredEntries.has(error);

/**
 * Deletes files removed from the log more than `graceMs` ago; returns how many. A path the
 * log (`visible`, loaded before the trash is listed) still has is never deleted: its record
 * was written for an entry that was never committed. Nor is a path that a record still in
 * its grace period names: such an old, expired record (of a run whose entry failed) can
 * name files that a later commit removed only now, under the later record; counted from
 * the old one, their grace period was cut short (a sweep deleted them at once, under a
 * reader still on the snapshot before their removal).
 */
async function emptyTrash(store: LakeStore, visible: LakeState, graceMs: number): Promise<number> {
  const expired: string[] = [];
  const kept = new Set<string>();
  for (const { key, modifiedMs } of await store.listDetailed(TRASH_PREFIX)) {
    // The later of the writer's clock (the name) and the store's (on S3 the server's time,
    // corrected to this machine's clock): a writer whose clock ran behind this machine's
    // would otherwise give its removed files less than the grace period.
    const at = Math.max(Number(key.slice(TRASH_PREFIX.length).split('-')[0]), modifiedMs);
    if (Date.now() - at >= graceMs) expired.push(key);
    else for (const path of await trashedPaths(store, key)) kept.add(path);
  }
  let deleted = 0;
  // Retention also removes quarantine files: a record whose entry was never written names them while the log still has them.
  const quarantined = new Set(visible.quarantine.map((q) => q.path));
  for (const key of expired) {
    const paths = (await trashedPaths(store, key)).filter((path) => !visible.files.has(path) && !quarantined.has(path) && !kept.has(path));
    await store.delete(paths);
    await store.delete([key]);
    deleted += paths.length;
  }
  return deleted;
}

/** The paths a trash record names (none when it is gone). */
async function trashedPaths(store: LakeStore, key: string): Promise<string[]> {
  const bytes = await store.get(key);
  return bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as string[]) : [];
}

/**
 * Data files no commit names: published by a writer that crashed before its log entry.
 * Readers never see them; they are deleted once older than `orphanAgeMs`, unless their
 * writer holds a fresh lease (see CommitLease in commit-log.ts): a live writer's files wait
 * for its log entry however long it takes between publishing and committing. Steps in this
 * order: the data files are listed first, the leases after them (so a file listed was
 * published after its writer's lease was written, which is then seen), and the log after
 * the leases (so any entry a writer wrote while its lease was fresh is seen). Leases stale
 * for LEASE_TTL_MS are deleted.
 */
async function deleteOrphans(store: LakeStore, orphanAgeMs: number): Promise<number> {
  const old = (await store.listDetailed('data/')).filter((o) => LAKE_DATA_KEY.test(o.key) && Date.now() - o.modifiedMs >= orphanAgeMs);
  const live = new Set<string>();
  const stale: string[] = [];
  for (const { key, modifiedMs } of await store.listDetailed(LEASE_PREFIX)) {
    if (Date.now() - modifiedMs < LEASE_TTL_MS) live.add(leaseOwner(key));
    else stale.push(key);
  }
  const state = await loadLakeState(store);
  const trashed = new Set<string>();
  for (const key of await store.list(TRASH_PREFIX)) for (const path of await trashedPaths(store, key)) trashed.add(path);
  const orphans = old
    .filter((o) => !state.files.has(o.key) && !trashed.has(o.key))
    .filter((o) => {
      const owner = fileOwner(o.key);
      return owner === undefined || !live.has(owner);
    })
    .map((o) => o.key);
  await store.delete(orphans);
  await store.delete(stale);
  return orphans.length;
}

const DEFAULT_ORPHAN_AGE_MS = 60 * 60_000;
/**
 * The shape of a data file this lake writes (`data/<stream>/tenant_id=<t>[/event_date=|event_month=<p>]/<name>.parquet`,
 * see layout.ts). Only such keys can be its orphans: another lake kept below this one's
 * `data/` (a bucket-root lake, and another with prefix `data/x/`) has `data/x/data/…` keys,
 * which are not this lake's to delete.
 */
const LAKE_DATA_KEY = /^data\/[^/]+\/tenant_id=[^/]*\/(?:event_(?:date|month)=[^/]*\/)?[^/]+\.parquet$/;

export interface CompactionOptions {
  stream?: string;
  tenant?: string;
  /** A partition is compacted when it has at least this many files below `targetRows` (default 4). */
  minFiles?: number;
  /** Files with fewer rows count as small (default 1,000,000). */
  targetRows?: number;
  /** Removed files are deleted after this long (default 10 min), for readers still on the old snapshot. */
  graceMs?: number;
  /** Files no commit names (left by crashed sessions) are deleted once this old (default 1 h). */
  orphanAgeMs?: number;
  /** Checkpoints a newer one replaces are deleted once this old (default 1 h, see `pruneCheckpoints`). */
  checkpointRetentionMs?: number;
}

export interface CompactionResult {
  partitions: number;
  filesBefore: number;
  filesAfter: number;
  rows: number;
  duplicatesDropped: number;
  filesDeleted: number;
  orphansDeleted: number;
  /** Commit log entries deleted: those a checkpoint an hour old covers (see `pruneLog`). */
  logEntriesDeleted: number;
  /** Commit log checkpoints deleted (see `pruneCheckpoints`). */
  checkpointsDeleted: number;
}

/**
 * The payload columns a file of schema version `version` holds as BIGINT that another version
 * types as number (DOUBLE: a later widening), as a grouping key. Merged with a file holding the
 * DOUBLE, such a column is read as one DOUBLE and written so: a BIGINT beyond ±2^53 (PostgreSQL
 * int8, Salesforce Number(18,0), whose digits the lake stores) lost its last digits for good.
 * Files with different keys are not merged. Every version counts, not only the latest: after a
 * widening, a breaking change of the same field (`new_column`) moves it to `<field>__v<n>`, and
 * the latest version no longer names the column that holds DOUBLEs in some files and BIGINTs in
 * others.
 */
function bigintsWidenedLater(history: StreamSchemaHistory, version: number): string {
  const own = history.versions.find((v) => v.version === version);
  if (own === undefined) return '';
  const doubles = new Set(history.versions.flatMap((v) => v.columns.filter((c) => c.type === 'number').map((c) => c.column)));
  return own.columns
    .filter((c) => c.type === 'integer' && doubles.has(c.column))
    .map((c) => c.column)
    .sort()
    .join(',');
}

/** A file written to replace others (compaction's merge, retention's rewrite): published, no log entry names it yet. */
interface Replacement {
  file: LakeFile;
  /** Held from before the file was published until the entry naming it is written (then `settled`, `release`). */
  lease: CommitLease;
}

/**
 * Writes the rows `select` gives (SQL over `source`: the rows of `inputs`, whose local copies
 * are `locals`, read as stored, columns united by name) to one Parquet file, reads its stats,
 * and publishes it in the first input's partition directory (same stream, tenant and
 * partition: callers pass files of one partition) under a new lease. Named
 * `compact-<uuid>.parquet`, the name an orphan sweep of any version knows as a lease owner's,
 * so it leaves the file until the entry names it. The columns and their types are the
 * inputs' (DuckDB copies them as stored: a BIGINT stays BIGINT); every envelope column, and
 * `_tributary_ingest_seq`, is copied as it is. The caller commits it (`commitRemoval` with the
 * lease), then settles and releases the lease; when that commit fails, `abandonReplacements`.
 * A failed publish deletes the file (if stored after all) and releases the lease itself.
 */
async function publishReplacement(
  store: LakeStore,
  duck: Awaited<ReturnType<typeof openDuckDb>>,
  config: Partial<Pick<LakeConfig, 'compression' | 'row_group_size'>>,
  work: string,
  inputs: readonly LakeFile[],
  locals: readonly string[],
  select: (source: string) => Promise<string>,
): Promise<Replacement> {
  const first = inputs[0]!;
  const id = `compact-${randomUUID()}`;
  const dir = join(work, id);
  await mkdir(dir, { recursive: true });
  const out = join(dir, `${id}.parquet`);
  const source = `read_parquet([${locals.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`;
  await duck.connection.run(`COPY (${await select(source)}) TO ${literal(out)} (FORMAT parquet, COMPRESSION ${config.compression ?? 'zstd'}, ROW_GROUP_SIZE ${config.row_group_size ?? 122_880})`);
  const stats = (await duck.connection.runAndReadAll(`SELECT count(*)::DOUBLE, epoch_ms(min(event_time))::DOUBLE, epoch_ms(max(event_time))::DOUBLE, max(schema_version)::DOUBLE FROM read_parquet(${literal(out)})`)).getRows()[0]!;
  const dirParts = first.path.split('/').slice(0, -1).join('/');
  const key = `${dirParts}/${id}.parquet`;
  if (!key.startsWith(`data/${streamDir(first.stream)}/`)) throw new TributaryError('fatal', { userMessage: `lake: unexpected file path ${first.path}` });
  const file: LakeFile = {
    path: key,
    stream: first.stream,
    tenant: first.tenant,
    partition: first.partition,
    rows: Number(stats[0]),
    bytes: (await stat(out)).size,
    schemaVersion: Number(stats[3]),
    minEventTime: Number(stats[1]),
    maxEventTime: Number(stats[2]),
    sessions: [...new Set(inputs.flatMap((f) => f.sessions))],
  };
  // Published under a lease, so another run's orphan sweep leaves it until the entry names it.
  const lease = new CommitLease(store, id);
  await lease.keep();
  const replacement: Replacement = { file, lease };
  try {
    await store.putFile(key, out);
  } catch (error) {
    // No entry names it, nor ever will: deleted (if it was stored after all), its lease released.
    await discardReplacements(store, [replacement]);
    throw error;
  }
  await rm(dir, { recursive: true, force: true });
  return replacement;
}

/**
 * Merges each partition's small files into one (per stream, tenant and day: never across
 * tenants; nor a file holding a BIGINT column with one where it was widened to DOUBLE, see
 * bigintsWidenedLater), dropping rows stored again with every column equal but the ingest time (a
 * replayed row; its last copy stays). Rows with one id but different event times stay: they are the same record
 * content seen at two times (a value changed and changed back, in a stream without
 * positions, whose ids hash the record), and a point-in-time read needs both; so do rows
 * with one id and one event time but different values (two changes within one cursor value). Commits with a conditional log
 * entry that checks the input files are still visible, so it can run while a sync writes.
 */
export async function compactLake(rawConfig: LakeConfig | Record<string, unknown>, options: CompactionOptions = {}): Promise<CompactionResult> {
  const config = parseConfig(lakeConfigSchema, rawConfig, 'lake config');
  // A path that holds no lake is refused: compaction would sweep another directory's `data/` for orphans.
  const store = await openExistingLake(config);
  try {
    return await compactStore(store, config, options);
  } finally {
    store.close();
  }
}

/** Compaction on an open store (see `compactLake`). */
export async function compactStore(store: LakeStore, config: LakeConfig, options: CompactionOptions = {}): Promise<CompactionResult> {
  const work = join(tmpdir(), `tributary-lake-compact-${randomUUID()}`);
  await createOwnedTempDir(work);
  const duck = await openDuckDb(join(work, 'spill'));
  const result: CompactionResult = { partitions: 0, filesBefore: 0, filesAfter: 0, rows: 0, duplicatesDropped: 0, filesDeleted: 0, orphansDeleted: 0, logEntriesDeleted: 0, checkpointsDeleted: 0 };
  try {
    const state = await loadLakeState(store);
    result.filesDeleted = await emptyTrash(store, state, options.graceMs ?? DEFAULT_GRACE_MS);
    result.orphansDeleted = await deleteOrphans(store, options.orphanAgeMs ?? DEFAULT_ORPHAN_AGE_MS);
    result.logEntriesDeleted = await pruneLog(store);
    result.checkpointsDeleted = await pruneCheckpoints(store, options.checkpointRetentionMs);
    const groups = new Map<string, LakeFile[]>();
    const histories = new Map<string, StreamSchemaHistory>();
    for (const f of state.files.values()) {
      if (options.stream !== undefined && f.stream !== options.stream) continue;
      if (options.tenant !== undefined && f.tenant !== options.tenant) continue;
      if (f.rows >= (options.targetRows ?? 1_000_000)) continue;
      if (!histories.has(f.stream)) histories.set(f.stream, await loadSchemaHistory(store, f.stream));
      // Files holding rows of a sync that may be replayed (see LakeState.unclean) merge only
      // among themselves: a new session drops every id of such files as a replay, so a file
      // merging them with completed syncs' rows widened that window to those rows, and a
      // later change that shares an earlier row's id (a value changed back, ids hashing the
      // record) was dropped on the resume.
      const unclean = state.unclean.get(f.stream);
      const replayable = f.sessions.some((session) => unclean?.has(session) === true);
      const key = JSON.stringify([f.stream, f.tenant, f.partition, replayable, bigintsWidenedLater(histories.get(f.stream)!, f.schemaVersion)]);
      groups.set(key, [...(groups.get(key) ?? []), f]);
    }
    for (const files of groups.values()) {
      if (files.length < (options.minFiles ?? 4)) continue;
      const locals: string[] = [];
      for (const f of files) locals.push(await store.localCopy(f.path, join(work, 'in')));
      // A replay is the same record stored again: every column equal but the ingest time.
      // The last stored copy stays: it is the one point-in-time reads return (they order
      // equal rows by ingest time, newest first), so their answers do not change with a
      // compaction. Event id and event time alone do not make a replay: an
      // incremental cursor coarser than the source's changes (a row updated twice within one
      // `updated_at` value) gives two different changes one id and one time, and dropping the
      // later one changed point-in-time answers (the earlier value came back).
      const { file: merged, lease } = await publishReplacement(store, duck, config, work, files, locals, async (source) => {
        const columns = (await duck.connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRows().map((r) => String(r[0]));
        const identity = columns.filter((c) => c !== 'ingest_time').map(ident).join(', ');
        return `SELECT * FROM ${source} QUALIFY row_number() OVER (PARTITION BY ${identity} ORDER BY ingest_time DESC) = 1 ORDER BY event_time`;
      });
      const rows = merged.rows;
      const removed = files.map((f) => f.path);
      try {
        await commitRemoval(
          store,
          state,
          { session: lease.owner, kind: 'compact', add: [merged], remove: removed },
          (s: LakeState) => {
            const gone = removed.filter((p) => !s.files.has(p));
            if (gone.length > 0) throw new TributaryError('transient', { userMessage: `lake compaction: ${gone.length} input file(s) were removed by a concurrent commit; run compaction again` });
          },
          [lease],
        );
      } catch (error) {
        await abandonReplacements(store, [{ file: merged, lease }], !entryNotStored(error));
        throw error;
      }
      lease.settled();
      await lease.release();
      const before = files.reduce((n, f) => n + f.rows, 0);
      result.partitions++;
      result.filesBefore += files.length;
      result.filesAfter++;
      result.rows += rows;
      result.duplicatesDropped += before - rows;
      await rm(join(work, 'in'), { recursive: true, force: true });
    }
    return result;
  } finally {
    duck.close();
    await rm(work, { recursive: true, force: true });
  }
}

export interface RetentionOptions {
  /** Keep events from this many days before now (UTC midnight boundary). */
  keepDays?: number;
  /** Or: remove every row whose event is before this time (ISO-8601, UTC when it has no offset; Date or epoch ms). */
  before?: string | Date | number;
  stream?: string;
  tenant?: string;
  graceMs?: number;
  /** Checkpoints a newer one replaces are deleted once this old (default 1 h, see `pruneCheckpoints`). */
  checkpointRetentionMs?: number;
}

export interface RetentionResult {
  /** Files whose rows all expired: removed. */
  filesRemoved: number;
  /** Files holding expired rows among others: replaced by a file of the others (same partition, columns and values). */
  filesRewritten: number;
  /** Expired rows removed, from removed and rewritten files. */
  rowsRemoved: number;
  filesDeleted: number;
  /**
   * Files holding expired rows left in place because the sync that wrote them may still be
   * replayed (it has not completed since: see LakeState.unclean); a run after that stream's
   * sync completes removes or rewrites them.
   */
  filesDeferred: number;
  /** Expired rows in the deferred files. */
  rowsDeferred: number;
  /** Quarantine files removed: every record in them expired (and, with `tenant`, is that tenant's). */
  quarantineFilesRemoved: number;
  /** Quarantine files holding expired records (of the run's tenant) among others: replaced by a file of the others. */
  quarantineFilesRewritten: number;
  /** Quarantined records removed, from removed and rewritten files. */
  quarantineRecordsRemoved: number;
  /** Quarantine files with expired records, of syncs that may still be replayed: left in place as `filesDeferred`. */
  quarantineFilesDeferred: number;
  /** Commit log entries deleted: those a checkpoint an hour old covers (see `pruneLog`). */
  logEntriesDeleted: number;
  /** Commit log checkpoints deleted (see `pruneCheckpoints`). */
  checkpointsDeleted: number;
}

/** Removes every row whose event is before the cutoff: drops files wholly before it, rewrites files holding rows on both sides (see `retireExpired`). */
export async function applyRetention(rawConfig: LakeConfig | Record<string, unknown>, options: RetentionOptions): Promise<RetentionResult> {
  const config = parseConfig(lakeConfigSchema, rawConfig, 'lake config');
  let cutoff: number;
  // A string is read as every other time the lake takes (event times, as-of): without an
  // offset it is UTC. Date.parse read it in the host's time zone, so west of UTC a cutoff of
  // midnight dropped the first hours of the day after it.
  if (options.before !== undefined) cutoff = options.before instanceof Date ? options.before.getTime() : typeof options.before === 'number' ? options.before : parseTimeMs(options.before);
  else if (options.keepDays !== undefined) {
    const today = new Date();
    cutoff = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()) - options.keepDays * 86_400_000;
  } else throw new TributaryError('config', { userMessage: 'Retention needs --keep-days N or --before <ISO time>' });
  if (!Number.isFinite(cutoff)) throw new TributaryError('config', { userMessage: `Retention cutoff ${JSON.stringify(options.before)} is not a date-time` });
  // A path that holds no lake is refused, not read as an empty lake.
  const store = await openExistingLake(config);
  try {
    return await retireExpired(store, cutoff, { ...options, config });
  } finally {
    store.close();
  }
}

/**
 * Whether every event of `file` is before `cutoff` (epoch ms, with a fraction when the cutoff
 * has digits below the millisecond), by the log alone. The log records a file's latest event time in whole
 * milliseconds, cut toward 1970 (DuckDB's `epoch_ms`), while event times are stored to the
 * microsecond: the latest event is anywhere before the end of that millisecond, which must
 * not be after the cutoff. Compared by the recorded millisecond itself, a file whose latest
 * event came after the cutoff within its millisecond (`.000900` against `.000800`) was
 * dropped. A file whose events are all before the cutoff but in its millisecond is read
 * (`mayStraddle`).
 */
function allBefore(file: LakeFile, cutoff: number): boolean {
  return file.maxEventTime + 1 <= cutoff;
}

/**
 * Whether `file` may hold a row before `cutoff` besides rows that are not (or rows in the
 * cutoff's own millisecond): its earliest event's millisecond starts before the cutoff, and
 * `allBefore` cannot tell. Which of its rows expired is read from the file (`planRowRetention`).
 */
function mayStraddle(file: LakeFile, cutoff: number): boolean {
  return !allBefore(file, cutoff) && file.minEventTime < cutoff;
}

/** SQL: the row's event is before `cutoff` (epoch ms, with its fraction), to the microsecond; a row without an event time never expires. */
const expiredRowSql = (cutoff: number): string => `coalesce(event_time < ${epochMsTimestampSql(`CAST(${String(cutoff)} AS DOUBLE)`)}, false)`;

/** What retention does with a file that may straddle the cutoff, read from its rows (see `retireExpired`). */
interface RowPlan {
  rows: number;
  /** Rows whose event is before the cutoff. */
  expired: number;
  /** The file of its other rows, published; made only for a file holding both, of a sync that cannot be replayed. */
  rewrite?: Replacement;
}

/** The file holds expired rows among others: it is replaced by a file of the others. */
const needsRewrite = (plan: RowPlan): boolean => plan.expired > 0 && plan.expired < plan.rows;

/** The log changed under a retention run: it names a file the run has not read that may hold expired rows (see `retireExpired`). */
class RetentionPlanStale extends Error {}

/** How often a retention run reads files again after the log changed under it before it gives up (transient). */
const RETENTION_ROUNDS = 10;

/**
 * Reads each of `files` that `plans` lacks (on S3 a downloaded copy): how many of its rows
 * expired. For one holding expired rows among others that is `rewritable` (its sync cannot be
 * replayed), writes and publishes the file of its other rows (`publishReplacement`, as
 * compaction's merge: same partition directory, columns, types and envelope values, the rows in
 * their stored order). A file planned earlier without its rewrite (its sync could be replayed
 * then) gets it once rewritable.
 */
async function planRowRetention(
  store: LakeStore,
  duck: Awaited<ReturnType<typeof openDuckDb>>,
  config: Partial<Pick<LakeConfig, 'compression' | 'row_group_size'>>,
  work: string,
  files: readonly LakeFile[],
  cutoff: number,
  rewritable: (file: LakeFile) => boolean,
  plans: Map<string, RowPlan>,
): Promise<void> {
  const expired = expiredRowSql(cutoff);
  try {
    for (const file of files) {
      const known = plans.get(file.path);
      if (known !== undefined && (known.rewrite !== undefined || !needsRewrite(known) || !rewritable(file))) continue;
      const local = await store.localCopy(file.path, join(work, 'in'));
      let plan = known;
      if (plan === undefined) {
        const [rows, old] = (await duck.connection.runAndReadAll(`SELECT count(*)::DOUBLE, count(*) FILTER (WHERE ${expired})::DOUBLE FROM read_parquet(${literal(local)}, hive_partitioning = false)`)).getRows()[0]!;
        plan = { rows: Number(rows), expired: Number(old) };
      }
      if (needsRewrite(plan) && rewritable(file)) {
        // No ORDER BY: one file's rows keep their stored order (DuckDB preserves insertion order).
        plan.rewrite = await publishReplacement(store, duck, config, work, [file], [local], async (source) => `SELECT * FROM ${source} WHERE NOT ${expired}`);
        if (plan.rewrite.file.rows !== plan.rows - plan.expired) {
          await discardReplacements(store, [plan.rewrite]);
          throw new TributaryError('fatal', { userMessage: `lake retention: the rewrite of ${file.path} holds ${plan.rewrite.file.rows} row(s), not ${plan.rows - plan.expired}` });
        }
      }
      plans.set(file.path, plan);
    }
  } finally {
    await rm(join(work, 'in'), { recursive: true, force: true });
  }
}

/** Deletes published replacements no entry names (best effort: an orphan sweep deletes one left), and releases their leases. */
async function discardReplacements(store: LakeStore, replacements: readonly Replacement[]): Promise<void> {
  if (replacements.length === 0) return;
  await store.delete(replacements.map((r) => r.file.path)).catch(() => undefined);
  for (const { lease } of replacements) {
    lease.settled();
    await lease.release();
  }
}

/**
 * After the commit of the entry naming `replacements` failed: their leases are released, so
 * the next orphan sweep takes a file no entry names at once (a held lease kept it for
 * LEASE_TTL_MS). The files are deleted first, unless the entry may be in the log
 * (`mayBeStored`: an attempt of it reached the store, whose answer was lost, see
 * `entryNotStored`): then they stay and the log decides, as a sweep deletes only files no
 * entry names.
 */
async function abandonReplacements(store: LakeStore, replacements: readonly Replacement[], mayBeStored: boolean): Promise<void> {
  if (!mayBeStored) return discardReplacements(store, replacements);
  for (const { lease } of replacements) {
    lease.settled();
    await lease.release();
  }
}

/**
 * Retention on an open store (see `applyRetention`): no row whose event is before the cutoff
 * stays visible, in the run's streams and tenant. A file whose events are all before it
 * (`allBefore`, or read so) is dropped; a file holding rows on both sides (a tenant's month,
 * a file compaction merged, a cutoff inside a day) is replaced by a file of its later rows
 * (`planRowRetention`), in the same log entry, whose trash record names the replaced files
 * for the grace period. The files to drop are chosen on the log's latest state at the moment
 * of committing: when another writer commits first (a compaction that merged expired files
 * into a new one), they are chosen again, so the merged file is dropped too rather than left
 * holding the expired rows. A rewrite replaces its source only while the log still has it;
 * when the log names a file the run has not read that may hold expired rows (a compaction
 * merged a straddling file), the entry is not written: the run reads the new files and
 * commits again (at most RETENTION_ROUNDS times, then fails as transient). Rewrites are
 * published under leases before the entry (so a concurrent orphan sweep leaves them), and
 * deleted when no entry names them.
 *
 * Files of syncs that may still be replayed (not completed since their commit: a crash
 * after it, LakeState.unclean) stay, reported as deferred, whether all or some of their rows
 * expired: the sync's resume reads their event ids (and quarantined records) to drop the
 * records it replays, and without them it wrote the expired rows again.
 *
 * Quarantined records expire as rows do, by event time, and also by the time they were
 * quarantined (see `quarantineRecordExpired`). A quarantine file whose records all expired
 * goes; one holding expired records among others is rewritten without them (the new file
 * replaces it in the same log entry, with the same session): removed only once all its
 * records expired, a file mixing ages (a backfill's old events with new ones, a full
 * refresh quarantining the same old record again each sync) kept expired records for as
 * long as the newest stayed. With `tenant`, only that tenant's records are expired, read as
 * the sync read it (see `quarantinedTenant`).
 */
export async function retireExpired(store: LakeStore, cutoff: number, options: Pick<RetentionOptions, 'stream' | 'tenant' | 'graceMs' | 'checkpointRetentionMs'> & { config?: LakeConfig }): Promise<RetentionResult> {
  const state = await loadLakeState(store);
  const filesDeleted = await emptyTrash(store, state, options.graceMs ?? DEFAULT_GRACE_MS);
  const session = `retention-${randomUUID()}`;
  const work = join(tmpdir(), `tributary-lake-retention-${randomUUID()}`);
  await createOwnedTempDir(work);
  let duck: Awaited<ReturnType<typeof openDuckDb>> | undefined;
  const plans = new Map<string, RowPlan>();
  try {
    const quarantine = await expiredQuarantine(store, state, cutoff, { ...options, session, work });
    const isReplayable = (current: LakeState, q: QuarantineFile): boolean => q.session !== undefined && current.unclean.get(q.stream)?.has(q.session) === true;
    // Published before the entry that names them; one the entry leaves out is deleted after it.
    // When the run fails they are deleted, unless its entry may be in the log (then they stay:
    // holding only kept records, and invisible unless the entry names them).
    const published = quarantine.rewrites.filter((r) => !isReplayable(state, r.source));
    const inScope = (f: LakeFile): boolean => (options.stream === undefined || f.stream === options.stream) && (options.tenant === undefined || f.tenant === options.tenant);
    const replayable = (current: LakeState, f: LakeFile): boolean => f.sessions.some((s) => current.unclean.get(f.stream)?.has(s) === true);
    const straddling = (current: LakeState): LakeFile[] => [...current.files.values()].filter((f) => inScope(f) && mayStraddle(f, cutoff));
    // Read, and rewritten when it must be (a rewrite waits while its sync may be replayed).
    const planned = (current: LakeState, f: LakeFile): boolean => {
      const plan = plans.get(f.path);
      return plan !== undefined && (plan.rewrite !== undefined || !needsRewrite(plan) || replayable(current, f));
    };
    let expired: LakeFile[] = [];
    let deferred: LakeFile[] = [];
    let partlyDeferred: LakeFile[] = [];
    let rewrittenFiles: LakeFile[] = [];
    let quarantineExpired: QuarantineFile[] = [];
    let rewritten: QuarantineRewrite[] = [];
    let quarantineDeferred = 0;
    const draft = (current: LakeState): EntryDraft | undefined => {
      const straddlers = straddling(current);
      // Read from its rows: every row before the cutoff, the latest in the cutoff's own millisecond.
      const wholly = straddlers.filter((f) => plans.get(f.path)!.expired === f.rows);
      const candidates = [...[...current.files.values()].filter((f) => allBefore(f, cutoff) && inScope(f)), ...wholly];
      expired = candidates.filter((f) => !replayable(current, f));
      deferred = candidates.filter((f) => replayable(current, f));
      const partly = straddlers.filter((f) => needsRewrite(plans.get(f.path)!));
      rewrittenFiles = partly.filter((f) => !replayable(current, f));
      partlyDeferred = partly.filter((f) => replayable(current, f));
      const quarantined = current.quarantine.filter((q) => quarantine.removable.has(q.path));
      quarantineExpired = quarantined.filter((q) => !isReplayable(current, q));
      // A rewrite replaces its source only while the log still has it (another run may have removed or rewritten it).
      const live = new Set(current.quarantine.map((q) => q.path));
      const rewrites = quarantine.rewrites.filter((r) => live.has(r.source.path));
      rewritten = rewrites.filter((r) => published.includes(r) && !isReplayable(current, r.source));
      quarantineDeferred = quarantined.length - quarantineExpired.length + rewrites.filter((r) => isReplayable(current, r.source)).length;
      const remove = [...expired.map((f) => f.path), ...rewrittenFiles.map((f) => f.path), ...quarantineExpired.map((q) => q.path), ...rewritten.map((r) => r.source.path)];
      if (remove.length === 0) return undefined;
      const add = rewrittenFiles.map((f) => plans.get(f.path)!.rewrite!.file);
      return { session, kind: 'retention', remove, ...(add.length > 0 ? { add } : {}), ...(rewritten.length > 0 ? { quarantine: rewritten.map((r) => r.file) } : {}) };
    };
    let entry: LogEntry | undefined;
    // A failure that may have left the entry in the log although the run failed (its answer lost).
    let mayBeStored = false;
    try {
      for (const r of published) await store.putFile(r.file.path, r.localPath);
      for (let round = 1; ; round++) {
        const unread = straddling(state).filter((f) => !planned(state, f));
        if (unread.length > 0) {
          duck ??= await openDuckDb(join(work, 'spill'));
          await planRowRetention(store, duck, options.config ?? {}, work, unread, cutoff, (f) => !replayable(state, f), plans);
        }
        const leases = [...plans.values()].flatMap((p) => (p.rewrite !== undefined ? [p.rewrite.lease] : []));
        try {
          entry = await commitRemoval(
            store,
            state,
            draft,
            (current) => {
              if (straddling(current).some((f) => !planned(current, f))) throw new RetentionPlanStale();
            },
            leases,
          );
          break;
        } catch (error) {
          if (!(error instanceof RetentionPlanStale)) {
            mayBeStored = !entryNotStored(error);
            throw error;
          }
          if (round >= RETENTION_ROUNDS) throw new TributaryError('transient', { userMessage: `lake retention: the commit log kept changing under ${RETENTION_ROUNDS} runs; run retention again` });
          // The log changed (`state` is its latest): rewrites of files it no longer names are of no use.
          for (const [path, plan] of plans) {
            if (state.files.has(path)) continue;
            plans.delete(path);
            if (plan.rewrite !== undefined) await discardReplacements(store, [plan.rewrite]);
          }
        }
      }
    } catch (error) {
      // Every rewrite's lease released (an orphan sweep may take a file no entry names at
      // once); the files deleted when no entry can name them (see abandonReplacements).
      const rewrites = [...plans.values()].flatMap((p) => (p.rewrite !== undefined ? [p.rewrite] : []));
      await abandonReplacements(store, rewrites, mayBeStored);
      if (!mayBeStored && published.length > 0) await store.delete(published.map((r) => r.file.path)).catch(() => undefined);
      throw error;
    }
    const removed = entry !== undefined;
    const unused = published.filter((r) => !removed || !rewritten.includes(r)).map((r) => r.file.path);
    if (unused.length > 0) await store.delete(unused).catch(() => undefined);
    const used = new Set(removed ? rewrittenFiles.map((f) => f.path) : []);
    const rewrites = [...plans].flatMap(([path, plan]) => (plan.rewrite !== undefined ? [{ path, rewrite: plan.rewrite }] : []));
    await discardReplacements(store, rewrites.filter((r) => !used.has(r.path)).map((r) => r.rewrite));
    for (const { rewrite } of rewrites.filter((r) => used.has(r.path))) {
      rewrite.lease.settled();
      await rewrite.lease.release();
    }
    const rowsExpired = (f: LakeFile): number => plans.get(f.path)!.expired;
    return {
      filesRemoved: removed ? expired.length : 0,
      filesRewritten: removed ? rewrittenFiles.length : 0,
      rowsRemoved: removed ? expired.reduce((n, f) => n + f.rows, 0) + rewrittenFiles.reduce((n, f) => n + rowsExpired(f), 0) : 0,
      filesDeleted,
      filesDeferred: deferred.length + partlyDeferred.length,
      rowsDeferred: deferred.reduce((n, f) => n + f.rows, 0) + partlyDeferred.reduce((n, f) => n + rowsExpired(f), 0),
      quarantineFilesRemoved: removed ? quarantineExpired.length : 0,
      quarantineFilesRewritten: removed ? rewritten.length : 0,
      quarantineRecordsRemoved: removed ? quarantineExpired.reduce((n, q) => n + q.records, 0) + rewritten.reduce((n, r) => n + r.dropped, 0) : 0,
      quarantineFilesDeferred: quarantineDeferred,
      // In this order: see pruneLog.
      logEntriesDeleted: await pruneLog(store),
      checkpointsDeleted: await pruneCheckpoints(store, options.checkpointRetentionMs),
    };
  } finally {
    duck?.close();
    await rm(work, { recursive: true, force: true });
  }
}

/** A quarantine file holding expired records among others, rewritten without them (see `retireExpired`). */
interface QuarantineRewrite {
  source: QuarantineFile;
  /** The file of the records kept: same stream and session, a new path. */
  file: QuarantineFile;
  localPath: string;
  /** Expired records left out. */
  dropped: number;
}

/**
 * Whether a quarantined record (a line of a quarantine file) expired at `cutoff`: quarantined
 * before it (`quarantined_at`), or an event before it, as rows expire (`allBefore`: its
 * event time, stored in whole ms, must end before the cutoff). The event time is the one the
 * sync read from the record (`event_time`, null when it had none of its own); a line of an
 * older lake has none stored, and the record's own fields are read: the stream's
 * `event_time_field` in `config`, else `event_time`, else the CDC commit time. An
 * unreadable time never expires a record.
 */
function quarantineRecordExpired(line: { quarantined_at?: unknown; event_time?: unknown; record?: unknown }, cutoff: number, stream: string, config: LakeConfig | undefined): boolean {
  const at = typeof line.quarantined_at === 'string' ? Date.parse(line.quarantined_at) : Number.NaN;
  if (at < cutoff) return true;
  let eventMs: number | undefined;
  if (typeof line.event_time === 'string') eventMs = parseDateTimeMs(line.event_time);
  else if (line.event_time === undefined) {
    const record = typeof line.record === 'object' && line.record !== null ? (line.record as Record<string, unknown>) : {};
    const field = config?.streams?.[stream]?.event_time_field ?? ('event_time' in record ? 'event_time' : undefined);
    eventMs = ownEventTimeMs(record, field !== undefined ? { eventTimeField: field } : {});
  }
  return eventMs !== undefined && Math.floor(eventMs) + 1 <= cutoff;
}

/**
 * The quarantine files of the run's streams whose every record expired (`removable`), and
 * those holding expired records among others, each written without them to a local file in
 * `work` (`rewrites`). Reads each file line by line (one can be larger than a string holds;
 * on S3 a downloaded copy); kept lines are copied as they are.
 */
async function expiredQuarantine(
  store: LakeStore,
  state: LakeState,
  cutoff: number,
  options: Pick<RetentionOptions, 'stream' | 'tenant'> & { config?: LakeConfig; session: string; work: string },
): Promise<{ removable: Set<string>; rewrites: QuarantineRewrite[] }> {
  const removable = new Set<string>();
  const rewrites: QuarantineRewrite[] = [];
  const files = state.quarantine.filter((q) => options.stream === undefined || q.stream === options.stream);
  await mkdir(join(options.work, 'rewrite'), { recursive: true });
  for (const file of files) {
    const name = `${options.session}-${rewrites.length + 1}.jsonl`;
    const localPath = join(options.work, 'rewrite', name);
    const out = await open(localPath, 'w');
    let records = 0;
    let dropped = 0;
    try {
      const lines = createInterface({ input: createReadStream(await store.localCopy(file.path, join(options.work, 'in'))), crlfDelay: Infinity });
      let chunk = '';
      for await (const line of lines) {
        if (!line.trim()) continue;
        records++;
        const parsed = JSON.parse(line) as { quarantined_at?: unknown; event_time?: unknown; tenant_id?: unknown; record?: unknown };
        const expired = quarantineRecordExpired(parsed, cutoff, file.stream, options.config) && (options.tenant === undefined || quarantinedTenant(options.config, file.stream, parsed) === options.tenant);
        if (expired) {
          dropped++;
          continue;
        }
        chunk += `${line}\n`;
        if (chunk.length >= 1 << 20) {
          await out.write(chunk);
          chunk = '';
        }
      }
      if (chunk.length > 0) await out.write(chunk);
    } finally {
      await out.close();
      await rm(join(options.work, 'in'), { recursive: true, force: true });
    }
    if (records > 0 && dropped === records) removable.add(file.path);
    if (dropped === 0 || dropped === records) {
      await rm(localPath, { force: true });
      continue;
    }
    const path = `${file.path.slice(0, file.path.lastIndexOf('/') + 1)}${name}`;
    rewrites.push({ source: file, file: { path, stream: file.stream, records: records - dropped, ...(file.session !== undefined ? { session: file.session } : {}) }, localPath, dropped });
  }
  return { removable, rewrites };
}

/**
 * The tenant a quarantined record belongs to, as the sync derived it (see `tenantOf`):
 * undefined when none (a record quarantined for having no tenant). Lines carry it
 * (`tenant_id`); for lines written before they did, it is derived again from the record with
 * the retention's lake config (pass the sync's), looking the stream up by its key only — a
 * sync that configured it by its bare name (`orders` for `public.orders`) had derived another
 * tenant there, and one tenant's retention removed another tenant's records.
 */
function quarantinedTenant(config: LakeConfig | undefined, stream: string, line: { tenant_id?: unknown; record?: unknown }): string | undefined {
  if ('tenant_id' in line) return typeof line.tenant_id === 'string' ? line.tenant_id : undefined;
  const record = line.record;
  const own = config?.streams?.[stream];
  if (own?.tenant_id !== undefined) return own.tenant_id;
  const value = typeof record === 'object' && record !== null ? (record as Record<string, unknown>)[own?.tenant_id_field ?? 'tenant_id'] : undefined;
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return config?.default_tenant;
}
