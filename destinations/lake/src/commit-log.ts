import { randomUUID } from 'node:crypto';
import { TributaryError } from '@tributary/core';
import { momentNow, msSince, type Moment } from './moment.js';
import type { LakeStore } from './storage/store.js';

/**
 * The lake's commit log: what is visible is exactly the data files that the log says were
 * added and not removed. Readers never list data directories, so a file that was uploaded
 * (or renamed into place) but whose commit never happened is invisible, and a crash at any
 * point leaves either the old or the new snapshot.
 *
 * Layout: `_tributary/log/<seq, 20 digits>.json`, one entry per commit, each created with a
 * conditional write (create-if-absent). Two writers racing for one sequence number: one
 * wins, the other re-reads the log and retries with the next number (appends never
 * conflict; compaction checks that the files it replaces are still there). Every
 * CHECKPOINT_EVERY commits the whole state is also written to `_tributary/checkpoints/`,
 * so opening the lake reads one checkpoint plus the entries after it. Maintenance deletes
 * the entries an hour-old checkpoint covers (see `pruneLog`).
 */
export const LOG_PREFIX = '_tributary/log/';
export const CHECKPOINT_PREFIX = '_tributary/checkpoints/';
const CHECKPOINT_EVERY = 50;

/** One visible Parquet file. */
export interface LakeFile {
  /** Key relative to the lake root. */
  path: string;
  stream: string;
  tenant: string;
  /** Partition value below the tenant (`2024-05-01`, `2024-05`, or '' for tenant-only). */
  partition: string;
  rows: number;
  bytes: number;
  /** Highest payload schema version of the rows in the file. */
  schemaVersion: number;
  /** Event time range (epoch ms) of the rows. */
  minEventTime: number;
  maxEventTime: number;
  /** Sync sessions whose rows the file holds (see `LakeState.unclean`). */
  sessions: string[];
}

/** A quarantine file: records refused with their reasons (JSON lines). */
export interface QuarantineFile {
  path: string;
  stream: string;
  records: number;
  /** The session that wrote it (absent in files of older lakes). */
  session?: string;
}

export interface LogEntry {
  seq: number;
  at: string;
  session: string;
  kind: 'append' | 'complete' | 'compact' | 'retention';
  add?: LakeFile[];
  remove?: string[];
  quarantine?: QuarantineFile[];
  /** `complete`: streams whose sync completed, so none of their rows will ever be replayed. */
  streams?: string[];
  /**
   * `append`, `complete`: the sync's connection (see ConnectorContext.connection), absent
   * when the writer did not know it (older lakes, sessions opened outside a sync). A
   * `complete` ends the replay window of its own connection's sessions only (see
   * LakeState.unclean).
   */
  connection?: string;
  /**
   * An id the writer keeps for one commit across its retries. An attempt can be stored
   * although its writer saw it fail (every request of it lost its answer); the retry then
   * finds this id in the log and stops there, instead of logging the same files again.
   */
  commit?: string;
}

export interface LakeState {
  seq: number;
  files: Map<string, LakeFile>;
  quarantine: QuarantineFile[];
  /**
   * Per stream, the sessions that appended rows or quarantined records since the stream's
   * last completed sync. Only their records can be delivered again (the runtime replays
   * records after the last committed checkpoint, and a completed sync committed its last
   * one), so a new session loads the event ids of exactly these files, and the identities
   * of exactly these quarantined records, to drop replays.
   *
   * Connections: several connections (sync files, each with its own state) may write one
   * stream. A completed sync ends the replay window of its own connection's sessions, and of
   * sessions whose connection is not known; one without a known connection ends every
   * session's (as all did before connections were recorded). Otherwise connection B
   * completing a sync ended the window of connection A's sync that crashed after a commit,
   * and A's resume stored its replayed records a second time.
   */
  unclean: Map<string, Set<string>>;
  /** The connection of each session in `unclean` that recorded one. */
  connections: Map<string, string>;
}

interface Checkpoint {
  seq: number;
  files: LakeFile[];
  quarantine: QuarantineFile[];
  unclean: Record<string, string[]>;
  /** Absent in checkpoints written before connections were recorded. */
  connections?: Record<string, string>;
}

