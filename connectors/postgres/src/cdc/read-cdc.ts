import type pg from 'pg';
import {
  TributaryError,
  recordPage,
  streamKey,
  type ConfiguredAirbyteStream,
  type ConnectorContext,
  type RecordData,
  type SourceMessage,
  type StateBlob,
  type SyncState,
} from '@tributary/core';
import type { PostgresConfig } from '../config.js';
import { connect, isConnectionLoss, literal } from '../connection.js';
import { readChunks, type ChunkPosition } from '../read/table-read.js';
import { CHANGE_FIELDS, fieldSetter, snapshotFields, toRecord, type ChangeEvent, type RecordFormat, type Row } from '../records.js';
import type { TableInfo } from '../schema/tables.js';
import type { Converter, TypeRegistry } from '../schema/values.js';
import { formatLsn, parseLsn, pgTimeToIso, type Lsn } from './lsn.js';
import { UNCHANGED_TOAST, type RelationColumn, type TupleValue } from './pgoutput.js';
import { ReplicationConnection } from './replication-connection.js';
import { registerStream } from './live-streams.js';
import { heapTuplesPerPage, SnapshotRowPositions } from './snapshot-positions.js';
import { assertCdcPrerequisites, ensurePublication, publishedColumns, publishedRowFilter, slotInfo, slotInvalidation, unpublishedActions } from './slot.js';

/** The shared (GLOBAL) state of a CDC connection: every change before `lsn` is committed downstream. */
export interface CdcSharedState {
  slot: string;
  lsn: string;
}

/**
 * Per-stream CDC state: the initial snapshot's progress. Written with every global checkpoint,
 * `at` being that checkpoint's shared `lsn`: a stream whose `at` differs from the shared
 * position it is resumed with was left out of the syncs that moved the slot from `at` on
 * (absent from their catalogs, its state kept), so its changes in between were read and
 * dropped. Absent in states of older versions.
 */
export type CdcStreamState = (
  | {
      cdc: 'snapshot';
      after: ChunkPosition;
      /**
       * `_tributary_position` of this snapshot's rows, kept so that the rows a resumed snapshot
       * reads carry the same one (replayed records stay identical). Absent in states of older
       * versions: the shared `lsn`.
       */
      position?: string;
      /**
       * Keyless tables (positions by ctid): the relfilenode of the relation `after` points into
       * (the table, or its partition), when the position was saved. A ctid is a place in that
       * file only: VACUUM FULL, CLUSTER, TRUNCATE or a rewriting ALTER TABLE move every row to
       * a new file and number them from (0,1) again, without a change event, so a resume after
       * the old ctid would skip rows for good. Absent in states of older versions.
       */
      file?: string;
      /**
       * Partitioned keyless tables: the oids of the partitions when the snapshot started, in
       * the order that numbers its rows' positions (see SnapshotRowPositions), so that a
       * resumed snapshot numbers them alike. Absent for other tables and in older states.
       */
      partitions?: string[];
    }
  | { cdc: 'streaming' }
) & { at?: string };

/** Records of one stream held before they are yielded as a page. */
const PAGE_SIZE = 1_000;
/** A commit checkpoint is yielded at once when the last one is older than this; otherwise when the stream idles. */
const CHECKPOINT_EVERY_MS = 200;
/** Records of finished transactions wait at most this long for more to share their page. */
const HOLD_AT_MOST_MS = 5;
/** How long `next()` waits before the loop looks at heartbeats, lag and stop requests. */
const IDLE_POLL_MS = 50;

interface CdcStream {
  configured: ConfiguredAirbyteStream;
  key: string;
  table: TableInfo;
  state: CdcStreamState;
  /** The publication's row filter of the table: its snapshot reads only the rows it streams. */
  rowFilter?: string;
}

interface Relation {
  oid: number;
  namespace: string;
  name: string;
  columns: RelationColumn[];
  converters: Converter[];
  /** Sets a column of a decoded row (see `fieldSetter`: a column may be named `__proto__`). */
  setField: (row: Row, name: string, value: Row[string]) => void;
  stream: CdcStream | undefined;
}

export interface CdcReadOptions {
  ctx: ConnectorContext;
  config: PostgresConfig;
  sql: pg.Client;
  types: TypeRegistry;
  tables: TableInfo[];
  streams: ConfiguredAirbyteStream[];
  state: SyncState;
}

