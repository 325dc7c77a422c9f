import type { DestinationSession, DestinationStream, RejectedRecord } from '../connector/destination.js';
import type { SourceMessage } from '../connector/source.js';
import type { SyncState } from '../connector/state.js';
import { TributaryError, toTributaryError } from '../errors.js';
import type { AirbyteStreamStatus, RecordData, StateBlob } from '../protocol/messages.js';
import { streamKey } from '../protocol/messages.js';
import { isStringTooLong, recordTooLongError, stringifyJson } from '../util/json-text.js';
import { BoundedQueue } from './bounded-queue.js';

/** When a partial batch is handed to the destination. */
export interface BatchingOptions {
  /** Records per batch (default 2 000: large enough to amortise a destination call, small
   * enough that a batch dies young — bigger batches get promoted by the GC and cost more). */
  maxRecords?: number;
  /** Estimated JSON bytes per batch (default 8 MiB). */
  maxBytes?: number;
  /** Longest a record waits in a partial batch, ms (default 1 000). Bounds latency on slow streams. */
  maxAgeMs?: number;
  /** Batches queued between reader and destination (default 4). Bounds memory. */
  maxBatchesInFlight?: number;
  /**
   * Least time between two destination commits triggered by checkpoints, ms (default 1 000).
   * Checkpoints arriving faster are coalesced into the next commit.
   */
  commitIntervalMs?: number;
}

/** Live counters of one stream. Read by progress displays; written only by the pipeline. */
export interface StreamProgress {
  readonly key: string;
  readonly name: string;
  readonly namespace: string | undefined;
  /** Records read from the source. */
  read: number;
  /** Records handed to the destination (stored or rejected). */
  written: number;
  /** Records the destination stored and made durable; rejected records are not among them. */
  committed: number;
  /** Records the destination set aside (quarantined) with a reason, committed or not yet. */
  rejected: number;
  /** Estimated JSON bytes read. */
  bytes: number;
  checkpointsCommitted: number;
  status: AirbyteStreamStatus;
}

export interface CommittedCheckpoint {
  state: SyncState;
  /**
   * The streams whose checkpoint this state advanced, by stream key, with the records the
   * destination committed (stored plus rejected) and rejected since that stream's previous state.
   */
  streams: Record<string, { records: number; rejected: number }>;
}

export interface PipelineOptions {
  messages: AsyncIterable<SourceMessage>;
  session: DestinationSession;
  streams: readonly DestinationStream[];
  initialState: SyncState;
  batching?: BatchingOptions;
  /** Stop reading at the next message boundary, then flush and commit. */
  signal?: AbortSignal;
  /**
   * Called once when the destination failed: the reader stops at the next message, so a
   * source waiting for data (a webhook receiver, a CDC stream) must be told to stop too, or
   * the failed sync would wait for that source's next message, possibly forever.
   */
  onDestinationFailed?(error: unknown): void;
  /** Runs a destination call with the destination's retry policy. */
  callDestination<T>(task: () => Promise<T>): Promise<T>;
  /**
   * Persists a state whose every record the destination has durably committed. Called
   * sequentially; the next destination commit waits for it. Must be durable on resolve.
   */
  commitState(checkpoint: CommittedCheckpoint): Promise<void>;
  /** Called once before reading, with the live progress of every stream. */
  onStart?(streams: ReadonlyMap<string, StreamProgress>): void;
  onRejected?(stream: StreamProgress, rejected: RejectedRecord[], batch: RecordBatchOp): void;
  onStatus?(stream: StreamProgress, status: AirbyteStreamStatus): void;
  /**
   * The caller reports the end status (COMPLETE / INCOMPLETE) itself, with `reportEndStatus`,
   * once it finished the session: a sync whose destination then fails to close (an overwrite
   * that cannot publish) did not complete.
   */
  callerReportsEndStatus?: boolean;
  onEstimate?(stream: StreamProgress, rows: number | undefined, bytes: number | undefined): void;
}

export type PipelineOutcome = 'completed' | 'interrupted' | 'failed';

