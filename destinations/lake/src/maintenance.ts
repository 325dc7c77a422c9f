import { randomUUID } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, parseDateTimeMs, TributaryError } from '@tributary/core';
import { commitEntry, loadLakeState, type EntryDraft, type LakeFile, type LakeState, type LogEntry } from './commit-log.js';
import { lakeConfigSchema, type LakeConfig } from './config.js';
import { ident, literal, openDuckDb } from './duck.js';
import { streamDir } from './layout.js';
import { openStore } from './storage/open-store.js';
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
 */
async function commitRemoval(store: LakeStore, state: LakeState, entry: EntryDraft | ((state: LakeState) => EntryDraft | undefined), validate?: (state: LakeState) => void): Promise<LogEntry | undefined> {
  let record: string | undefined;
  const dropRecord = async (): Promise<void> => {
    // Best effort: a record left behind only names files the log still has, or files another commit removed.
    if (record !== undefined) await store.delete([record]).catch(() => undefined);
    record = undefined;
  };
  let refused = false;
  let committed: LogEntry | undefined;
  try {
    committed = await commitEntry(store, state, entry, {
      validate: (current) => {
        try {
          validate?.(current);
        } catch (error) {
          refused = true;
          throw error;
        }
      },
      beforeWrite: async (draft) => {
        const previous = record;
        record = await trash(store, draft.remove ?? []);
        if (previous !== undefined) await store.delete([previous]).catch(() => undefined);
      },
    });
  } catch (error) {
    // Refused by `validate` after a lost race: no attempt of this entry was written. Any
    // other error keeps the record: the entry may have been written although its answer was lost.
    if (refused) await dropRecord();
    throw error;
  }
  if (committed === undefined) await dropRecord();
  return committed;
}

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
  for (const key of expired) {
    const paths = (await trashedPaths(store, key)).filter((path) => !visible.files.has(path) && !kept.has(path));
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
 * Data files no commit names: published by a session that crashed before its log entry.
 * Readers never see them; they are deleted once older than `orphanAgeMs` (a live session
 * commits within seconds of publishing, so an hour-old unnamed file can only be a leftover).
 */
async function deleteOrphans(store: LakeStore, state: LakeState, orphanAgeMs: number): Promise<number> {
  const trashed = new Set<string>();
  for (const key of await store.list(TRASH_PREFIX)) for (const path of await trashedPaths(store, key)) trashed.add(path);
  const orphans = (await store.listDetailed('data/'))
    .filter((o) => LAKE_DATA_KEY.test(o.key) && !state.files.has(o.key) && !trashed.has(o.key) && Date.now() - o.modifiedMs >= orphanAgeMs)
    .map((o) => o.key);
  await store.delete(orphans);
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
}

export interface CompactionResult {
  partitions: number;
  filesBefore: number;
  filesAfter: number;
  rows: number;
  duplicatesDropped: number;
  filesDeleted: number;
  orphansDeleted: number;
}

/**
 * Merges each partition's small files into one (per stream, tenant and day: never across
 * tenants), dropping rows stored again with every column equal but the ingest time (a
 * replayed row; its last copy stays). Rows with one id but different event times stay: they are the same record
 * content seen at two times (a value changed and changed back, in a stream without
 * positions, whose ids hash the record), and a point-in-time read needs both; so do rows
 * with one id and one event time but different values (two changes within one cursor value). Commits with a conditional log
 * entry that checks the input files are still visible, so it can run while a sync writes.
 */
export async function compactLake(rawConfig: LakeConfig | Record<string, unknown>, options: CompactionOptions = {}): Promise<CompactionResult> {
  const config = parseConfig(lakeConfigSchema, rawConfig, 'lake config');
  const store = openStore(config);
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
  const result: CompactionResult = { partitions: 0, filesBefore: 0, filesAfter: 0, rows: 0, duplicatesDropped: 0, filesDeleted: 0, orphansDeleted: 0 };
  try {
    const state = await loadLakeState(store);
    result.filesDeleted = await emptyTrash(store, state, options.graceMs ?? DEFAULT_GRACE_MS);
    result.orphansDeleted = await deleteOrphans(store, state, options.orphanAgeMs ?? DEFAULT_ORPHAN_AGE_MS);
    const groups = new Map<string, LakeFile[]>();
    for (const f of state.files.values()) {
      if (options.stream !== undefined && f.stream !== options.stream) continue;
      if (options.tenant !== undefined && f.tenant !== options.tenant) continue;
      if (f.rows >= (options.targetRows ?? 1_000_000)) continue;
      // Files holding rows of a sync that may be replayed (see LakeState.unclean) merge only
      // among themselves: a new session drops every id of such files as a replay, so a file
      // merging them with completed syncs' rows widened that window to those rows, and a
      // later change that shares an earlier row's id (a value changed back, ids hashing the
      // record) was dropped on the resume.
      const unclean = state.unclean.get(f.stream);
      const replayable = f.sessions.some((session) => unclean?.has(session) === true);
      const key = JSON.stringify([f.stream, f.tenant, f.partition, replayable]);
      groups.set(key, [...(groups.get(key) ?? []), f]);
    }
    for (const files of groups.values()) {
      if (files.length < (options.minFiles ?? 4)) continue;
      const first = files[0]!;
      const id = `compact-${randomUUID()}`;
      const dir = join(work, id);
      await mkdir(dir, { recursive: true });
      const locals: string[] = [];
      for (const f of files) locals.push(await store.localCopy(f.path, join(work, 'in')));
      const out = join(dir, `${id}.parquet`);
      const source = `read_parquet([${locals.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`;
      // A replay is the same record stored again: every column equal but the ingest time.
      // The last stored copy stays: it is the one point-in-time reads return (they order
      // equal rows by ingest time, newest first), so their answers do not change with a
      // compaction. Event id and event time alone do not make a replay: an
      // incremental cursor coarser than the source's changes (a row updated twice within one
      // `updated_at` value) gives two different changes one id and one time, and dropping the
      // later one changed point-in-time answers (the earlier value came back).
      const columns = (await duck.connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRows().map((r) => String(r[0]));
      const identity = columns.filter((c) => c !== 'ingest_time').map(ident).join(', ');
      await duck.connection.run(
        `COPY (SELECT * FROM ${source} QUALIFY row_number() OVER (PARTITION BY ${identity} ORDER BY ingest_time DESC) = 1 ORDER BY event_time) TO ${literal(out)} ` +
          `(FORMAT parquet, COMPRESSION ${config.compression ?? 'zstd'}, ROW_GROUP_SIZE ${config.row_group_size ?? 122_880})`,
      );
      const stats = (await duck.connection.runAndReadAll(`SELECT count(*)::DOUBLE, epoch_ms(min(event_time))::DOUBLE, epoch_ms(max(event_time))::DOUBLE, max(schema_version)::DOUBLE FROM read_parquet(${literal(out)})`)).getRows()[0]!;
      const rows = Number(stats[0]);
      const dirParts = first.path.split('/').slice(0, -1).join('/');
      const key = `${dirParts}/${id}.parquet`;
      if (!key.startsWith(`data/${streamDir(first.stream)}/`)) throw new TributaryError('fatal', { userMessage: `lake: unexpected file path ${first.path}` });
      const merged: LakeFile = {
        path: key,
        stream: first.stream,
        tenant: first.tenant,
        partition: first.partition,
        rows,
        bytes: (await stat(out)).size,
        schemaVersion: Number(stats[3]),
        minEventTime: Number(stats[1]),
        maxEventTime: Number(stats[2]),
        sessions: [...new Set(files.flatMap((f) => f.sessions))],
      };
      await store.putFile(key, out);
      const removed = files.map((f) => f.path);
      await commitRemoval(store, state, { session: id, kind: 'compact', add: [merged], remove: removed }, (s: LakeState) => {
        const gone = removed.filter((p) => !s.files.has(p));
        if (gone.length > 0) throw new TributaryError('transient', { userMessage: `lake compaction: ${gone.length} input file(s) were removed by a concurrent commit; run compaction again` });
      });
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
  /** Or: drop every file whose events are all before this time (ISO-8601, UTC when it has no offset; Date or epoch ms). */
  before?: string | Date | number;
  stream?: string;
  tenant?: string;
  graceMs?: number;
}

export interface RetentionResult {
  filesRemoved: number;
  rowsRemoved: number;
  filesDeleted: number;
}

/** Drops whole files (a tenant's day, with the default partitioning) whose events are all older than the cutoff. */
export async function applyRetention(rawConfig: LakeConfig | Record<string, unknown>, options: RetentionOptions): Promise<RetentionResult> {
  const config = parseConfig(lakeConfigSchema, rawConfig, 'lake config');
  let cutoff: number;
  // A string is read as every other time the lake takes (event times, as-of): without an
  // offset it is UTC. Date.parse read it in the host's time zone, so west of UTC a cutoff of
  // midnight dropped the first hours of the day after it.
  if (options.before !== undefined) cutoff = options.before instanceof Date ? options.before.getTime() : typeof options.before === 'number' ? options.before : parseDateTimeMs(options.before);
  else if (options.keepDays !== undefined) {
    const today = new Date();
    cutoff = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()) - options.keepDays * 86_400_000;
  } else throw new TributaryError('config', { userMessage: 'Retention needs --keep-days N or --before <ISO time>' });
  if (!Number.isFinite(cutoff)) throw new TributaryError('config', { userMessage: `Retention cutoff ${JSON.stringify(options.before)} is not a date-time` });
  const store = openStore(config);
  try {
    return await retireExpired(store, cutoff, options);
  } finally {
    store.close();
  }
}

/**
 * Retention on an open store (see `applyRetention`). The files to drop are chosen on the
 * log's latest state at the moment of committing: when another writer commits first (a
 * compaction that merged expired files into a new one), they are chosen again, so the
 * merged file is dropped too rather than left holding the expired rows.
 */
export async function retireExpired(store: LakeStore, cutoff: number, options: Pick<RetentionOptions, 'stream' | 'tenant' | 'graceMs'>): Promise<RetentionResult> {
  const state = await loadLakeState(store);
  const filesDeleted = await emptyTrash(store, state, options.graceMs ?? DEFAULT_GRACE_MS);
  const session = `retention-${randomUUID()}`;
  let expired: LakeFile[] = [];
  const entry = await commitRemoval(store, state, (current) => {
    expired = [...current.files.values()].filter(
      (f) => f.maxEventTime < cutoff && (options.stream === undefined || f.stream === options.stream) && (options.tenant === undefined || f.tenant === options.tenant),
    );
    return expired.length > 0 ? { session, kind: 'retention', remove: expired.map((f) => f.path) } : undefined;
  });
  if (!entry) return { filesRemoved: 0, rowsRemoved: 0, filesDeleted };
  return { filesRemoved: expired.length, rowsRemoved: expired.reduce((n, f) => n + f.rows, 0), filesDeleted };
}