export async function* readCdc(options: CdcReadOptions): AsyncGenerator<SourceMessage> {
  const { ctx, config, sql, types } = options;
  const slot = config.slot_name ?? 'tributary_slot';
  const publication = config.publication_name ?? 'tributary_publication';
  const format: RecordFormat = config.output_format ?? 'tributary';
  const chunkSize = config.chunk_size ?? 10_000;
  const log = ctx.logger;

  await assertCdcPrerequisites(sql, config);
  const streams: CdcStream[] = options.streams.map((configured) => {
    const namespace = configured.stream.namespace ?? 'public';
    const table = options.tables.find((t) => t.namespace === namespace && t.name === configured.stream.name);
    if (!table) throw new TributaryError('config', { userMessage: `Table ${namespace}.${configured.stream.name} does not exist (any more).` });
    const key = streamKey(configured.stream.name, configured.stream.namespace);
    return { configured, key, table, state: { cdc: 'snapshot', after: null } };
  });
  const added = await ensurePublication(
    sql,
    config,
    streams.map((s) => s.table),
  );
  const unpublished = await unpublishedActions(sql, publication);
  if (unpublished.length > 0) {
    // Possibly on purpose (e.g. no deletes downstream), so not refused; but never silent.
    log.warn(`publication "${publication}" does not publish ${unpublished.join(', ')}: those changes of its tables never reach the destination (e.g. deleted or truncated rows stay there)`, {
      publication,
      unpublished,
    });
  }
  for (const s of streams) {
    const published = await publishedColumns(sql, publication, s.table);
    if (published.left.length > 0) {
      log.warn(`columns of ${s.key} that logical replication does not stream are left out of its records, the snapshot's too`, {
        stream: s.key,
        columns: published.left,
      });
    }
    s.table = published.table;
    const rowFilter = await publishedRowFilter(sql, publication, s.table);
    if (rowFilter !== undefined) {
      s.rowFilter = rowFilter;
      log.info(`publication "${publication}" streams the rows of ${s.key} where ${rowFilter}: its snapshot reads those rows only`, { stream: s.key });
    }
  }

  const shared = options.state.shared as Partial<CdcSharedState> | undefined;
  /** Streams snapshotted again because their table was out of the publication (see below). */
  const renewed = new Set<CdcStream>();
  const existing = await slotInfo(sql, slot);
  let replication = await ReplicationConnection.open(config);
  // The catalog connection of the streaming phase; replaced after the server went away.
  let db = sql;
  let unregister: (() => void) | undefined;
  try {
    let startLsn: Lsn;
    /**
     * The `_tributary_position` of the rows of a snapshot started now: a position at or after
     * every change the snapshot already holds and before every change streamed after it, so
     * that the latest record of a key by position is its current row. Resuming, the
     * committed position.
     */
    let snapshotLsn: Lsn | undefined;
    let consistentSnapshot = false;
    if (shared?.slot === slot && typeof shared.lsn === 'string') {
      if (!existing) {
        throw new TributaryError('config', {
          userMessage: `Replication slot "${slot}" is missing, so the changes after ${shared.lsn} (the committed position) can no longer be read. Reset this connection's state to take a new snapshot (the slot is then created again).`,
        });
      }
      const invalidated = await slotInvalidation(sql, slot);
      if (invalidated) {
        // Checked before any snapshot is read: streaming would fail after it, every sync.
        throw new TributaryError('config', {
          userMessage: `Replication slot "${slot}" was invalidated by PostgreSQL (${invalidated}${
            invalidated === 'wal_removed' ? ': the WAL it needed was removed, as max_slot_wal_keep_size allows' : ''
          }), so the changes after ${shared.lsn} (the committed position) can no longer be read. Reset this connection's state to take a new snapshot (the slot is then created again).`,
        });
      }
      startLsn = parseLsn(shared.lsn);
      assertSlotNotAhead(slot, existing.confirmedFlush, startLsn);
      for (const s of streams) {
        const saved = options.state.streams[s.key] as CdcStreamState | undefined;
        if (saved && (saved.cdc === 'streaming' || saved.cdc === 'snapshot')) {
          const { at, ...progress } = saved;
          s.state = progress;
          if (typeof at === 'string' && at !== shared.lsn) {
            // The syncs that moved the slot from `at` to the shared position did not read this
            // stream (it was not in their catalogs): they passed its changes by. Resuming at the
            // shared position would lose them for good; a new snapshot reads the table as it is.
            log.warn(`${s.key} was not part of the syncs since ${at} (left out of their catalogs): taking a new snapshot of it; rows deleted meanwhile may remain downstream`, {
              stream: s.key,
            });
            s.state = { cdc: 'snapshot', after: null };
            renewed.add(s);
            continue;
          }
        }
        const unpublished = added.some((t) => t.namespace === s.table.namespace && t.name === s.table.name);
        if (unpublished && !(s.state.cdc === 'snapshot' && s.state.after === null)) {
          // The table left the publication since (dropped and created again, or removed from
          // it): its changes in between were never streamed. Streaming on would lose them for
          // good; a new snapshot reads the table as it is.
          log.warn(`${s.key} was not in publication "${publication}" (table dropped and created again, or removed from it): taking a new snapshot of it; rows deleted meanwhile may remain downstream`, {
            stream: s.key,
          });
          s.state = { cdc: 'snapshot', after: null };
          renewed.add(s);
        }
      }
    } else {
      if (existing) {
        await waitForSlotRelease(sql, slot);
        log.warn(`replication slot "${slot}" exists but this connection has no committed CDC state: dropping it and taking a new snapshot`);
        await sql.query('SELECT pg_drop_replication_slot($1)', [slot]);
      }
      const created = await replication.createSlot(slot);
      startLsn = created.consistentPoint;
      // Not the consistent point: a change's position is where its WAL record was written, and
      // a transaction running across the consistent point (begun while the slot was being
      // created) is not in the snapshot yet streams afterwards with records written before
      // that point. Every streamed transaction began after the slot reserved its WAL at
      // restart_lsn (the snapshot builder waited for the older ones to end), so its records
      // follow restart_lsn, while the snapshot holds no change that is streamed.
      // Queried on the other connection: the replication connection must run no command
      // before the exported snapshot is imported.
      const reserved = await sql.query<{ lsn: string | null }>('SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      const restartLsn = reserved.rows[0]?.lsn;
      if (restartLsn) snapshotLsn = parseLsn(restartLsn);
      // Import the exported snapshot before the replication connection runs another command.
      await sql.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await sql.query(`SET TRANSACTION SNAPSHOT ${literal(created.snapshotName)}`);
      consistentSnapshot = true;
      log.info(`created replication slot "${slot}" at ${formatLsn(startLsn)}`);
    }

    const snapshotPosition = formatLsn(snapshotLsn ?? startLsn);
    const checkpointAt = (lsn: Lsn): SourceMessage => ({
      kind: 'global-checkpoint',
      shared: { slot, lsn: formatLsn(lsn) } satisfies CdcSharedState as unknown as StateBlob,
      streams: streams.map((s) => ({
        stream: s.configured.stream.name,
        ...(s.configured.stream.namespace ? { namespace: s.configured.stream.namespace } : {}),
        state: { ...structuredClone(s.state), at: formatLsn(lsn) } satisfies CdcStreamState as unknown as StateBlob,
      })),
    });

    // --- snapshot: tables read as of the slot's consistent point (or, resuming, a fresh snapshot) ---
    const pending = streams.filter((s) => s.state.cdc === 'snapshot');
    if (pending.length > 0) {
      if (!consistentSnapshot) {
        // The exported snapshot died with the sync that created the slot. The rows read now
        // may be newer than the slot position; the stream then replays those changes on top,
        // so the destination still converges on the table (with some repeats).
        log.warn(
          `resuming the initial snapshot of ${pending
            .map((s) => s.key)
            .join(', ')} outside the slot's snapshot; changes since ${formatLsn(startLsn)} are replayed after it`,
        );
        await sql.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      }
      let tuplesPerPage: number | undefined;
      try {
        for (const s of pending) {
          const state = s.state as Extract<CdcStreamState, { cdc: 'snapshot' }>;
          const position = state.position ?? (state.after === null ? snapshotPosition : formatLsn(startLsn));
          const tributary = format === 'tributary';
          // Keyless tables are read by ctid: their positions name the file they point into.
          const files = s.table.primaryKey.length === 0 ? await relationFiles(sql, s.table) : undefined;
          const fileOf = (after: ChunkPosition): string | undefined => (files && after && 'ctid' in after ? files.get(after.partition ?? String(s.table.oid)) : undefined);
          let start = state.after;
          if (start && 'ctid' in start && state.file !== undefined && fileOf(start) !== state.file) {
            // Rewritten since the position was saved: its rows were renumbered. Read the table
            // again (rows read before carry the same position: identical records).
            log.warn(`${s.key} was rewritten (VACUUM FULL, CLUSTER, TRUNCATE or ALTER TABLE) since its snapshot stopped at ctid ${start.ctid}: reading it again from the start`, {
              stream: s.key,
            });
            start = null;
          }
          // Keyless tables: a position per row (identical rows are distinct events downstream),
          // in either format: `_tributary_position`, or the Debezium envelope's `source.lsn`.
          const partitions = files && s.table.partitioned ? (state.partitions ?? [...files.keys()].sort((a, b) => Number(a) - Number(b))) : undefined;
          const rowPositions = files ? new SnapshotRowPositions(position, parseLsn(position), (tuplesPerPage ??= await heapTuplesPerPage(sql)), partitions) : undefined;
          // Debezium: a decoded row becomes the envelope's `after` and has no field for its
          // position, so the position waits beside it until the envelope is built.
          const debeziumPositions = rowPositions && !tributary ? new WeakMap<Row, string>() : undefined;
          const keylessRow = !rowPositions
            ? undefined
            : debeziumPositions
              ? (row: Row, ctid: string, partition: string | null): void => {
                  debeziumPositions.set(row, rowPositions.of(ctid, partition));
                }
              : (row: Row, ctid: string, partition: string | null): void => {
                  row[CHANGE_FIELDS.position] = rowPositions.of(ctid, partition);
                };
          for await (const chunk of readChunks(sql, s.table, types, chunkSize, start, tributary ? snapshotFields(position) : undefined, {
            ...(s.rowFilter !== undefined ? { filter: s.rowFilter } : {}),
            ...(keylessRow ? { keylessRow } : {}),
          })) {
            if (chunk.rows.length > 0) {
              const records: RecordData[] = tributary
                ? chunk.rows
                : chunk.rows.map((row) =>
                    toRecord(
                      {
                        op: 'r',
                        namespace: s.table.namespace,
                        table: s.table.name,
                        after: row,
                        before: null,
                        position: debeziumPositions?.get(row) ?? position,
                        txid: null,
                        commitTime: null,
                      },
                      format,
                      config.database,
                    ),
                  );
              yield recordPage(s.configured.stream.name, records, s.configured.stream.namespace);
            }
            if (chunk.next === undefined) continue;
            const file = fileOf(chunk.next);
            s.state =
              chunk.next === null
                ? { cdc: 'streaming' }
                : { cdc: 'snapshot', after: chunk.next, position, ...(file !== undefined ? { file } : {}), ...(partitions ? { partitions } : {}) };
            yield checkpointAt(startLsn);
          }
          if (rowPositions && rowPositions.fallbacks > 0) {
            log.warn(`${rowPositions.fallbacks} snapshot rows of ${s.key} carry the snapshot position ${position} itself (no room below it, or a partition created since the snapshot started): identical rows among them are one event in destinations that hash records`, {
              stream: s.key,
            });
          }
        }
      } finally {
        await sql.query('COMMIT').catch(() => undefined);
      }
    }

    // --- streaming from the slot ---
    const until = config.cdc_until ?? 'caught_up';
    const target =
      until === 'caught_up' ? parseLsn((await sql.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]!.lsn) : undefined;
    await waitForSlotRelease(db, slot);
    replication.start(slot, startLsn, publication);
    unregister = registerStream(config, slot, replication);
    log.info(`streaming slot "${slot}" from ${formatLsn(startLsn)}${target !== undefined ? ` until ${formatLsn(target)}` : ''}`);

    const relations = new Map<number, Relation>();
    const pages = new Map<CdcStream, RecordData[]>();
    let held = 0;
    let heldSince = 0;
    let maxHeld = 0;
    // committedLsn: end of the last transaction read in full (its records may still sit in pages).
    // handedLsn: every change before it was yielded — where a reconnect resumes.
    let committedLsn = startLsn;
    let handedLsn = startLsn;
    let checkpointedLsn = startLsn;
    let lastCheckpointAt = Date.now();
    let lastHeartbeatAt = Date.now();
    let lastLagAt = 0;
    let lagInFlight = false;
    let txn: { xid: number; commitTime: string; skip: boolean } | undefined;
    // The WAL record of the last change, and how many changes before this one came from it (see changePosition).
    let recordStart = -1n;
    let inRecord = 0;
    let rows = 0;
    let streamFrom = startLsn;
    let reconnects = 0;
    let maxQueued = 0;
    yield checkpointAt(startLsn);

    /** Yields every held record; only called between transactions. */
    const flushPages = function* (): Generator<SourceMessage> {
      if (held > 0) {
        for (const [s, records] of pages) {
          if (records.length > 0) yield recordPage(s.configured.stream.name, records, s.configured.stream.namespace);
        }
        pages.clear();
        held = 0;
      }
      handedLsn = committedLsn;
    };
    /** Adds a change to its stream's page; returns the page to yield once it is full. */
    const push = (s: CdcStream, event: ChangeEvent): SourceMessage | undefined => {
      let page = pages.get(s);
      if (!page) pages.set(s, (page = []));
      page.push(toRecord(event, format, config.database));
      rows++;
      if (held++ === 0) heldSince = Date.now();
      if (held > maxHeld) maxHeld = held;
      if (page.length < PAGE_SIZE) return undefined;
      pages.set(s, []);
      held -= page.length;
      return recordPage(s.configured.stream.name, page, s.configured.stream.namespace);
    };
    /** `push` of one change of `relation`, inside the open transaction `open`. */
    const pushChange = (
      s: CdcStream,
      relation: Relation,
      open: { xid: number; commitTime: string },
      position: string,
      op: ChangeEvent['op'],
      after: Row | null,
      before: Row | null,
      unchanged: readonly string[] = [],
    ): SourceMessage | undefined =>
      push(s, {
        op,
        namespace: relation.namespace,
        table: relation.name,
        after,
        before,
        position,
        txid: open.xid,
        commitTime: open.commitTime,
        ...(unchanged.length > 0 ? { unchanged: [...unchanged] } : {}),
      });
    /**
     * The `_tributary_position` of a change sent at `walStart` (`position` printed): its WAL
     * record's LSN. One record can hold several changes — COPY FROM and other bulk inserts
     * (heap_multi_insert) log the rows put on one heap page in one record, all sent at the
     * record's start — and two identical rows of a keyless table would then be identical
     * records, one event downstream (the lake hashes them to one event id; compaction keeps
     * one). So the k-th further change of a record gets the record's LSN + k: still inside
     * that record (every row takes more than one byte of it), hence after every earlier
     * record and before every later one, and the same again when the transaction is
     * replayed. Changes arrive in WAL order, those of one record consecutively. On the
     * per-change path: one bigint comparison.
     */
    const changePosition = (walStart: Lsn, position: string): string => {
      if (walStart !== recordStart) {
        recordStart = walStart;
        inRecord = 0;
        return position;
      }
      inRecord++;
      return formatLsn(walStart + BigInt(inRecord));
    };
    const relationOf = (oid: number): Relation => {
      const relation = relations.get(oid);
      if (!relation) throw new TributaryError('fatal', { userMessage: `pgoutput sent a change for relation ${oid} before its Relation message` });
      return relation;
    };
    const rowOf = (relation: Relation, tuple: TupleValue[], keysOnly: boolean, unchanged?: string[], fallback?: Row | null): Row => {
      const row: Row = {};
      const set = relation.setField;
      for (let i = 0; i < relation.columns.length; i++) {
        const column = relation.columns[i]!;
        if (keysOnly && !column.key) continue;
        const value = tuple[i];
        if (typeof value === 'string') set(row, column.name, relation.converters[i]!(value));
        else if (value === null || value === undefined) set(row, column.name, null);
        else if (value === UNCHANGED_TOAST) {
          // An unchanged TOASTed value: take it from the old image when the server sent one, else leave it out — never null.
          if (fallback && Object.hasOwn(fallback, column.name)) set(row, column.name, fallback[column.name]!);
          else unchanged?.push(column.name);
        } else set(row, column.name, value.toString('base64'));
      }
      return row;
    };

    stream: for (;;) {
      try {
        for (;;) {
          if (ctx.signal.aborted) break;
          const message = replication.poll() ?? (await replication.next(IDLE_POLL_MS));
          const now = Date.now();
          if (now - lastLagAt >= (config.heartbeat_interval_ms ?? 10_000)) {
            lastLagAt = now;
            if (!lagInFlight) {
              // Off the hot path, one at a time (pg clients run one query at a time).
              lagInFlight = true;
              void reportLag(db, slot, ctx, replication).finally(() => (lagInFlight = false));
            }
          }
          if (!message) {
            if (txn) continue;
            yield* flushPages();
            if (committedLsn > checkpointedLsn) {
              checkpointedLsn = committedLsn;
              lastCheckpointAt = now;
              yield checkpointAt(committedLsn);
            }
            continue;
          }
          if (message.type === 'keepalive') {
            if (txn) continue;
            // Everything before walEnd has been sent and handled: a position safe to resume from.
            if (target !== undefined && message.walEnd >= target) {
              if (message.walEnd > committedLsn) committedLsn = message.walEnd;
              break;
            }
            if (message.walEnd > committedLsn && now - lastHeartbeatAt >= (config.heartbeat_interval_ms ?? 10_000)) {
              lastHeartbeatAt = now;
              committedLsn = message.walEnd;
              yield* flushPages();
              checkpointedLsn = committedLsn;
              lastCheckpointAt = now;
              yield checkpointAt(committedLsn);
            }
            continue;
          }
          const decoded = message.message;
          switch (decoded.tag) {
            case 'begin':
              txn = { xid: decoded.xid, commitTime: pgTimeToIso(decoded.commitTime), skip: decoded.finalLsn < streamFrom };
              recordStart = -1n;
              break;
            case 'commit': {
              const finished = txn;
              txn = undefined;
              if (!finished || finished.skip) break;
              committedLsn = decoded.endLsn;
              // Small transactions share pages: hand them on when a checkpoint is due, or at
              // once when nothing else is waiting (latency), else with the next full page.
              const due = now - lastCheckpointAt >= CHECKPOINT_EVERY_MS;
              if (due || replication.queued === 0 || now - heldSince >= HOLD_AT_MOST_MS) yield* flushPages();
              if (due) {
                checkpointedLsn = committedLsn;
                lastCheckpointAt = now;
                yield checkpointAt(committedLsn);
              }
              break;
            }
            case 'relation': {
              // The stream's table by oid, whatever it was called then (renamed and back: its
              // changes in between carry the other name); else by name, an earlier table of that
              // name (dropped, or renamed away) — unless the stream is snapshotted again: the
              // snapshot replaced that history.
              const stream =
                streams.find((s) => s.table.oid === decoded.oid) ??
                streams.find((s) => !renewed.has(s) && s.table.namespace === decoded.namespace && s.table.name === decoded.name);
              // Compared with the previous Relation message, or first with the columns the destination was configured with.
              const previous = relations.get(decoded.oid)?.columns ?? (stream ? configuredColumns(stream) : undefined);
              for (const column of decoded.columns) if (!types.has(column.typeOid)) await types.reload(db);
              relations.set(decoded.oid, {
                oid: decoded.oid,
                namespace: decoded.namespace,
                name: decoded.name,
                columns: decoded.columns,
                converters: decoded.columns.map((c) => types.converter(c.typeOid)),
                setField: fieldSetter(decoded.columns.map((c) => c.name)),
                stream,
              });
              if (stream && previous) reportSchemaChange(log, types, stream, previous, decoded.columns);
              break;
            }
            case 'type':
              if (!types.has(decoded.oid)) await types.reload(db);
              break;
            case 'insert': {
              const relation = relationOf(decoded.relation);
              if (!relation.stream || !txn || txn.skip) break;
              const full = pushChange(relation.stream, relation, txn, changePosition(message.walStart, message.position), 'c', rowOf(relation, decoded.after, false), null);
              if (full) yield full;
              break;
            }
            case 'update': {
              const relation = relationOf(decoded.relation);
              if (!relation.stream || !txn || txn.skip) break;
              const before = decoded.before ? rowOf(relation, decoded.before, decoded.beforeKind === 'K') : null;
              const unchanged: string[] = [];
              // Unchanged TOASTed columns are taken from the old image the server sent: every
              // column under FULL ('O'); the key columns under DEFAULT ('K'). The server sends
              // the old key also when the key did not change but a key column is stored out of
              // line (TOASTed), and the new tuple then lacks that column: without the old key,
              // the record had no key at all.
              const after = rowOf(relation, decoded.after, false, unchanged, before);
              // A 'K' image of a key that did not change is no before-image (records document
              // `_tributary_before` as null then): a keyed destination would delete the row
              // before upserting it, losing the columns the update did not send.
              const beforeImage = decoded.beforeKind === 'K' && before !== null && sameValues(before, after) ? null : before;
              const full = pushChange(relation.stream, relation, txn, changePosition(message.walStart, message.position), 'u', after, beforeImage, unchanged);
              if (full) yield full;
              break;
            }
            case 'delete': {
              const relation = relationOf(decoded.relation);
              if (!relation.stream || !txn || txn.skip) break;
              const full = pushChange(relation.stream, relation, txn, changePosition(message.walStart, message.position), 'd', null, rowOf(relation, decoded.before, decoded.beforeKind === 'K'));
              if (full) yield full;
              break;
            }
            case 'truncate': {
              if (!txn || txn.skip) break;
              for (const oid of decoded.relations) {
                const relation = relations.get(oid);
                if (!relation?.stream) continue;
                const full = pushChange(relation.stream, relation, txn, message.position, 't', null, null);
                if (full) yield full;
              }
              break;
            }
            case 'origin':
            case 'message':
              break;
            default:
              throw new TributaryError('fatal', {
                userMessage: `unexpected pgoutput message ${decoded.tag} (streaming of in-progress transactions is not requested)`,
              });
          }
        }
        break stream;
      } catch (error) {
        if (!isConnectionLoss(error) || reconnects >= MAX_RECONNECTS || ctx.signal.aborted) throw classifyStreamError(error, slot);
        reconnects++;
        // Resume right after the last transaction handed on in full; a partly handed-on one
        // is sent again whole (identical records, absorbed by keyed destinations).
        log.warn(`replication connection lost (${describe(error)}); reconnecting (attempt ${reconnects}/${MAX_RECONNECTS}) from ${formatLsn(handedLsn)}`);
        maxQueued = Math.max(maxQueued, replication.maxQueued);
        unregister?.();
        unregister = undefined;
        await replication.close();
        pages.clear();
        held = 0;
        txn = undefined;
        relations.clear();
        streamFrom = handedLsn;
        committedLsn = handedLsn;
        ({ replication, db } = await reconnect(ctx, config, db === sql ? undefined : db, reconnects));
        await waitForSlotRelease(db, slot);
        replication.start(slot, streamFrom, publication);
        unregister = registerStream(config, slot, replication);
      }
    }
    if (!txn) {
      yield* flushPages();
      if (committedLsn > checkpointedLsn) yield checkpointAt(committedLsn);
    }
    log.info('cdc stream stopped', {
      slot,
      rows,
      position: formatLsn(committedLsn),
      max_buffered_messages: Math.max(maxQueued, replication.maxQueued),
      reconnects,
      max_buffered_records: maxHeld,
    });
  } finally {
    unregister?.();
    await replication.close();
    if (db !== sql) await db.end().catch(() => undefined);
  }
}

/** Whether `row` has every column of `image` with the same value (key images: rare, off the common path). */
function sameValues(image: Row, row: Row): boolean {
  for (const [name, value] of Object.entries(image)) {
    if (!Object.hasOwn(row, name)) return false;
    const other = row[name];
    if (value !== other && JSON.stringify(value) !== JSON.stringify(other)) return false;
  }
  return true;
}

/**
 * The slot must not have confirmed more than this connection committed. This source confirms
 * only committed positions (after the state store saved them), so a slot ahead of the state
 * was moved by someone else: dropped and created again (by a DBA, or by another connection
 * given the same `slot_name`), advanced, or the state is older than the one last saved.
 * PostgreSQL starts streaming at the slot's confirmed position whatever position is asked for,
 * so the changes in between would be skipped without a word.
 */
function assertSlotNotAhead(slot: string, confirmed: Lsn | undefined, committed: Lsn): void {
  if (confirmed === undefined || confirmed <= committed) return;
  throw new TributaryError('config', {
    userMessage: `Replication slot "${slot}" has confirmed changes up to ${formatLsn(confirmed)}, past this connection's committed position ${formatLsn(
      committed,
    )}: it was created again or advanced by someone else (another connection using the same slot_name?), or the connection's state was restored from an older copy. The changes in between can no longer be read from it. Give each connection its own slot_name, then reset this connection's state to take a new snapshot.`,
  });
}

/**
 * The relfilenode of `table` and of every partition below it, by oid (relations without
 * storage have none). Taken before the table is read: a rewrite between this and the read's
 * lock leaves the saved file stale, which only makes a resume read the table again.
 */
async function relationFiles(sql: pg.Client, table: TableInfo): Promise<Map<string, string>> {
  const result = await sql.query<{ oid: string; file: string | null }>(
    `WITH RECURSIVE tree(oid) AS (SELECT $1::oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
     SELECT oid::text AS oid, pg_relation_filenode(oid)::text AS file FROM tree`,
    [table.oid],
  );
  return new Map(result.rows.filter((r) => r.file !== null).map((r) => [r.oid, r.file!]));
}

/** Connection losses the stream rides out by reconnecting (a server restart, a dropped socket). */
const MAX_RECONNECTS = 10;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function classifyStreamError(error: unknown, slot: string): unknown {
  if (TributaryError.is(error)) return error;
  if (isConnectionLoss(error)) {
    return new TributaryError('transient', {
      userMessage: `The replication connection of slot "${slot}" was lost and could not be re-established; the next sync resumes from the committed position.`,
      internalMessage: describe(error),
      cause: error,
    });
  }
  return new TributaryError('fatal', {
    userMessage: `Logical replication from slot "${slot}" failed: ${describe(error)}`,
    internalMessage: describe(error),
    cause: error,
  });
}

/** New replication and catalog connections, retried with backoff while the server comes back. */
async function reconnect(
  ctx: ConnectorContext,
  config: PostgresConfig,
  previousDb: pg.Client | undefined,
  attempt: number,
): Promise<{ replication: ReplicationConnection; db: pg.Client }> {
  await previousDb?.end().catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 250 * attempt)));
  return ctx.call(
    async () => {
      const db = await connect(config);
      try {
        return { replication: await ReplicationConnection.open(config), db };
      } catch (error) {
        await db.end().catch(() => undefined);
        throw error;
      }
    },
    { maxAttempts: 20, baseDelayMs: 250, maxDelayMs: 2_000 },
  );
}