const seqKey = (prefix: string, seq: number): string => `${prefix}${String(seq).padStart(20, '0')}.json`;
const decoder = new TextDecoder();

export function emptyLakeState(): LakeState {
  return { seq: 0, files: new Map(), quarantine: [], unclean: new Map(), connections: new Map() };
}

export function applyEntry(state: LakeState, entry: LogEntry): void {
  // A sync's appends (rows or quarantined records) may be replayed until it completes.
  const unclean = (stream: string): void => {
    if (entry.kind !== 'append') return;
    const set = state.unclean.get(stream) ?? new Set<string>();
    set.add(entry.session);
    state.unclean.set(stream, set);
    if (entry.connection !== undefined) state.connections.set(entry.session, entry.connection);
  };
  for (const path of entry.remove ?? []) state.files.delete(path);
  for (const file of entry.add ?? []) {
    state.files.set(file.path, file);
    unclean(file.stream);
  }
  for (const q of entry.quarantine ?? []) {
    state.quarantine.push(q);
    unclean(q.stream);
  }
  if (entry.kind === 'retention') {
    const removed = new Set(entry.remove ?? []);
    state.quarantine = state.quarantine.filter((q) => !removed.has(q.path));
  }
  if (entry.kind === 'complete') completeStreams(state, entry.streams ?? [], entry.connection);
  state.seq = entry.seq;
}

/** Ends the replay window of `connection`'s sessions on `streams` (see LakeState.unclean). */
function completeStreams(state: LakeState, streams: readonly string[], connection: string | undefined): void {
  for (const stream of streams) {
    const sessions = state.unclean.get(stream);
    if (!sessions) continue;
    for (const session of sessions) {
      const own = state.connections.get(session);
      if (connection === undefined || own === undefined || own === connection) sessions.delete(session);
    }
    if (sessions.size === 0) state.unclean.delete(stream);
  }
  // Forget the connections of sessions no longer in any window.
  const open = new Set<string>();
  for (const sessions of state.unclean.values()) for (const session of sessions) open.add(session);
  for (const session of state.connections.keys()) if (!open.has(session)) state.connections.delete(session);
}

function parse<T>(bytes: Uint8Array, key: string): T {
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch (error) {
    throw new TributaryError('fatal', { userMessage: `The lake's commit log entry ${key} is not valid JSON: the lake is damaged; restore it from a backup`, cause: error });
  }
}

/**
 * When each state was last proven current (the start of the listing that found its last
 * entry and applied every entry after it, or of the conditional create of its own newest
 * entry; on both clocks, see moment.ts). See `pruneLog` for why a writer needs this.
 */
const provenAt = new WeakMap<LakeState, Moment>();

/**
 * A state proven current less than this long ago may create its next entry directly; an
 * older one reads the log first. Half of LOG_PRUNE_AGE_MS: the other half is the margin for
 * a stalled process and for the clock of the store (by which entries age) and this
 * machine's clocks, the same margin as leases take (see LEASE_LAPSE_MS).
 */
const LOG_FRESH_MS = 30 * 60_000;

/** Attempts at reading a consistent state while maintenance prunes the log, before giving up. */
const LOAD_ATTEMPTS = 3;

/** Reads the latest checkpoint and every log entry after it. */
export async function loadLakeState(store: LakeStore): Promise<LakeState> {
  const state = emptyLakeState();
  await reload(store, state);
  return state;
}

/**
 * Makes `state` the lake's current one: the newest checkpoint plus the entries after it
 * (returned). A checkpoint or entry that goes between the listing and the read (pruned by
 * maintenance meanwhile) makes it start again from a newer checkpoint.
 */
