import {
  TributaryError,
  checkpoint,
  record,
  recordPage,
  streamStateOf,
  streamStatus,
  type ConfiguredAirbyteCatalog,
  type SourceMessage,
  type StateBlob,
  type SyncState,
} from '@tributary/core';
import type { SampleStream } from './config.js';
import { TIE_GROUP_SIZE, createIsoFormatter, isoOf, type Dataset, type StreamGenerator } from './dataset.js';

/** What one configured stream will read. Built (and validated) before anything is emitted. */
export interface StreamPlan {
  readonly generator: StreamGenerator;
  readonly name: SampleStream;
  readonly namespace: string | undefined;
  readonly incremental: boolean;
  /** Index of the first record to emit. */
  readonly start: number;
  /** The position before `start`: emitted as-is when the read stops before any record. */
  readonly initialState: StateBlob;
}

function isSampleStream(name: string, dataset: Dataset): name is SampleStream {
  return Object.prototype.hasOwnProperty.call(dataset, name);
}

function invalidState(stream: string, problem: string): TributaryError {
  return new TributaryError('config', {
    userMessage: `The saved state of stream "${stream}" is not one the sample source wrote: ${problem}. Reset the stream's state.`,
    stream: { name: stream },
  });
}

/**
 * Incremental state `{cursor, id}` resumes strictly after (cursor, id). Because
 * (cursor, id) order equals index order (see dataset.ts), the first record after it is
 * found by binary search, in O(log n) and without generating the skipped records.
 * A state without `id` resumes at the first record whose cursor equals `cursor`.
 */
function incrementalStart(generator: StreamGenerator, blob: StateBlob | undefined): { start: number; state: StateBlob } {
  if (blob === undefined || blob.cursor === undefined) return { start: 0, state: {} };
  const { cursor, id } = blob;
  const cursorMs = typeof cursor === 'string' ? Date.parse(cursor) : Number.NaN;
  if (!Number.isFinite(cursorMs)) throw invalidState(generator.stream, 'cursor is not an ISO-8601 date-time');
  if (id !== undefined && typeof id !== 'string') throw invalidState(generator.stream, 'id is not a string');
  const cursorId = id ?? '';
  let low = 0;
  let high = generator.count;
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    const at = generator.cursorMsAt(mid);
    if (at > cursorMs || (at === cursorMs && generator.idAt(mid) > cursorId)) high = mid;
    else low = mid + 1;
  }
  return { start: low, state: id === undefined ? { cursor } : { cursor, id } };
}

/** Full-refresh state `{offset}` resumes a partly read full refresh at record `offset`. */
function fullRefreshStart(generator: StreamGenerator, blob: StateBlob | undefined): { start: number; state: StateBlob } {
  const offset = blob?.offset;
  // A state of another shape (the stream used to be incremental) starts a fresh full refresh.
  if (offset === undefined) return { start: 0, state: {} };
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw invalidState(generator.stream, 'offset is not a non-negative integer');
  }
  const start = Math.min(offset, generator.count);
  return { start, state: start === 0 ? {} : { offset: start } };
}

export function planRead(dataset: Dataset, catalog: ConfiguredAirbyteCatalog, state: SyncState): StreamPlan[] {
  return catalog.streams.map((configured) => {
    const { name, namespace } = configured.stream;
    if (!isSampleStream(name, dataset)) {
      throw new TributaryError('config', {
        userMessage: `The sample source has no stream "${name}"; its streams are ${Object.keys(dataset).join(', ')}`,
        stream: namespace === undefined ? { name } : { name, namespace },
      });
    }
    const generator = dataset[name];
    const incremental = configured.sync_mode === 'incremental';
    const blob = streamStateOf(state, name, namespace);
    const { start, state: initialState } = incremental ? incrementalStart(generator, blob) : fullRefreshStart(generator, blob);
    return { generator, name, namespace, incremental, start, initialState };
  });
}

/** A synchronous message cursor: `next()` returns the next message, `close()` releases it. */
export interface MessageReader {
  /** Most records `asyncReader` puts in one page (1: records travel one by one). */
  readonly pageSize: number;
  next(): IteratorResult<SourceMessage, undefined>;
  close(): void;
}

const DONE: IteratorResult<SourceMessage, undefined> = Object.freeze({ done: true, value: undefined });

/**
 * The message sequence of a read. Per stream: STARTED, an estimate, RUNNING, the records
 * with a checkpoint after every `checkpointEvery` of them, a final checkpoint (always,
 * even for an empty stream or when nothing is newer than the state), COMPLETE.
 *
 * Checkpoints: incremental `{cursor, id}` of the last record emitted; full refresh
 * `{offset}` = index of the next record. The final checkpoint of a full refresh is `{}`:
 * the stream is complete, so the next full refresh starts from the first record again.
 *
 * When `signal` aborts, the read stops at the next record boundary: it emits a checkpoint
 * covering the records already emitted, INCOMPLETE for the stream, and nothing more.
 *
 * Written as an explicit state machine rather than a generator: the per-record path is a
 * few comparisons and two allocations (the data and its message), which matters at
 * millions of records per second.
 */