/** A column as the schema-change report compares it: by type oid, or (configured catalogs) by its JSON type. */
interface KnownColumn {
  name: string;
  typeOid: number | undefined;
  /** The JSON `type` of the column in the configured catalog, as JSON text (absent when it has none, e.g. json). */
  jsonType?: string;
}

/**
 * Columns of the stream's configured schema: names, and the JSON type discovery gave each
 * (type oids are not in a catalog). A column retyped between syncs (e.g. int to text) then
 * shows in its JSON type; a retype within one JSON type (int4 to int2) does not.
 */
function configuredColumns(stream: CdcStream): KnownColumn[] {
  const schema = stream.configured.stream.json_schema as { properties?: Record<string, unknown> };
  const props = ((schema.properties?.after as { properties?: Record<string, unknown> } | undefined)?.properties ?? schema.properties ?? {}) as Record<string, { type?: unknown } | undefined>;
  return Object.keys(props)
    .filter((name) => !name.startsWith('_tributary_'))
    .map((name) => {
      const type = props[name]?.type;
      return { name, typeOid: undefined, ...(type !== undefined ? { jsonType: JSON.stringify(type) } : {}) };
    });
}

/**
 * A stream that just ended (this process's previous read, or a killed sync) holds the slot
 * until its walsender notices; wait for that rather than fail. A slot held for long is
 * someone else's.
 */