async function reload(store: LakeStore, state: LakeState): Promise<LogEntry[]> {
  let problem: LogProblem = { gap: false, text: '' };
  for (let attempt = 0; attempt < LOAD_ATTEMPTS; attempt++) {
    const started = momentNow();
    const fresh = emptyLakeState();
    const last = (await store.list(CHECKPOINT_PREFIX)).filter((key) => checkpointSeq(key) !== undefined).pop();
    if (last !== undefined) {
      const bytes = await store.get(last);
      if (bytes === undefined) {
        problem = { gap: false, text: `its newest checkpoint ${last} went while it was being read` };
        continue;
      }
      applyCheckpoint(fresh, parse<Checkpoint>(bytes, last));
    }
    const read = await readEntriesAfter(store, fresh);
    if (Array.isArray(read)) {
      Object.assign(state, fresh);
      provenAt.set(state, started);
      return read;
    }
    problem = read;
  }
  // A gap that remains after reading from the newest checkpoint is no pruning: entries are lost.
  if (problem.gap) throw new TributaryError('fatal', { userMessage: `The lake's commit log has a gap: ${problem.text}: the lake is damaged; restore it from a backup` });
  throw new TributaryError('transient', { userMessage: `The lake's commit log changed while it was being read (${LOAD_ATTEMPTS} times; last: ${problem.text}); retrying` });
}

function applyCheckpoint(state: LakeState, cp: Checkpoint): void {
  state.seq = cp.seq;
  for (const f of cp.files) state.files.set(f.path, f);
  state.quarantine = cp.quarantine;
  for (const [stream, sessions] of Object.entries(cp.unclean)) state.unclean.set(stream, new Set(sessions));
  for (const [session, connection] of Object.entries(cp.connections ?? {})) state.connections.set(session, connection);
}

/** Why a read of the log found it incomplete: a gap before a later entry, or an object gone between its listing and its read. */
interface LogProblem {
  gap: boolean;
  text: string;
}

/** The sequence number in a log entry's key (undefined for other keys). */
function logSeq(key: string): number | undefined {
  const digits = key.slice(LOG_PREFIX.length, -'.json'.length);
  return key.startsWith(LOG_PREFIX) && key.endsWith('.json') && /^[0-9]{20}$/.test(digits) ? Number(digits) : undefined;
}

/**
 * Applies the log entries after `state.seq` to `state` and returns them; or says which entry
 * the log no longer holds (pruned since this state was read, see `pruneLog`; or lost).
 * Pruning keeps the entry of the checkpoint it prunes below, so an entry this state needs
 * that was pruned always shows as a gap before a later entry.
 */
async function readEntriesAfter(store: LakeStore, state: LakeState): Promise<LogEntry[] | LogProblem> {
  const applied: LogEntry[] = [];
  for (const key of await store.list(LOG_PREFIX, state.seq === 0 ? undefined : seqKey(LOG_PREFIX, state.seq))) {
    const seq = logSeq(key);
    if (seq === undefined || seq <= state.seq) continue;
    if (seq !== state.seq + 1) return { gap: true, text: `entry ${state.seq + 1} is missing before entry ${seq}` };
    const bytes = await store.get(key);
    if (bytes === undefined) return { gap: false, text: `entry ${seq} went while it was being read` };
    const entry = parse<LogEntry>(bytes, key);
    if (entry.seq !== seq) throw new TributaryError('fatal', { userMessage: `The lake's commit log entry ${key} names sequence number ${entry.seq}: the lake is damaged; restore it from a backup` });
    applyEntry(state, entry);
    applied.push(entry);
  }
  return applied;
}

/** The sequence number in a checkpoint's key (undefined for other keys). */
function checkpointSeq(key: string): number | undefined {
  const digits = key.slice(CHECKPOINT_PREFIX.length, -'.json'.length);
  return key.startsWith(CHECKPOINT_PREFIX) && key.endsWith('.json') && /^[0-9]{20}$/.test(digits) ? Number(digits) : undefined;
}

/** How long a checkpoint stays once a newer one exists (see `pruneCheckpoints`). */
export const DEFAULT_CHECKPOINT_RETENTION_MS = 60 * 60_000;

/**
 * Deletes the checkpoints that a newer one replaces and that were written at least
 * `retentionMs` ago; the newest always stays. Each checkpoint holds the whole state (every
 * visible file), and one is written every CHECKPOINT_EVERY commits: a sync committing every
 * 5 s wrote ~350 a day, each as large as the lake's file list, and none was ever deleted.
 * Opening the lake reads only the newest; one that listed an older checkpoint just before it
 * went lists them again. Run by compaction and retention, after `pruneLog`.
 */
