import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { formatIsoMs, stringifyJson, TributaryError, type ConnectorContext, type DestinationSession, type DestinationStream, type RecordData } from '@tributary/core';
import { CommitLease, commitEntry, loadLakeState, type LakeFile, type LakeState, type QuarantineFile } from './commit-log.js';
import { resolveMapping, type LakeConfig, type StreamMapping } from './config.js';
import { attributed, attributedFields, batchDeletes, lacks, lookupSql, storedChangeId, storedChangesSql, type Attribution, type AttributedFields, type PendingDelete, type StoredChange } from './delete-attribution.js';
import { ident, literal, openDuckDb, plainRows } from './duck.js';
import { entityKeyOf, ownEventTimeMs, tenantOf } from './envelope.js';
import { matchesPath, readFileStats } from './file-stats.js';
import { addedRecordsOf, filledFromOldRow, oldRowOfRecord, oldRowsWanted, withKeyMoveDeletes, type OldRow } from './key-moves.js';
import { MAX_STREAM_NAME_BYTES, parsePartitionPath, partitionColumn, streamDir } from './layout.js';
import { withIngestSeq } from './row-order.js';
import { loadReplayWindow } from './replay-window.js';
import { admitsIntegerText, CDC_FIELDS, claimVersion, columnsOfSchema, evolve, loadSchemaHistory, saveSchemaHistory, type ColumnOrigin, type PayloadColumn, type StreamSchemaHistory } from './schema-registry.js';
import type { LakeStore } from './storage/store.js';
import { quarantineIdentity, slotColumn, StreamStage } from './stream-stage.js';
import { createOwnedTempDir, removeStaleTempDirs } from './temp-dir.js';
import { admitsOnlyDeclaredFields, recordValidator } from './validate.js';

/** A finished local file waiting to be published at the commit: a data file or quarantined records (JSON lines). */
type PendingFile = { key: string; localPath: string } & ({ file: LakeFile } | { quarantine: QuarantineFile });

/**
 * A stage's quarantined records are written to a file of their own once this many wait
 * (before the next batch is staged), so that a sync whose records all fail holds a bounded
 * number of them between commits.
 */
const QUARANTINE_RECORDS_PER_FILE = 10_000;
/**
 * Characters per write of a quarantine file. A commit's quarantine can exceed the longest
 * string V8 can build (2^29 − 24 characters): built as one string, it failed the commit
 * and every retry of it ("Invalid string length"), and the sync could not go on.
 */
const QUARANTINE_WRITE_CHARS = 8 * 1024 * 1024;

/** Where a session writes Parquet files before publishing them: inside the lake when local (so publishing is a rename), else the OS temp dir. */
export function sessionTempDir(config: LakeConfig, session: string): string {
  return config.target === 's3' ? join(tmpdir(), `tributary-lake-${session}`) : join(resolve(config.path ?? './lake'), '_tributary', 'tmp', session);
}

/** Payload fields the envelope column of the same name holds unchanged under this mapping (stored once). */
function carriedFields(mapping: StreamMapping): Set<string> {
  const carried = new Set<string>();
  if (mapping.eventIdField === 'event_id') carried.add('event_id');
  if (mapping.customerIdField === 'customer_id') carried.add('customer_id');
  if ('field' in mapping.tenant && mapping.tenant.field === 'tenant_id' && mapping.tenant.fallback === undefined) carried.add('tenant_id');
  return carried;
}

/** Files of `stream` written by sessions whose rows may come again (see LakeState.unclean). */
export function replayableFiles(state: LakeState, stream: string): LakeFile[] {
  const sessions = state.unclean.get(stream);
  if (!sessions || sessions.size === 0) return [];
  return [...state.files.values()].filter((f) => f.stream === stream && f.sessions.some((s) => sessions.has(s)));
}