async function waitForSlotRelease(sql: pg.Client, slot: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const info = await slotInfo(sql, slot);
    if (!info?.active) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new TributaryError('config', { userMessage: `Replication slot "${slot}" is in use by another connection; give this connection its own slot_name.` });
}

function reportSchemaChange(
  log: ConnectorContext['logger'],
  types: TypeRegistry,
  stream: CdcStream,
  previous: readonly KnownColumn[],
  next: readonly RelationColumn[],
): void {
  const before = new Map(previous.map((c) => [c.name, c]));
  const after = new Map(next.map((c) => [c.name, c.typeOid]));
  const added = [...after.keys()].filter((c) => !before.has(c));
  const dropped = [...before.keys()].filter((c) => !after.has(c));
  const retyped = [...after.keys()].filter((c) => {
    const known = before.get(c);
    if (known?.typeOid !== undefined) return known.typeOid !== after.get(c);
    if (known?.jsonType === undefined) return false;
    const type = types.jsonSchema(after.get(c)!).type;
    return type !== undefined && JSON.stringify(type) !== known.jsonType;
  });
  if (added.length + dropped.length + retyped.length === 0) return;
  log.warn(
    `schema change on ${stream.key}: records from here on carry the new columns${
      retyped.length > 0
        ? `; a retyped column (ALTER TABLE … ALTER COLUMN … TYPE) had every row rewritten without change events, so rows stored downstream keep their old values: sync ${stream.key} again from a new snapshot (reset its state) if the conversion changed them`
        : ''
    }`,
    { stream: stream.key, added, dropped, retyped },
  );
}

/**
 * Slot lag to the logs and to the metrics (`tributary sync --metrics-file`): how far the
 * slot's confirmed position trails the server's WAL, i.e. what Postgres must keep on disk
 * for this connector.
 */
async function reportLag(sql: pg.Client, slot: string, ctx: ConnectorContext, replication: ReplicationConnection): Promise<void> {
  try {
    const info = await slotInfo(sql, slot);
    if (!info) return;
    if (info.lagBytes !== undefined) {
      ctx.metrics.gauge('tributary_postgres_slot_lag_bytes', info.lagBytes, { slot }, 'WAL bytes between the server position and the slot confirmed_flush_lsn');
    }
    ctx.metrics.gauge('tributary_postgres_replication_buffered_messages', replication.queued, { slot }, 'Replication messages received and not yet handed to the runtime');
    ctx.logger.info('replication slot lag', {
      slot,
      lag_bytes: info.lagBytes ?? null,
      confirmed_flush_lsn: info.confirmedFlush !== undefined ? formatLsn(info.confirmedFlush) : null,
      buffered_messages: replication.queued,
    });
  } catch {
    // Lag is informational; the stream itself reports real failures.
  }
}