export async function pruneCheckpoints(store: LakeStore, retentionMs = DEFAULT_CHECKPOINT_RETENTION_MS): Promise<number> {
  const checkpoints = (await store.listDetailed(CHECKPOINT_PREFIX)).filter((c) => checkpointSeq(c.key) !== undefined);
  const newest = Math.max(-1, ...checkpoints.map((c) => checkpointSeq(c.key)!));
  const now = Date.now();
  const replaced = checkpoints.filter((c) => checkpointSeq(c.key)! < newest && now - c.modifiedMs >= retentionMs).map((c) => c.key);
  await store.delete(replaced);
  return replaced.length;
}

/** Log entries stay until a checkpoint that covers them is this old (by the store's clock). Not configurable: writers rely on it (see LOG_FRESH_MS). */
export const LOG_PRUNE_AGE_MS = 60 * 60_000;

/**
 * Deletes the log entries below the newest checkpoint written at least LOG_PRUNE_AGE_MS ago
 * (`now`: this machine's clock, as the store's modification times are given); that
 * checkpoint's own entry stays. Returns how many went. Without it the log kept one object
 * per commit forever (a sync committing every 5 s adds ~17,000 a day), and opening a local
 * lake listed them all.
 *
 * Why it is safe:
 * - Readers and writers that read the lake since then start at a checkpoint at least as new,
 *   so they need none of those entries.
 * - A state read before may need them: listing the log after its own last entry, it finds a
 *   gap before the kept entry (or an entry gone before it is read: see `readEntriesAfter`),
 *   and reads the lake again from the newest checkpoint.
 * - A writer could otherwise create a pruned sequence number again (its conditional create
 *   only sees that the key is free) and commit under a checkpoint that readers start after:
 *   its commit would be lost. Entries go only once they are an hour old, and a writer creates
 *   its next entry only within half an hour of proving its state current (LOG_FRESH_MS), so
 *   the number it creates was never taken and pruned.
 * - Checkpoints are created only if absent, so no writer ever replaces one.
 *
 * Run by compaction and retention, before `pruneCheckpoints` (which deletes the checkpoints
 * older than an hour that a newer one replaces, so that afterwards none of those would be
 * left to prune below).
 */
export async function pruneLog(store: LakeStore, now = Date.now()): Promise<number> {
  let anchor = -1;
  for (const c of await store.listDetailed(CHECKPOINT_PREFIX)) {
    const seq = checkpointSeq(c.key);
    if (seq !== undefined && now - c.modifiedMs >= LOG_PRUNE_AGE_MS) anchor = Math.max(anchor, seq);
  }
  if (anchor < 0) return 0;
  const covered = (await store.list(LOG_PREFIX)).filter((key) => {
    const seq = logSeq(key);
    return seq !== undefined && seq < anchor;
  });
  await store.delete(covered);
  return covered.length;
}

/**
 * Applies the log entries after `state.seq` to `state`; returns them. When the log no longer
 * holds them (pruned meanwhile, see `pruneLog`), `state` becomes the lake's current state read
 * from the newest checkpoint, and the entries after that checkpoint are returned.
 */
async function catchUp(store: LakeStore, state: LakeState): Promise<LogEntry[]> {
  const started = momentNow();
  const read = await readEntriesAfter(store, state);
  if (!Array.isArray(read)) return await reload(store, state);
  provenAt.set(state, started);
  return read;
}

/** Whether `state` may create its next log entry without reading the log first (see LOG_FRESH_MS). */
function fresh(state: LakeState): boolean {
  const at = provenAt.get(state);
  return at !== undefined && msSince(at) < LOG_FRESH_MS;
}

/** A log entry before the log gives it its sequence number and time. */
export type EntryDraft = Omit<LogEntry, 'seq' | 'at'>;