export interface PipelineResult {
  outcome: PipelineOutcome;
  error?: TributaryError;
  /** The last committed state (the initial one if nothing was committed). */
  state: SyncState;
  streams: Map<string, StreamProgress>;
}

export interface RecordBatchOp {
  readonly type: 'batch';
  readonly stream: StreamCursor;
  readonly records: RecordData[];
  readonly emittedAt: number;
}
type Op = RecordBatchOp | { readonly type: 'commit' };

/** Per-stream pipeline bookkeeping (progress plus the partial batch). */
interface StreamCursor extends StreamProgress {
  batch: RecordData[];
  batchBytes: number;
  batchStartedAt: number;
  /** JSON size of the last sampled record; every record is costed at it. */
  sampleSize: number;
  sampleCountdown: number;
  /** Records covered by the last destination commit, stored or rejected (`committed + rejectedCommitted`). */
  settled: number;
  /** Rejected records covered by the last destination commit. */
  rejectedCommitted: number;
  /** `settled` / `rejectedCommitted` when this stream's state last advanced. */
  settledAtState: number;
  rejectedAtState: number;
}

/** A checkpoint waiting for the destination to make the records before it durable. */
interface PendingCheckpoint {
  /** Per stream, how many records must be settled (stored or rejected) by a commit first. */
  requires: Array<[StreamCursor, number]>;
  apply(state: SyncState): void;
}

// One record in SAMPLE_EVERY is serialized to estimate batch bytes; the rest are costed at it.
const SAMPLE_EVERY = 256;

/**
 * Moves source messages to a destination session and commits checkpoints only after the
 * destination durably acknowledged every record before them.
 *
 * Reader (this call's loop) → per-stream partial batches → bounded queue → writer loop
 * (destination write/commit, state commit). The reader awaits only when the queue is full,
 * so a slow destination slows the source instead of growing memory.
 *
 * A checkpoint of stream S requires S's records read before it to be committed; a global
 * checkpoint requires that of every stream. Checkpoints are applied in arrival order, so the
 * committed state never runs ahead of the data.
 */
/**
 * Longest the pipeline keeps the event loop before letting it turn (ms). A source and
 * destination that never wait on I/O (generated or cached data, a destination that only
 * stages in memory) resolve every await as a microtask, so without this nothing else runs
 * until the sync ends: not the CLI's SIGINT/SIGTERM handler that stops a sync, not the age
 * timer that cuts batches, not the I/O callbacks of a destination's background work (the
 * lake's Parquet writes started only when the state store next touched the disk).
 */
const YIELD_EVERY_MS = 10;

function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Refuses batching options the pipeline cannot run with, as a `config` error naming the
 * option: with fewer than one batch allowed in flight the reader waits forever for queue
 * space (the sync hangs with its session open and its connection locked), and `NaN` would
 * remove the bound altogether. The sync file's schema checks its own; these may also come
 * from a destination's declaration or a `runSync` caller.
 */
export function checkBatching(batching: BatchingOptions | undefined): void {
  const inFlight = batching?.maxBatchesInFlight;
  if (inFlight !== undefined && !(inFlight >= 1)) {
    throw new TributaryError('config', { userMessage: `Batching option maxBatchesInFlight must be at least 1, got ${String(inFlight)}` });
  }
}