export function createMessageReader(plans: readonly StreamPlan[], checkpointEvery: number, signal: AbortSignal, pageSize = 1): MessageReader {
  let aborted = signal.aborted;
  const onAbort = (): void => {
    aborted = true;
  };
  signal.addEventListener('abort', onAbort, { once: true });

  /** Control messages (status, estimate, checkpoint) waiting to be returned, in order. */
  const pending: SourceMessage[] = [];
  let nextPlan = 0;
  let finished = false;
  // The stream being read.
  let plan: StreamPlan | undefined;
  let generator: StreamGenerator | undefined;
  let name: SampleStream = 'companies';
  let namespace: string | undefined;
  let incremental = false;
  let index = 0;
  let count = 0;
  let group = -1;
  let cursor = '';
  let sinceCheckpoint = 0;
  let formatCursor = createIsoFormatter();

  /** The state covering every record of the current stream emitted so far. */
  function stateSoFar(): StateBlob {
    if (plan === undefined || generator === undefined || index === plan.start) return plan?.initialState ?? {};
    if (!incremental) return { offset: index };
    return { cursor: isoOf(generator.cursorMsAt(index - 1)), id: generator.idAt(index - 1) };
  }

  function openStream(next: StreamPlan): void {
    plan = next;
    generator = next.generator;
    name = next.name;
    namespace = next.namespace;
    incremental = next.incremental;
    index = next.start;
    count = generator.count;
    group = -1;
    cursor = '';
    sinceCheckpoint = 0;
    formatCursor = createIsoFormatter();
    const rows = count - index;
    const bytes = rows === 0 ? 0 : rows * JSON.stringify(generator.recordAt(index, isoOf(generator.cursorMsAt(index)))).length;
    pending.push(
      streamStatus(name, 'STARTED', namespace),
      namespace === undefined ? { kind: 'estimate', stream: name, rows, bytes } : { kind: 'estimate', stream: name, namespace, rows, bytes },
      streamStatus(name, 'RUNNING', namespace),
    );
  }

  function closeStream(status: 'COMPLETE' | 'INCOMPLETE'): void {
    const state = status === 'COMPLETE' && !incremental ? {} : stateSoFar();
    pending.push(checkpoint(name, state, namespace), streamStatus(name, status, namespace));
    generator = undefined;
  }

  function close(): void {
    finished = true;
    generator = undefined;
    pending.length = 0;
    signal.removeEventListener('abort', onAbort);
  }

  function next(): IteratorResult<SourceMessage, undefined> {
    for (;;) {
      if (pending.length !== 0) return { done: false, value: pending.shift() as SourceMessage };
      if (generator !== undefined) {
        if (aborted) {
          closeStream('INCOMPLETE');
          finished = true;
          continue;
        }
        if (index < count) {
          const at = index++;
          const g = (at / TIE_GROUP_SIZE) | 0;
          if (g !== group) {
            group = g;
            cursor = formatCursor(generator.groupCursorMs(g));
          }
          const message = record(name, generator.recordAt(at, cursor), namespace);
          if (++sinceCheckpoint === checkpointEvery) {
            sinceCheckpoint = 0;
            pending.push(checkpoint(name, incremental ? { cursor, id: generator.idAt(at) } : { offset: index }, namespace));
          }
          return { done: false, value: message };
        }
        closeStream('COMPLETE');
        continue;
      }
      if (finished || aborted || nextPlan >= plans.length) {
        close();
        return DONE;
      }
      openStream(plans[nextPlan++] as StreamPlan);
    }
  }

  return { pageSize, next, close };
}

/** Messages between two macrotask turns: lets timers and signals run under a synchronous consumer. */
const YIELD_EVERY = 8192;


/**
 * Adapts a MessageReader to an AsyncIterableIterator of pages: consecutive records of one
 * stream (up to `pageSize`, never across a checkpoint or status message) become one
 * `records` message, so the consumer's per-message cost is paid per page. One settled
 * promise per message (no async-generator queue), a macrotask turn every YIELD_EVERY
 * messages, and `return()` closes the reader. `open` runs on the first `next()`, so setup
 * errors reject it.
 */
export function asyncReader(open: () => MessageReader): AsyncIterableIterator<SourceMessage> {
  let reader: MessageReader | undefined;
  let closed = false;
  let calls = 0;
  /** A non-record message read while filling a page; returned by the next call. */
  let held: IteratorResult<SourceMessage, undefined> | undefined;

  function nextPage(r: MessageReader): IteratorResult<SourceMessage, undefined> {
    const first = held ?? r.next();
    held = undefined;
    if (first.done || first.value.kind !== 'record' || r.pageSize === 1) return first;
    const { stream, namespace } = first.value;
    const page = [first.value.data];
    while (page.length < r.pageSize) {
      const result = r.next();
      if (result.done || result.value.kind !== 'record' || result.value.stream !== stream) {
        held = result;
        break;
      }
      page.push(result.value.data);
    }
    return { done: false, value: recordPage(stream, page, namespace) };
  }

  return {
    next(): Promise<IteratorResult<SourceMessage, undefined>> {
      if (closed) return Promise.resolve(DONE);
      let result: IteratorResult<SourceMessage, undefined>;
      try {
        reader ??= open();
        result = nextPage(reader);
      } catch (error) {
        closed = true;
        reader?.close();
        return Promise.reject(error);
      }
      if (++calls % YIELD_EVERY === 0) return new Promise((resolve) => setImmediate(resolve, result));
      return Promise.resolve(result);
    },
    return(): Promise<IteratorResult<SourceMessage, undefined>> {
      closed = true;
      reader?.close();
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