/** Hooks of one `commitEntry` call. */
export interface CommitHooks {
  /**
   * Runs against the latest state before every attempt (after a lost race, on the re-read
   * state); throws when the entry no longer makes sense (compaction of a file someone else
   * removed).
   */
  validate?: (state: LakeState) => void;
  /** Runs right before each attempt to write the entry, with the entry about to be written. */
  beforeWrite?: (draft: EntryDraft) => Promise<void>;
}

/**
 * Appends an entry to the log and applies it to `state` (see `CommitHooks` for what runs
 * before each attempt). `entry` may instead be computed from the state: it is computed
 * again after each lost race, so an entry defined by a rule (retention: every file expired
 * now) also covers what the winner committed, e.g. the file a concurrent compaction merged
 * expired rows into. Undefined from it means nothing is left to commit (then nothing is
 * written).
 */
export async function commitEntry(store: LakeStore, state: LakeState, entry: EntryDraft | ((state: LakeState) => EntryDraft | undefined), hooks: CommitHooks = {}): Promise<LogEntry | undefined> {
  for (let attempt = 0; attempt < 100; attempt++) {
    hooks.validate?.(state);
    const draft = typeof entry === 'function' ? entry(state) : entry;
    if (draft === undefined) return undefined;
    await hooks.beforeWrite?.(draft);
    // A state read long ago (or never) reads the log first: its next number may have been
    // taken and pruned since (see pruneLog).
    if (fresh(state)) {
      const full: LogEntry = { ...draft, seq: state.seq + 1, at: new Date().toISOString() };
      const attempted = momentNow();
      if (await store.createIfAbsent(seqKey(LOG_PREFIX, full.seq), JSON.stringify(full))) {
        applyEntry(state, full);
        // The number was free when it was created, and none after it can exist: current as of then.
        provenAt.set(state, attempted);
        if (full.seq % CHECKPOINT_EVERY === 0) await writeCheckpoint(store, state);
        return full;
      }
    }
    // Another writer committed this sequence number first (or the state is stale): read what
    // happened, then retry — unless it was an earlier attempt of this very commit (see
    // `LogEntry.commit`).
    const applied = await catchUp(store, state);
    const mine = draft.commit === undefined ? undefined : applied.find((e) => e.commit === draft.commit);
    if (mine) return mine;
  }
  throw new TributaryError('transient', { userMessage: 'Could not commit to the lake: too many concurrent commits; retrying' });
}

async function writeCheckpoint(store: LakeStore, state: LakeState): Promise<void> {
  const cp: Checkpoint = {
    seq: state.seq,
    files: [...state.files.values()],
    quarantine: state.quarantine,
    unclean: Object.fromEntries([...state.unclean].map(([k, v]) => [k, [...v]])),
    connections: Object.fromEntries(state.connections),
  };
  // A checkpoint only shortens the next open; a failure to write one loses nothing. Created
  // only if absent: a checkpoint, once written, is never replaced (see pruneLog).
  await store.createIfAbsent(seqKey(CHECKPOINT_PREFIX, state.seq), JSON.stringify(cp)).catch(() => undefined);
}

/**
 * Commit leases: `_tributary/leases/<owner>.<uuid>.json`, written by a writer (a sync session, a
 * compaction) before it publishes files and renewed while it publishes and commits them.
 * Between publishing its files and writing its log entry, a writer's files are named by no
 * entry: an orphan sweep (see maintenance.ts) takes such files for a crashed writer's
 * leftovers once they are old. A file whose owner (see `fileOwner`) holds a lease modified
 * less than LEASE_TTL_MS ago by the store's clock is never swept. Each renewal is a new
 * object (the previous one is deleted after it): a sweep deletes only lease objects it saw
 * stale, so it never deletes a renewal it did not see.
 *
 * The writer judges its lease by its own clocks (whatever the store's says; the larger of
 * the monotonic and the wall clock's elapsed times, so that a suspended machine's lease is
 * not taken for fresh, see moment.ts): before each attempt to write its log entry, it
 * checks that its last renewal started less than LEASE_LAPSE_MS ago. Otherwise (the process stalled for
 * half an hour between publishing and committing) a sweep may have deleted its files, and
 * the commit fails instead of naming files that may be gone: nothing of it becomes visible,
 * and the runtime replays its records (it checkpoints only committed rows). The half hour
 * between LEASE_LAPSE_MS and LEASE_TTL_MS is the margin for the entry's write to land and
 * for clocks that differ by less than the S3 store's skew correction (a minute). A sweep
 * lists the leases after the data files and reads the log after the leases, so it sees any
 * entry written while the lease was fresh.
 */