export async function runPipeline(options: PipelineOptions): Promise<PipelineResult> {
  checkBatching(options.batching);
  const maxRecords = options.batching?.maxRecords ?? 2_000;
  const maxBytes = options.batching?.maxBytes ?? 8 * 1024 * 1024;
  const maxAgeMs = options.batching?.maxAgeMs ?? 1_000;
  const commitIntervalMs = options.batching?.commitIntervalMs ?? 1_000;
  const queue = new BoundedQueue<Op>(options.batching?.maxBatchesInFlight ?? 4);

  const streams = new Map<string, StreamCursor>();
  for (const s of options.streams) {
    streams.set(s.key, {
      key: s.key,
      name: s.name,
      namespace: s.namespace,
      read: 0,
      written: 0,
      committed: 0,
      rejected: 0,
      bytes: 0,
      checkpointsCommitted: 0,
      status: 'STARTED',
      batch: [],
      batchBytes: 0,
      batchStartedAt: 0,
      sampleSize: 0,
      sampleCountdown: 0,
      settled: 0,
      rejectedCommitted: 0,
      settledAtState: 0,
      rejectedAtState: 0,
    });
  }
  options.onStart?.(streams);
  /** The checkpoints applied so far, in order: the state the next `commitState` saves. */
  const state: SyncState = structuredClone(options.initialState);
  /**
   * The state `commitState` last accepted (the initial one until then): what the result
   * reports. Not `state`, which already holds the checkpoints of a save that failed.
   */
  let committed: SyncState = structuredClone(options.initialState);
  const pending: PendingCheckpoint[] = [];
  let lastCommitAt = Date.now();

  // --- producer side -------------------------------------------------------------------
  // Every enqueue goes through one promise chain so batches from the reader and from the
  // age timer reach the queue in the order they were cut.
  let producerChain: Promise<void> = Promise.resolve();
  const enqueue = (op: Op): Promise<void> => {
    const queued = producerChain.then(() => queue.push(op));
    // A failed push surfaces to whoever awaits it (the reader); fire-and-forget callers
    // (the age timer) must not turn it into an unhandled rejection.
    queued.catch(() => {});
    producerChain = queued;
    return queued;
  };
  const cutBatch = (s: StreamCursor): Promise<void> | undefined => {
    if (s.batch.length === 0) return undefined;
    const op: RecordBatchOp = { type: 'batch', stream: s, records: s.batch, emittedAt: s.batchStartedAt };
    s.batch = [];
    s.batchBytes = 0;
    return enqueue(op);
  };
  const requestCommit = (): Promise<void> => {
    for (const s of streams.values()) void cutBatch(s);
    lastCommitAt = Date.now();
    return enqueue({ type: 'commit' });
  };

  // Slow streams: a timer cuts batches that waited too long and commits pending checkpoints.
  const ageTimer = setInterval(() => {
    const now = Date.now();
    let cut = false;
    for (const s of streams.values()) {
      if (s.batch.length > 0 && now - s.batchStartedAt >= maxAgeMs) {
        void cutBatch(s)?.catch(() => {});
        cut = true;
      }
    }
    if ((cut || pending.length > 0) && now - lastCommitAt >= commitIntervalMs) void requestCommit().catch(() => {});
  }, Math.max(10, Math.min(maxAgeMs, commitIntervalMs) / 2));
  ageTimer.unref?.();

  // --- consumer side -------------------------------------------------------------------
  let lastTurn = performance.now();
  /** Lets the event loop turn when the pipeline has held it for YIELD_EVERY_MS. */
  const letEventLoopTurn = async (): Promise<void> => {
    if (performance.now() - lastTurn < YIELD_EVERY_MS) return;
    await turnEventLoop();
    lastTurn = performance.now();
  };

  const writer = (async () => {
    for (let op = await queue.shift(); op !== undefined; op = await queue.shift()) {
      await letEventLoopTurn();
      if (op.type === 'batch') {
        const batch = op;
        const outcome = await options
          .callDestination(() => options.session.write({ stream: batch.stream.key, records: batch.records, emittedAt: batch.emittedAt }))
          .catch((error: unknown) => {
            throw isStringTooLong(error) ? recordTooLongError(batch.stream, 'the destination cannot write it', error) : error;
          });
        batch.stream.written += batch.records.length;
        const rejected = outcome?.rejected;
        if (rejected && rejected.length > 0) {
          batch.stream.rejected += rejected.length;
          options.onRejected?.(batch.stream, rejected, batch);
        }
        continue;
      }
      await options.callDestination(() => options.session.commit());
      for (const s of streams.values()) {
        s.settled = s.written;
        s.rejectedCommitted = s.rejected;
        s.committed = s.settled - s.rejectedCommitted;
      }
      // Only the oldest satisfied checkpoints, in arrival order: a later checkpoint that is
      // already covered (a stream with no new records) must wait for an earlier one that is not
      // (a global checkpoint still waiting on another stream), or that earlier one, applied on
      // a later commit, would set the stream back to its older position.
      let satisfied = 0;
      while (satisfied < pending.length && pending[satisfied]!.requires.every(([s, n]) => s.settled >= n)) satisfied++;
      const ready = pending.splice(0, satisfied);
      if (ready.length === 0) continue;
      const advanced = new Set<StreamCursor>();
      for (const cp of ready) {
        cp.apply(state);
        for (const [s] of cp.requires) {
          s.checkpointsCommitted++;
          advanced.add(s);
        }
      }
      const counts: CommittedCheckpoint['streams'] = {};
      for (const s of advanced) {
        counts[s.key] = { records: s.settled - s.settledAtState, rejected: s.rejectedCommitted - s.rejectedAtState };
        s.settledAtState = s.settled;
        s.rejectedAtState = s.rejectedCommitted;
      }
      await options.commitState({ state: structuredClone(state), streams: counts });
      committed = structuredClone(state);
    }
  })();
  // --- reader loop (hot path: keep per-record work minimal) -------------------------------
  let stopping = false;
  // A failed destination stops the reader at the next message (or at its next push).
  writer.catch((error: unknown) => {
    stopping = true;
    queue.fail(error);
    options.onDestinationFailed?.(error);
  });
  const onAbort = (): void => {
    stopping = true;
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) stopping = true;

  let outcome: PipelineOutcome = 'completed';
  let error: TributaryError | undefined;
  let last: StreamCursor | undefined;
  const lookup = (name: string, namespace: string | undefined): StreamCursor => {
    const key = streamKey(name, namespace);
    const s = streams.get(key);
    if (!s) {
      throw new TributaryError('fatal', {
        userMessage: `The source emitted stream "${key}", which is not in the configured catalog`,
        stream: namespace === undefined ? { name } : { name, namespace },
      });
    }
    return s;
  };

  /**
   * A checkpoint's state as the runtime keeps it: a copy (the state is what the source says
   * as of this message; a source may keep changing the object it yielded while the records
   * before it are written), and a JSON object — Airbyte's `stream_state` / `shared_state` is
   * one and the state stores refuse anything else on load, so another value (easy to yield
   * from JavaScript) would be saved and then keep every later sync of the connection from
   * starting. It fails the sync here instead, before it is committed.
   */
  const stateBlob = (value: unknown, what: string): StateBlob => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new TributaryError('fatal', {
        userMessage: `The source yielded ${what} whose state is not a JSON object (${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}); refusing to store it. This is a connector bug.`,
      });
    }
    return structuredClone(value as StateBlob);
  };

  try {
    if (!stopping) {
      let sinceTurnCheck = 0;
      for await (const message of options.messages) {
        // Checked per page, and per 256 single records (a clock read costs more than a record).
        if (message.kind !== 'record' || ++sinceTurnCheck === 256) {
          sinceTurnCheck = 0;
          await letEventLoopTurn();
        }
        if (message.kind === 'record') {
          let s = last;
          if (s === undefined || s.name !== message.stream || s.namespace !== message.namespace) {
            s = last = lookup(message.stream, message.namespace);
          }
          const batch = s.batch;
          if (batch.length === 0) s.batchStartedAt = Date.now();
          batch.push(message.data);
          s.read++;
          if (s.sampleCountdown-- === 0) {
            s.sampleCountdown = SAMPLE_EVERY - 1;
            s.sampleSize = sampledJsonSize(message.data, maxBytes);
          }
          s.batchBytes += s.sampleSize;
          s.bytes += s.sampleSize;
          if (batch.length >= maxRecords || s.batchBytes >= maxBytes) await cutBatch(s);
        } else if (message.kind === 'records') {
          const s = lookup(message.stream, message.namespace);
          const page = message.records;
          if (page.length === 0) continue;
          s.sampleSize = sampledJsonSize(page[0], maxBytes);
          const pageBytes = page.length * s.sampleSize;
          if (s.batch.length === 0 && page.length * 2 >= maxRecords && page.length <= maxRecords && pageBytes <= maxBytes) {
            // A page of batch size is a batch: hand the array over without copying it.
            s.read += page.length;
            s.bytes += pageBytes;
            s.batch = page;
            s.batchStartedAt = Date.now();
            await cutBatch(s);
            continue;
          }
          for (let i = 0; i < page.length; i++) {
            if (s.batch.length === 0) s.batchStartedAt = Date.now();
            s.batch.push(page[i]!);
            s.batchBytes += s.sampleSize;
            if (s.batch.length >= maxRecords || s.batchBytes >= maxBytes) await cutBatch(s);
          }
          s.read += page.length;
          s.bytes += page.length * s.sampleSize;
        } else if (message.kind === 'checkpoint') {
          const s = lookup(message.stream, message.namespace);
          const blob = stateBlob(message.state, `a checkpoint of stream "${s.key}"`);
          pending.push({ requires: [[s, s.read]], apply: (st) => void (st.streams[s.key] = blob) });
          if (Date.now() - lastCommitAt >= commitIntervalMs) await requestCommit();
        } else if (message.kind === 'global-checkpoint') {
          const shared = stateBlob(message.shared, 'a global checkpoint');
          const perStream = message.streams.map((x) => {
            const s = lookup(x.stream, x.namespace);
            return [s, stateBlob(x.state, `a global checkpoint, for stream "${s.key}",`)] as const;
          });
          pending.push({
            requires: [...streams.values()].map((s) => [s, s.read] as [StreamCursor, number]),
            apply: (st) => {
              st.shared = shared;
              for (const [s, blob] of perStream) st.streams[s.key] = blob;
            },
          });
          if (Date.now() - lastCommitAt >= commitIntervalMs) await requestCommit();
        } else if (message.kind === 'status') {
          const s = lookup(message.stream, message.namespace);
          // COMPLETE is reported by the runtime once the data is committed, not by the source.
          if (message.status !== 'COMPLETE' && message.status !== s.status) {
            s.status = message.status;
            options.onStatus?.(s, message.status);
          }
        } else if (message.kind === 'estimate') {
          options.onEstimate?.(lookup(message.stream, message.namespace), message.rows, message.bytes);
        }
        if (stopping) break;
      }
    }
    if (stopping) outcome = 'interrupted';
  } catch (caught) {
    // A source that throws its abort reason while being stopped was interrupted, not broken.
    const aborted = options.signal?.aborted === true && (caught === options.signal.reason || (caught as Error | null)?.name === 'AbortError');
    if (aborted) outcome = 'interrupted';
    else {
      outcome = 'failed';
      error = toTributaryError(caught, 'The sync failed');
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    clearInterval(ageTimer);
  }

  // Whatever stopped the reader, commit what was read so far: the state advances to the last
  // checkpoint the destination acknowledged, so the next sync resumes there.
  try {
    await requestCommit();
    queue.close();
    await writer;
  } catch (caught) {
    queue.close();
    const writeError = toTributaryError(caught, 'The destination failed');
    if (!error) error = writeError;
    outcome = 'failed';
  }
  if (!options.callerReportsEndStatus) reportEndStatus(streams.values(), outcome === 'completed', options.onStatus);
  return error ? { outcome, error, state: committed, streams } : { outcome, state: committed, streams };
}

/**
 * The estimated JSON bytes of a sampled record: its text's length plus a newline. A record
 * whose text is longer than a string can be is costed at `ceiling` (it fills a batch on its
 * own): the estimate must not fail the sync; whether the record can be written is the
 * destination's to say (a write failing so is reported by `recordTooLongError`, naming the
 * stream, instead of as "Unexpected error").
 */
function sampledJsonSize(record: RecordData | undefined, ceiling: number): number {
  try {
    return (stringifyJson(record)?.length ?? 4) + 1;
  } catch (error) {
    if (isStringTooLong(error)) return ceiling;
    throw error;
  }
}

/** Sets and reports every stream's end status: COMPLETE when the sync completed, else INCOMPLETE. */
export function reportEndStatus(
  streams: Iterable<StreamProgress>,
  completed: boolean,
  onStatus?: (stream: StreamProgress, status: AirbyteStreamStatus) => void,
): void {
  for (const s of streams) {
    s.status = completed ? 'COMPLETE' : 'INCOMPLETE';
    onStatus?.(s, s.status);
  }
}