async function listFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith('.parquet')).map((e) => join(e.parentPath, e.name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Files published at once by a commit (local: fsyncs on libuv's pool of 4 threads; S3: uploads in flight). */
const PUBLISH_CONCURRENCY = 8;

/**
 * Runs `each` over `items`, at most `limit` at a time. After a failure no new item starts;
 * those running finish, then the first failure is thrown.
 */
async function forEachConcurrently<T>(items: readonly T[], limit: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      try {
        await each(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

/**
 * One sync's write session. Commit protocol:
 * 1. `write` stages rows in DuckDB; once a stream's stage reaches `rows_per_file` it is
 *    sealed and DuckDB writes its Parquet files in the background (bounded memory, and the
 *    encoding overlaps with staging the next rows);
 * 2. `commit` writes the staged rows as Parquet (one file per partition), publishes each file
 *    (rename into place locally, PutObject on S3), saves a widened schema if any, then
 *    appends one entry to the commit log naming every file: that conditional create is the
 *    atomic publication. It resolves only after it, so the runtime checkpoints only
 *    published rows;
 * 3. `close({ completed: true })` logs that the streams completed, which ends the replay
 *    window (see LakeState.unclean).
 * A crash before step 2's log entry leaves files no reader sees; the replayed records are
 * written again under new names. A crash after it leaves rows whose event ids the next
 * session loads and drops when they are replayed.
 */
export async function openLakeSession(ctx: ConnectorContext, config: LakeConfig, store: LakeStore, streams: readonly DestinationStream[]): Promise<DestinationSession> {
  const session = randomUUID();
  // Recorded in the log, so that completing a sync ends only this connection's replay windows (see LakeState.unclean).
  const connection = ctx.connection !== undefined ? { connection: ctx.connection } : {};
  const state = await loadLakeState(store);
  const tempDir = sessionTempDir(config, session);
  // Dirs of crashed sessions (and, in the OS temp dir, of crashed readers and compactions).
  await removeStaleTempDirs(dirname(tempDir), config.target === 's3' ? (name) => name.startsWith('tributary-lake-') : (name) => /^[0-9a-f-]{36}$/.test(name));
  await createOwnedTempDir(tempDir);
  // DuckDB threads while records are staged: one core fewer than the machine has, since the
  // JS thread that validates and stages them is busy the whole time (the COPYs of sealed
  // stages run meanwhile). With a thread per core, the COPYs' threads and the JS thread
  // contended for the cores: on 2 cores, 1M sample activities took 6.0–7.5 CPU-seconds
  // against 7.2–8.2 (see the README). A commit, which the sync waits for, uses every core.
  const cores = availableParallelism();
  const stagingThreads = Math.max(1, cores - 1);
  // A failed open leaves nothing behind (the runtime may open again at once).
  const duck = await openDuckDb(join(tempDir, 'spill'), stagingThreads).catch(async (error: unknown) => {
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  });
  const partition = partitionColumn(config.partitioning ?? 'tenant_day', ident(slotColumn('event_time_ms')));
  const compression = config.compression ?? 'zstd';
  const rowsPerFile = config.rows_per_file ?? 125_000;
  const rowGroupSize = config.row_group_size ?? 122_880;

  const histories = new Map<string, StreamSchemaHistory>();
  const dirtyHistories = new Set<string>();
  const stages = new Map<string, StreamStage>();
  /** Streams whose CDC deletes may lack the customer id or tenant (see delete-attribution.ts). */
  const attributions = new Map<string, AttributedFields>();
  /** The files of each stream's replay window (see `storedAttributions`), as the session opened. */
  const windowFiles = new Map<string, LakeFile[]>();
  let pending: PendingFile[] = [];
  /** The ingest time of the last batch staged (see `write`). */
  let lastIngestMs = 0;
  let quarantineFiles: QuarantineFile[] = [];
  let flushes = 0;

  /**
   * Evolves `stream`'s schema for `wanted` columns (see `evolve`) and claims the new version,
   * if one is needed: when another session claimed that version number first, its version
   * is loaded and the schema evolved on top of it (its columns kept, then `wanted`'s added).
   * `origin`: whether `wanted` is the stream schema's columns or columns the stage inferred
   * from records. An inferred type never changes the column the other session registered
   * for that field (see `evolve`): the stage quarantines the records that do not fit it, as
   * it does without concurrency, instead of the sync failing on a guess.
   */
  const evolveClaimed = async (stream: string, wanted: readonly PayloadColumn[], origin: ColumnOrigin): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const history = histories.get(stream)!;
      const next = evolve(history, wanted, config.on_breaking_change ?? 'fail', origin);
      if (next === undefined) return;
      if (await claimVersion(store, stream, next)) {
        history.versions.push(next);
        dirtyHistories.add(stream);
        return;
      }
      if (attempt >= 20) throw new TributaryError('transient', { userMessage: `lake: stream "${stream}": its schema keeps changing under concurrent syncs; retrying` });
      histories.set(stream, await loadSchemaHistory(store, stream));
      dirtyHistories.add(stream);
    }
  };

  const fail = async (error: unknown): Promise<never> => {
    for (const stage of stages.values()) stage.close();
    duck.close();
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  };

  try {
    for (const [index, stream] of streams.entries()) {
      // The stream's directory and registry file must be valid file names (see MAX_STREAM_NAME_BYTES).
      const encodedName = streamDir(stream.key);
      if (encodedName.length > MAX_STREAM_NAME_BYTES) {
        throw new TributaryError('config', { userMessage: `lake: stream "${stream.key.slice(0, 40)}…" has too long a name for the lake's layout: percent-encoded, it must fit in ${MAX_STREAM_NAME_BYTES} bytes (it takes ${encodedName.length})` });
      }
      const mapping = resolveMapping(config, stream);
      const fields = attributedFields(mapping);
      if (fields) attributions.set(stream.key, fields);
      histories.set(stream.key, await loadSchemaHistory(store, stream.key));
      await evolveClaimed(stream.key, columnsOfSchema(stream.jsonSchema, carriedFields(mapping)), 'declared');
      const history = histories.get(stream.key)!;
      const latest = history.versions[history.versions.length - 1]!;
      const validate = config.validate_records !== false ? recordValidator(stream.key, stream.jsonSchema) : undefined;
      const properties = (stream.jsonSchema.properties ?? {}) as Record<string, unknown>;
      windowFiles.set(stream.key, replayableFiles(state, stream.key));
      const replayWindow = await loadReplayWindow(duck.connection, store, windowFiles.get(stream.key)!, tempDir, latest.columns);
      const quarantined = await loadQuarantined(store, state, stream.key, tempDir);
      const stage = new StreamStage(duck.connection, index, mapping, latest.columns, latest.version, validate, replayWindow, async (added: PayloadColumn[]) => {
        await evolveClaimed(stream.key, added, 'inferred');
        const h = histories.get(stream.key)!;
        const last = h.versions[h.versions.length - 1]!;
        return { version: last.version, columns: last.columns };
      }, Object.keys(properties).some((field) => CDC_FIELDS.has(field)), quarantined, admitsOnlyDeclaredFields(stream.jsonSchema), new Set(Object.keys(properties)), new Set(Object.keys(properties).filter((field) => admitsIntegerText(properties[field]))));
      await stage.create();
      stages.set(stream.key, stage);
    }
  } catch (error) {
    return fail(error);
  }

  /** A stage's rows handed over for writing (see `StreamStage.seal`). */
  interface Sealed {
    stream: string;
    table: string;
    select: string;
    /** The FROM clause that turns the sealed table into rows (see `StreamStage.seal`). */
    from: string;
    job?: Promise<unknown>;
  }
  let sealed: Sealed[] = [];
  // COPYs run on their own connection, so DuckDB writes Parquet on its threads while this
  // thread keeps staging the next rows through the appender.
  const copyConnection = await duck.instance.connect();

  /** Writes a sealed table as Parquet files (one per partition) into the temp dir; they become pending files. */
  const writeFiles = async (job: Sealed): Promise<void> => {
    const id = `${session}-${++flushes}`;
    const out = join(tempDir, 'out', id);
    await mkdir(join(tempDir, 'out'), { recursive: true });
    const partitionBy = partition ? `tenant_id, ${partition.name}` : 'tenant_id';
    const select = `${job.select}${partition ? `, ${partition.sql} AS ${partition.name}` : ''}`;
    await copyConnection.run(
      `COPY (SELECT ${select} FROM ${job.from}) TO ${literal(out)} (FORMAT parquet, COMPRESSION ${compression}, ROW_GROUP_SIZE ${rowGroupSize}, ` +
        `PARTITION_BY (${partitionBy}), WRITE_PARTITION_COLUMNS true, FILENAME_PATTERN ${literal(`${id}-{i}`)})`,
    );
    // Per-file stats read back from the files just written. Each file's tenant and
    // partition columns must match its path, as the log records the path's values.
    const written = await listFiles(out);
    const expected = new Map(
      written.map((localPath) => {
        const rel = relative(out, localPath).split(sep).join('/');
        return [localPath, { rel, ...parsePartitionPath(rel) }];
      }),
    );
    const stats = await readFileStats(copyConnection, written, partition?.name, expected);
    const files: PendingFile[] = [];
    for (const localPath of written) {
      const path = expected.get(localPath)!;
      const { rel, tenant, partition: value } = path;
      const s = stats.get(localPath);
      if (!s || !matchesPath(s, path, partition !== undefined)) {
        throw new TributaryError('fatal', { userMessage: `lake: DuckDB wrote ${rel}, whose rows do not match its partition path (tenant ${JSON.stringify(tenant)}${s ? `; file holds tenants ${JSON.stringify(s.tenants)}` : '; no rows read back'})` });
      }
      const size = (await stat(localPath)).size;
      const objectKey = `data/${streamDir(job.stream)}/${rel}`;
      files.push({
        key: objectKey,
        localPath,
        file: { path: objectKey, stream: job.stream, tenant, partition: value, rows: s.n, bytes: size, schemaVersion: s.v, minEventTime: s.lo, maxEventTime: s.hi, sessions: [session] },
      });
    }
    // Done with the job before anything else can fail, so a retry never writes its rows twice.
    sealed = sealed.filter((x) => x !== job);
    pending.push(...files);
    // A lookup may be reading the table (its rows are in `pending` now too): dropped after it.
    if (lookups > 0) undropped.push(job.table);
    else await copyConnection.run(`DROP TABLE ${job.table}`).catch(() => undefined);
  };
  /** Lookups of earlier rows running (see `attributeDeletes`), and the sealed tables written meanwhile. */
  let lookups = 0;
  const undropped: string[] = [];

  /** Seals a stage's rows and starts writing them in the background (awaited by `commit`). */
  const seal = async (key: string, stage: StreamStage): Promise<void> => {
    if (stage.rows === 0) return;
    const { table, select, from } = await stage.seal(`sealed_${++flushes}`);
    const job: Sealed = { stream: key, table, select, from };
    // Never rejects: an error is rethrown by `commit`, which then retries the job.
    job.job = writeFiles(job).then(
      () => undefined,
      (error: unknown) => error ?? new Error('writing Parquet failed'),
    );
    sealed.push(job);
  };

  /**
   * Writes a stage's quarantined records to a local file, to be published at the commit.
   * They leave the stage only once the file is complete, so a failed attempt is redone whole.
   */
  const spillQuarantine = async (key: string, stage: StreamStage): Promise<void> => {
    if (stage.quarantine.length === 0) return;
    const name = `${session}-${++flushes}.jsonl`;
    const localPath = join(tempDir, 'quarantine', name);
    await mkdir(dirname(localPath), { recursive: true });
    const at = new Date().toISOString();
    const handle = await open(localPath, 'w');
    try {
      let chunk = '';
      for (const q of stage.quarantine) {
        // The record's own event time in whole ms (null: it has none), by which retention also expires it.
        const eventMs = ownEventTimeMs(q.record, stage.mapping);
        const eventTime = eventMs === undefined ? null : formatIsoMs(Math.floor(eventMs));
        // The tenant as this sync derived it (null: none), by which `retention --tenant` expires it.
        const tenant = typeof q.record === 'object' && q.record !== null && !Array.isArray(q.record) ? (tenantOf(q.record as RecordData, stage.mapping) ?? null) : null;
        chunk += stringifyJson({ stream: key, reason: q.reason, quarantined_at: at, event_time: eventTime, tenant_id: tenant, record: q.record }) + '\n';
        if (chunk.length >= QUARANTINE_WRITE_CHARS) {
          await handle.write(chunk);
          chunk = '';
        }
      }
      if (chunk.length > 0) await handle.write(chunk);
    } catch (error) {
      await handle.close();
      await rm(localPath, { force: true });
      throw error;
    }
    await handle.close();
    const path = `_quarantine/${streamDir(key)}/${name}`;
    pending.push({ key: path, localPath, quarantine: { path, stream: key, records: stage.quarantine.length, session } });
    stage.quarantine.length = 0;
  };

  /** Writes every staged and sealed row; throws the first failure (its job stays queued for the retry). */
  const drain = async (): Promise<void> => {
    for (const [key, stage] of stages) await seal(key, stage);
    for (const job of [...sealed]) {
      const error = job.job ? await job.job : undefined;
      if (error === undefined && !sealed.includes(job)) continue;
      // Failed (or never started): try once more in the foreground, then give up to the runtime's retry.
      job.job = undefined;
      await writeFiles(job);
    }
  };

  /** Local copies of committed files read by attribution lookups (files are immutable). */
  const lookupCopies = new Map<string, string>();
  const lookupCache = join(tempDir, 'lookup');
  /** The local copy of a committed file, downloaded once. */
  const lookupCopy = async (f: LakeFile): Promise<string> => {
    let local = lookupCopies.get(f.path);
    if (local === undefined) lookupCopies.set(f.path, (local = await store.localCopy(f.path, lookupCache)));
    return local;
  };
  /** The relations holding a stream's earlier rows: the lake's files, this session's written files, sealed and staged rows. */
  const storedRows = async (key: string, stage: StreamStage, committed: Iterable<LakeFile>): Promise<string[]> => {
    const paths: string[] = [];
    for (const f of committed) if (f.stream === key) paths.push(await lookupCopy(f));
    for (const p of pending) if ('file' in p && p.file.stream === key) paths.push(p.localPath);
    const sources = paths.length > 0 ? [withIngestSeq(`read_parquet([${paths.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`)] : [];
    for (const job of sealed) if (job.stream === key) sources.push(`(SELECT ${job.select} FROM ${job.from})`);
    const staged = stage.stagedRowsSql();
    if (staged !== undefined) sources.push(staged);
    return sources;
  };

  /**
   * The attributions, by index in `records`, of the deletes of `wanted` that a sync which
   * may be replayed (its files are the stream's replay window) already stored: the stored
   * delete's customer id and tenant and, for a delete whose moved update wants its old row
   * (`oldRowWanted`), the stored update's `columns` and `unchanged_fields` as that row (it
   * holds what the fill gave it, and lists what it could not fill).
   *
   * A replay must reproduce what its first write stored, or the replay window does not
   * recognise it (event id and content, see ReplayWindow). The lookup of the latest
   * earlier row can find another row now, or none: retention between the crash and the
   * resume removes expired rows of completed syncs (it defers only the replayable ones),
   * and the replayed delete was then refused (quarantined though stored), the moved update
   * stored a second time unfilled. A CDC position is distinct per change, so a stored row of
   * the delete's key, position and op is that very change; deletes without a position are
   * left to the lookup.
   */
  const storedAttributions = async (key: string, stage: StreamStage, records: readonly RecordData[], wanted: readonly PendingDelete[], oldRowWanted: ReadonlySet<number> | undefined, columns: readonly string[]): Promise<Map<number, Attribution>> => {
    const out = new Map<number, Attribution>();
    const changes: StoredChange[] = [];
    const updateKeys = new Map<number, string>();
    for (const d of wanted) {
      if (d.position === '') continue;
      changes.push({ key: d.key, position: d.position, op: 'delete' });
      if (oldRowWanted?.has(d.index) !== true) continue;
      const updateKey = entityKeyOf(records[d.index + 1]!, stage.mapping.primaryKey);
      if (updateKey === undefined) continue;
      updateKeys.set(d.index, updateKey);
      changes.push({ key: updateKey, position: d.position, op: 'update' });
    }
    if (changes.length === 0) return out;
    const query = async (files: readonly LakeFile[]): Promise<Record<string, unknown>[]> => {
      if (files.length === 0) return [];
      const paths: string[] = [];
      for (const f of files) paths.push(await lookupCopy(f));
      return plainRows(await duck.connection.runAndReadAll(storedChangesSql(paths, changes, columns)));
    };
    // The window's files as the session opened: its own commits since are no first writes.
    const rows = await query(windowFiles.get(key) ?? []).catch(async () => {
      // Compacted elsewhere since this session read the log (see `resolveEarlierRows`): the
      // merged files hold the same sessions' rows (replayable files merge only among themselves).
      lookupCopies.clear();
      return query(replayableFiles(await loadLakeState(store), key));
    });
    const byChange = new Map<string, Record<string, unknown>>();
    for (const row of rows) byChange.set(storedChangeId(row._tributary_k, row._tributary_p, row._tributary_o), row);
    for (const d of wanted) {
      const deleted = byChange.get(storedChangeId(d.key, d.position, 'delete'));
      if (deleted === undefined) continue;
      const updateKey = updateKeys.get(d.index);
      const update = updateKey !== undefined ? byChange.get(storedChangeId(updateKey, d.position, 'update')) : undefined;
      out.set(d.index, { customer: String(deleted.customer_id), tenant: String(deleted.tenant_id), ...(update !== undefined ? { columns: update } : {}) });
    }
    return out;
  };

  /**
   * The batch with each CDC delete that lacks its customer id or tenant given those of the
   * latest earlier row of its key (see delete-attribution.ts), and each update that moved
   * its key and left fields out given them from that row of its old key (`oldRowWanted`:
   * the indices of those updates' deletes, see key-moves.ts `filledFromOldRow`); the batch
   * itself when nothing changes. Deletes whose key has no earlier row are left as they came
   * (quarantined), and so are the updates whose old key has none.
   */
  const resolveEarlierRows = async (key: string, stage: StreamStage, fields: AttributedFields | undefined, records: RecordData[], oldRowWanted: ReadonlySet<number> | undefined): Promise<RecordData[]> => {
    const found = batchDeletes(records, stage.mapping, fields, oldRowWanted);
    if (found === undefined) return records;
    const { resolved } = found;
    let wanted = found.lookups;
    const columns = oldRowWanted && wanted.length > 0 ? unchangedColumns(stage, records, wanted.filter((d) => oldRowWanted.has(d.index)).map((d) => d.index)) : [];
    // Only while the stream's replay window is open (files of syncs that may be replayed).
    if (wanted.length > 0 && (windowFiles.get(key)?.length ?? 0) > 0) {
      // A replayed change takes what its first write stored (see `storedAttributions`).
      const stored = await storedAttributions(key, stage, records, wanted, oldRowWanted, columns);
      for (const [index, a] of stored) resolved.set(index, a);
      if (stored.size > 0) wanted = wanted.filter((d) => !stored.has(d.index));
    }
    if (wanted.length > 0) {
      const byDelete = new Map<string, Attribution>();
      const query = async (committed: Iterable<LakeFile>): Promise<void> => {
        const sources = await storedRows(key, stage, committed);
        if (sources.length === 0) return;
        for (const row of plainRows(await duck.connection.runAndReadAll(lookupSql(sources, wanted, columns)))) {
          byDelete.set(`${String(row._tributary_k)}\u0000${String(row._tributary_p)}`, { customer: String(row.customer_id), tenant: String(row.tenant_id), ...(columns.length > 0 ? { columns: row } : {}) });
        }
      };
      lookups++;
      try {
        await query([...state.files.values(), ...adds]).catch(async () => {
          // A compaction elsewhere may have removed files this session's view of the lake
          // still names (after their grace period): look again in the lake as it is now.
          lookupCopies.clear();
          const now = await loadLakeState(store);
          await query([...now.files.values(), ...adds]);
        });
      } finally {
        if (--lookups === 0) for (const table of undropped.splice(0)) await copyConnection.run(`DROP TABLE ${table}`).catch(() => undefined);
      }
      for (const d of wanted) {
        const a = byDelete.get(`${d.key}\u0000${d.position}`);
        if (a) resolved.set(d.index, a);
      }
    }
    if (resolved.size === 0) return records;
    const out = records.slice();
    // In batch order: an old row that is itself a moved update is filled before it fills another.
    for (const index of [...resolved.keys()].sort((a, b) => a - b)) {
      const a = resolved.get(index)!;
      if (fields !== undefined) out[index] = attributed(records[index]!, fields, a, (field) => stage.typeOf(field));
      if (oldRowWanted?.has(index) !== true) continue;
      const old = a.from !== undefined ? oldRowOfRecord(out[a.from]!) : a.columns !== undefined ? oldRowOfColumns(stage, a.columns) : undefined;
      if (old !== undefined) out[index + 1] = filledFromOldRow(out[index + 1]!, old);
    }
    return out;
  };

  const commit = async (): Promise<void> => {
    if (stagingThreads !== cores) await duck.connection.run(`SET threads = ${cores}`);
    try {
      await drain();
    } finally {
      if (stagingThreads !== cores) await duck.connection.run(`SET threads = ${stagingThreads}`);
    }
    for (const [key, stage] of stages) await spillQuarantine(key, stage);
    // Publish every file, then name them all in one log entry: the atomic step. Files are
    // published PUBLISH_CONCURRENCY at a time (their order does not matter until the log
    // names them): the sync waits for this step, and each local file costs two fsyncs, each
    // S3 file an upload.
    const published = new Set<PendingFile>();
    try {
      await forEachConcurrently(pending, PUBLISH_CONCURRENCY, async (p) => {
        // Published under the session's lease: no orphan sweep deletes it before the entry (see CommitLease).
        await lease.keep();
        await store.putFile(p.key, p.localPath);
        published.add(p);
      });
    } finally {
      pending = pending.filter((p) => !published.has(p));
      for (const p of published) {
        if ('file' in p) adds.push(p.file);
        else quarantineFiles.push(p.quarantine);
      }
    }
    for (const key of dirtyHistories) await saveSchemaHistory(store, histories.get(key)!);
    dirtyHistories.clear();
    if (adds.length === 0 && quarantineFiles.length === 0) return;
    // Kept until the entry is known to be stored: a retry of this commit recognises an
    // attempt that was stored although it seemed to fail (see LogEntry.commit).
    commitId ??= randomUUID();
    await commitEntry(store, state, { session, kind: 'append', commit: commitId, add: adds, quarantine: quarantineFiles, ...connection }, { beforeWrite: () => lease.keep() });
    lease.settled();
    commitId = undefined;
    adds = [];
    quarantineFiles = [];
  };
  let adds: LakeFile[] = [];
  let commitId: string | undefined;
  const lease = new CommitLease(store, session);

  return {
    async write(batch) {
      const stage = stages.get(batch.stream);
      if (!stage) throw new TributaryError('fatal', { userMessage: `Batch for unknown stream "${batch.stream}"` });
      // A full stage is sealed, and its waiting quarantined records written, before this
      // batch is staged, so if either fails the runtime's retry stages the batch exactly once.
      if (stage.rows >= rowsPerFile) await seal(batch.stream, stage);
      if (stage.quarantine.length >= QUARANTINE_RECORDS_PER_FILE) await spillQuarantine(batch.stream, stage);
      // Each update that moved its row to another key, or (its key kept) to another tenant,
      // preceded by a delete of the old key in the old tenant (see key-moves.ts); the deletes
      // then take the path of any CDC delete.
      const moves = withKeyMoveDeletes(batch.records, stage.mapping, (field) => stage.typeOf(field));
      const fields = attributions.get(batch.stream);
      const given = moves?.records ?? batch.records;
      // The moved updates that left fields out take them from the old key's row (see key-moves.ts).
      const oldRowWanted = moves ? oldRowsWanted(moves) : undefined;
      const records = fields !== undefined || (oldRowWanted?.size ?? 0) > 0 ? await resolveEarlierRows(batch.stream, stage, fields, given, oldRowWanted) : given;
      // Each batch its own ingest time, so that rows of one ingest time are one batch, which
      // `_tributary_ingest_seq` orders (see row-order.ts): two batches in one millisecond
      // would tie on both.
      const ingestMs = Math.max(Date.now(), lastIngestMs + 1);
      lastIngestMs = ingestMs;
      // A synthesized delete that cannot be stored is dropped when its old key has no earlier
      // row (it still lacks the customer id or tenant attribution gives), else quarantined.
      const added = moves ? addedRecordsOf(moves, records, stage.mapping, (record) => fields !== undefined && lacks(record, fields)) : undefined;
      const rejected = await stage.append(records, ingestMs, added);
      if (rejected.length === 0) return undefined;
      // Indices into the runtime's batch (a synthesized delete is never among them).
      return { rejected: moves ? rejected.map((r) => ({ ...r, index: moves.origin[r.index]! })) : rejected };
    },
    commit,
    async close({ completed }) {
      try {
        if (completed) {
          await commit();
          await commitEntry(store, state, { session, kind: 'complete', streams: [...stages.keys()], ...connection });
        }
        for (const [key, stage] of stages) {
          const c = stage.counts;
          if (c.written + c.replays + c.quarantined === 0) continue;
          ctx.logger.info(`lake ${key}: ${c.written} row(s) written, ${c.replays} replayed row(s) already in the lake skipped, ${c.quarantined} record(s) quarantined${c.requarantined > 0 ? ` (${c.requarantined} of them replays already in the quarantine)` : ''}`);
        }
      } finally {
        for (const stage of stages.values()) stage.close();
        for (const job of sealed) await job.job;
        copyConnection.closeSync();
        duck.close();
        await rm(tempDir, { recursive: true, force: true });
        // Files this session published are named by its log entries or are orphans now (a
        // failed commit): neither needs the lease. Best effort; a sweep removes a stale one.
        await lease.release();
      }
    },
  };
}

/** Envelope columns a lookup returns anyway (see `lookupSql`): never asked for as payload columns. */
const LOOKUP_ENVELOPE = new Set(['customer_id', 'tenant_id', 'unchanged_fields']);

/**
 * The payload columns of the fields that the updates after the deletes at `deleteIndices`
 * left out (`_tributary_unchanged`), for the lookup of their old rows.
 */
function unchangedColumns(stage: StreamStage, records: readonly RecordData[], deleteIndices: readonly number[]): string[] {
  const columns = new Set<string>();
  for (const index of deleteIndices) {
    const listed = records[index + 1]?._tributary_unchanged;
    if (!Array.isArray(listed)) continue;
    for (const field of listed) {
      const column = typeof field === 'string' ? stage.payloadColumnOf(field) : undefined;
      if (column !== undefined && !LOOKUP_ENVELOPE.has(column)) columns.add(column);
    }
  }
  return [...columns];
}

/**
 * A looked-up old row (see `lookupSql`: `unchanged_fields` and payload columns, as plain
 * values) as the fill sees it: a field its own update left out, or whose column no source
 * has, is not held.
 */
function oldRowOfColumns(stage: StreamStage, row: Record<string, unknown>): OldRow {
  const unchanged = Array.isArray(row.unchanged_fields) ? (row.unchanged_fields as unknown[]) : [];
  return {
    value: (field) => {
      const column = stage.payloadColumnOf(field);
      if (column === undefined || LOOKUP_ENVELOPE.has(column) || !Object.hasOwn(row, column) || unchanged.includes(field)) return undefined;
      return { value: row[column] };
    },
  };
}

/**
 * Identities of the records that sessions which may be replayed already quarantined, so a
 * replayed bad record is reported again but not stored twice.
 */
async function loadQuarantined(store: LakeStore, state: LakeState, stream: string, tempDir: string): Promise<Set<string> | undefined> {
  const sessions = state.unclean.get(stream);
  const files = state.quarantine.filter((q) => q.stream === stream && q.session !== undefined && sessions?.has(q.session));
  if (files.length === 0) return undefined;
  const seen = new Set<string>();
  const cache = join(tempDir, 'quarantine-window');
  for (const f of files) {
    // Line by line: a file can be larger than one string can hold.
    const lines = createInterface({ input: createReadStream(await store.localCopy(f.path, cache)), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim()) seen.add(quarantineIdentity((JSON.parse(line) as { record: unknown }).record));
    }
  }
  await rm(cache, { recursive: true, force: true });
  return seen;
}