export const LEASE_PREFIX = '_tributary/leases/';
export const LEASE_TTL_MS = 60 * 60_000;
const LEASE_LAPSE_MS = 30 * 60_000;
/** A lease is written again when its last renewal started this long ago. */
const LEASE_RENEW_MS = 5 * 60_000;

/** The owner a lease object's key names (`_tributary/leases/<owner>.<uuid>.json`; owners have no dot). */
export const leaseOwner = (key: string): string => key.slice(LEASE_PREFIX.length).split('.')[0]!;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** Data file names: `<session uuid>-<n>-<i>.parquet` (sync sessions), `compact-<uuid>.parquet` (compactions). */
const OWNED_FILE = new RegExp(`^(?:(${UUID})-.*|(compact-${UUID}))\\.parquet$`);

/** The lease owner of a data file (its writer's id, from its name); undefined for names no writer of this version gives. */
export function fileOwner(path: string): string | undefined {
  const match = OWNED_FILE.exec(path.slice(path.lastIndexOf('/') + 1));
  return match ? (match[1] ?? match[2]) : undefined;
}

/**
 * One writer's lease. `keep` before each file it publishes and before each attempt to write
 * the log entry naming them (a writer that keeps working keeps its lease: a commit publishing
 * for hours, or retrying its entry); `settled` once the entry is written. Not renewed
 * between commits: an idle writer's lease may lapse, which matters only while it has
 * published files no entry names yet.
 */
export class CommitLease {
  private renewedAt: Moment | undefined;
  /** The current lease object's key. */
  private key: string | undefined;
  /** Files were published under this lease and no log entry names them yet. */
  private holding = false;
  private renewal: Promise<void> | undefined;

  constructor(
    private readonly store: LakeStore,
    readonly owner: string,
  ) {}

  /** Renews the lease when due; throws (fatal) when it may have lapsed while published files wait for their entry. */
  async keep(): Promise<void> {
    if (this.holding) this.assertHeld();
    // Renewed when 5 minutes old: the sweep honours it for an hour, and `assertHeld`
    // counts from its last renewal, so a fresher one buys nothing (a write per commit saved).
    if (this.renewedAt === undefined || msSince(this.renewedAt) >= LEASE_RENEW_MS) await this.renew();
    this.holding = true;
  }

  private assertHeld(): void {
    if (!this.holding || this.renewedAt === undefined || msSince(this.renewedAt) < LEASE_LAPSE_MS) return;
    throw new TributaryError('fatal', {
      userMessage: `lake: the commit of ${this.owner} stalled for over ${LEASE_LAPSE_MS / 60_000} minutes between publishing its files and its log entry; a concurrent orphan sweep may have deleted them, so it is not committed (its records are replayed on the next run)`,
    });
  }

  /** The log entry naming the published files was written (or nothing waits for one). */
  settled(): void {
    this.holding = false;
  }

  /** Deletes the lease (best effort: a sweep deletes a stale one). */
  async release(): Promise<void> {
    if (this.key !== undefined) await this.store.delete([this.key]).catch(() => undefined);
    this.key = undefined;
  }

  private async renew(): Promise<void> {
    // One write at a time: files are published concurrently.
    this.renewal ??= (async () => {
      const started = momentNow();
      try {
        const key = `${LEASE_PREFIX}${this.owner}.${randomUUID()}.json`;
        await this.store.put(key, JSON.stringify({ owner: this.owner, at: new Date().toISOString() }));
        const previous = this.key;
        this.key = key;
        this.renewedAt = started;
        if (previous !== undefined) await this.store.delete([previous]).catch(() => undefined);
      } finally {
        this.renewal = undefined;
      }
    })();
    await this.renewal;
  }
}
