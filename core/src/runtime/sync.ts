import { parseConfig } from '../config/schema.js';
import { collectSecrets, createRedactor, type Redactor } from '../config/secrets.js';
import { createConnectorContext } from '../connector/create-context.js';
import type { Destination, DestinationSession, DestinationStream } from '../connector/destination.js';
import type { Source } from '../connector/source.js';
import { emptyState, withDescriptors, type SyncState } from '../connector/state.js';
import { TributaryError, toTributaryError } from '../errors.js';
import { createLogger, type Logger, type LogSink } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AirbyteStreamStatusReason, AirbyteStreamStatus, ConfiguredAirbyteCatalog } from '../protocol/messages.js';
import { streamKey } from '../protocol/messages.js';
import { stateText } from '../state/codec.js';
import type { StateStore } from '../state/store.js';
import { checkBatching, reportEndStatus, runPipeline, type BatchingOptions, type CommittedCheckpoint, type PipelineOutcome, type StreamProgress } from './pipeline.js';

/** Everything the runtime tells its observer (the CLI prints these). */
export type SyncEvent =
  | { type: 'log'; level: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'; message: string; fields?: Record<string, unknown> }
  | { type: 'status'; stream: StreamProgress; status: AirbyteStreamStatus; reasons?: AirbyteStreamStatusReason[] }
  | { type: 'estimate'; stream: StreamProgress; rows?: number; bytes?: number }
  | { type: 'state'; state: SyncState; streams: CommittedCheckpoint['streams'] };

export interface SyncOptions {
  /** Names the connection in the state store. */
  connection: string;
  source: Source;
  /** Raw source config; validated against the source's spec here. */
  sourceConfig: unknown;
  destination: Destination;
  destinationConfig: unknown;
  catalog: ConfiguredAirbyteCatalog;
  stateStore: StateStore;
  batching?: BatchingOptions;
  /** Abort to stop gracefully: stop reading, flush, commit, return `interrupted`. */
  signal?: AbortSignal;
  onEvent?: (event: SyncEvent) => void;
  /** Receives the gauges the source and the destination set (`ctx.metrics`). */
  metrics?: Metrics;
}

export interface SyncResult {
  outcome: PipelineOutcome;
  error?: TributaryError;
  state: SyncState;
  streams: StreamProgress[];
  durationMs: number;
}

/**
 * Runs one sync: source → destination with checkpoint-after-commit.
 *
 * Guarantees: a state reaches the store only after the destination's `commit()` covered
 * every record before it; `source.ack(state)` runs only after the store saved it; a failed
 * or interrupted sync still commits what was acknowledged, so the next run resumes there.
 * Full-refresh streams drop their state once completed, so the next sync reads them anew.
 * One sync per connection at a time: it holds the state store's connection lock (when the
 * store has one) from before it loads the state until it returns.
 */
export async function runSync(options: SyncOptions): Promise<SyncResult> {
  const lock = await options.stateStore.lock?.(options.connection);
  try {
    return await syncHoldingLock(options);
  } finally {
    await lock?.release();
  }
}

async function syncHoldingLock(options: SyncOptions): Promise<SyncResult> {
  const started = Date.now();
  const { source, destination, catalog } = options;
  const sourceConfig = parseConfig(source.spec.connectionSpecification, options.sourceConfig, 'source config');
  const destinationConfig = parseConfig(
    destination.spec.connectionSpecification,
    options.destinationConfig,
    'destination config',
  );
  const redact = createRedactor([
    ...collectSecrets(source.spec.connectionSpecification, sourceConfig),
    ...collectSecrets(destination.spec.connectionSpecification, destinationConfig),
  ]);
  const emit = options.onEvent ?? (() => {});
  const sink =
    (component: string): LogSink =>
    (level, message, fields) =>
      emit({
        type: 'log',
        level: level === 'FATAL' ? 'ERROR' : level === 'TRACE' ? 'DEBUG' : level,
        message: redact(`[${component}] ${message}`),
        ...(fields ? { fields: JSON.parse(redact(JSON.stringify(fields))) as Record<string, unknown> } : {}),
      });
  const logger: Logger = createLogger(sink('runtime'));

  checkConfiguredCatalog(catalog, destination);
  const batching: BatchingOptions = { ...destination.batching, ...options.batching };
  // Before the destination is opened: refused options leave nothing to close.
  checkBatching(batching);
  // Named from the catalog: every state this sync saves names its streams as the catalog
  // does, also when it resumes from a state stored before descriptors were kept.
  const initialState = withDescriptors((await options.stateStore.load(options.connection)) ?? emptyState(), catalog.streams.map((c) => c.stream));
  // A full refresh of a stream that cannot resume (`is_resumable: false`, e.g. a table read
  // by physical position) starts over: the position an interrupted refresh saved is not
  // handed to the source, and the destination is told it is not resuming (a new generation).
  for (const c of catalog.streams) {
    if (c.sync_mode === 'full_refresh' && c.stream.is_resumable === false) delete initialState.streams[streamKey(c.stream.name, c.stream.namespace)];
  }

  const stopReading = new AbortController();
  const onOuterAbort = (): void => stopReading.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (options.signal?.aborted) stopReading.abort(options.signal.reason);

  const sourceCtx = createConnectorContext({
    logger: createLogger(sink(source.name)),
    connection: options.connection,
    signal: stopReading.signal,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(source.rateLimit ? { rateLimit: source.rateLimit } : {}),
    ...(source.retry ? { retry: source.retry } : {}),
  });
  // The destination keeps its own signal: it must be able to flush and commit after the
  // source was told to stop.
  const destinationCtx = createConnectorContext({
    logger: createLogger(sink(destination.name)),
    connection: options.connection,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(destination.rateLimit ? { rateLimit: destination.rateLimit } : {}),
    ...(destination.retry ? { retry: destination.retry } : {}),
  });

  const streams = toDestinationStreams(catalog, (key) => initialState.streams[key] !== undefined);

  // The limiter is shared by every stream of the source: a pause slows all unfinished streams.
  let progress: ReadonlyMap<string, StreamProgress> = new Map();
  const unsubscribeRateLimit = sourceCtx.limiter.onPause((until) => {
    for (const stream of progress.values()) {
      if (stream.status !== 'STARTED' && stream.status !== 'RUNNING') continue;
      emit({ type: 'status', stream, status: 'RUNNING', reasons: [{ type: 'RATE_LIMITED', rate_limited: { quota_reset: until } }] });
    }
    logger.warn(`rate limited by the source's peer; pausing until ${new Date(until).toISOString()}`);
  });

  /** One attempt at opening; an error that is no TributaryError is named after the destination. */
  const openOnce = async (): Promise<DestinationSession> => {
    try {
      return await destination.open(destinationCtx, destinationConfig, streams);
    } catch (error) {
      if (TributaryError.is(error)) throw error;
      const e = toTributaryError(error, `Destination "${destination.name}" could not open`);
      throw new TributaryError(e.kind, { userMessage: `Destination "${destination.name}" could not open: ${e.internalMessage ?? e.userMessage}`, cause: error });
    }
  };
  let session;
  try {
    // Retried like a write (the destination's retry policy): a transient failure at open (a
    // dropped connection while a lake reads its commit log) failed the whole sync, though
    // nothing had been read or written yet. A failed open releases what it took (contract).
    session = await destinationCtx.call(openOnce);
  } catch (error) {
    unsubscribeRateLimit();
    options.signal?.removeEventListener('abort', onOuterAbort);
    throw toTributaryError(error, `Destination "${destination.name}" could not open`);
  }
  let result;
  try {
    result = await runPipeline({
      messages: source.read(sourceCtx, sourceConfig, catalog, structuredClone(initialState)),
      session,
      streams,
      initialState,
      batching,
      signal: stopReading.signal,
      onDestinationFailed: (error) => stopReading.abort(error),
      callDestination: (task) => destinationCtx.call(task),
      commitState: async ({ state, streams: counts }) => {
        assertNoSecrets(state, redact);
        await options.stateStore.save(options.connection, state);
        emit({ type: 'state', state, streams: counts });
        if (source.ack) {
          try {
            await source.ack(sourceCtx, sourceConfig, state);
          } catch (error) {
            // The position stays unconfirmed upstream; the next ack (or sync) confirms it.
            logger.warn(`source ack failed: ${toTributaryError(error).userMessage}`);
          }
        }
      },
      onStart: (streams) => {
        progress = streams;
        for (const stream of streams.values()) emit({ type: 'status', stream, status: 'STARTED' });
      },
      onStatus: (stream, status) => emit({ type: 'status', stream, status }),
      callerReportsEndStatus: true,
      onEstimate: (stream, rows, bytes) =>
        emit({ type: 'estimate', stream, ...(rows !== undefined ? { rows } : {}), ...(bytes !== undefined ? { bytes } : {}) }),
      onRejected: (stream, rejected) => {
        const sample = rejected.slice(0, 3).map((r) => r.reason).join('; ');
        logger.warn(`${rejected.length} record(s) of ${stream.key} quarantined by the destination: ${sample}`);
      },
    });
  } finally {
    unsubscribeRateLimit();
    options.signal?.removeEventListener('abort', onOuterAbort);
  }

  let state = result.state;
  if (result.outcome === 'completed') {
    try {
      // Forget completed full refreshes *before* the destination publishes them: a crash in
      // between then redoes the refresh, whereas the other order could resume a finished
      // refresh into an empty staging area and publish that.
      const fullRefreshKeys = streams.filter((s) => s.syncMode === 'full_refresh' && state.streams[s.key] !== undefined).map((s) => s.key);
      if (fullRefreshKeys.length > 0) {
        const forgotten = structuredClone(state);
        for (const key of fullRefreshKeys) {
          delete forgotten.streams[key];
          if (forgotten.descriptors) delete forgotten.descriptors[key];
        }
        if (forgotten.descriptors && Object.keys(forgotten.descriptors).length === 0) delete forgotten.descriptors;
        await options.stateStore.save(options.connection, forgotten);
        state = forgotten;
      }
    } catch (error) {
      // The refreshes stay unpublished (closed as not completed) and resumable from the saved state.
      result.error = toTributaryError(error, 'The state could not be saved');
      result.outcome = 'failed';
    }
  }
  // Closed exactly once, whatever happened before: the session releases what it holds.
  try {
    await session.close({ completed: result.outcome === 'completed' });
  } catch (error) {
    if (!result.error) {
      result.error = toTributaryError(error, 'The destination failed to close');
      result.outcome = 'failed';
    }
  }
  // Only now: a stream is COMPLETE once its data is committed and published.
  reportEndStatus(result.streams.values(), result.outcome === 'completed', (stream, status) => emit({ type: 'status', stream, status }));
  if (result.error) logger.error(result.error.userMessage, { kind: result.error.kind });
  return {
    outcome: result.outcome,
    ...(result.error ? { error: result.error } : {}),
    state,
    streams: [...result.streams.values()],
    durationMs: Date.now() - started,
  };
}

/**
 * Refuses, as a `config` error, a configured catalog `destination` cannot be run with: no
 * stream, two streams stored under one key, a destination_sync_mode the destination does not
 * support, a sync_mode the stream does not support, append_dedup without a primary key.
 * `runSync` and `tributary write` call it before the destination is opened.
 */
export function checkConfiguredCatalog(catalog: ConfiguredAirbyteCatalog, destination: Destination): void {
  if (catalog.streams.length === 0) {
    throw new TributaryError('config', { userMessage: 'No streams selected: the configured catalog is empty' });
  }
  const supported = destination.spec.supportedDestinationSyncModes;
  // Batches, checkpoints and the saved state are keyed by `streamKey` (`namespace.name`),
  // which two distinct streams can share (namespace `a` + `b.c`, and `a.b` + `c`). Such
  // streams would silently write into one destination stream and overwrite each other's
  // state, so a catalog holding them is refused before anything is read.
  const byKey = new Map<string, string>();
  for (const c of catalog.streams) {
    const key = streamKey(c.stream.name, c.stream.namespace);
    const described = JSON.stringify(c.stream.namespace ? { namespace: c.stream.namespace, name: c.stream.name } : { name: c.stream.name });
    const other = byKey.get(key);
    if (other !== undefined) {
      throw new TributaryError('config', {
        userMessage: `Streams ${other} and ${described} cannot be synced together: both are stored under the key "${key}". Select only one of them.`,
      });
    }
    byKey.set(key, described);
  }
  for (const c of catalog.streams) {
    if (!supported.includes(c.destination_sync_mode)) {
      throw new TributaryError('config', {
        userMessage: `Stream "${c.stream.name}": destination "${destination.name}" does not support destination_sync_mode ${c.destination_sync_mode} (supported: ${supported.join(', ')})`,
      });
    }
    if (!c.stream.supported_sync_modes.includes(c.sync_mode)) {
      throw new TributaryError('config', {
        userMessage: `Stream "${c.stream.name}" does not support sync_mode ${c.sync_mode} (supported: ${c.stream.supported_sync_modes.join(', ')})`,
      });
    }
    // `overwrite` replaces the stream's data with what one run read; an incremental run reads
    // only what changed since the last checkpoint, so each sync would discard all the rest.
    if (c.sync_mode === 'incremental' && c.destination_sync_mode === 'overwrite') {
      throw new TributaryError('config', {
        userMessage:
          `Stream "${c.stream.name}": sync_mode incremental with destination_sync_mode overwrite would replace the destination's data with only the records changed since the last run. ` +
          'Use sync_mode full_refresh with overwrite, or incremental with append or append_dedup.',
      });
    }
    if (c.destination_sync_mode === 'append_dedup' && (c.primary_key ?? c.stream.source_defined_primary_key ?? []).length === 0) {
      throw new TributaryError('config', { userMessage: `Stream "${c.stream.name}": append_dedup needs a primary key` });
    }
  }
}

/** A connector that puts a secret into its state is a bug we refuse to persist. */
function assertNoSecrets(state: SyncState, redact: Redactor): void {
  // The first serialization of a state to save: one too long to be a string fails here,
  // naming its stream, before anything is written.
  const text = stateText(state, () => JSON.stringify(state), 'it cannot be saved (the state saved before it is kept)');
  if (redact(text) !== text) {
    throw new TributaryError('fatal', {
      userMessage: 'The source put a secret value into its state; refusing to store it. This is a connector bug.',
    });
  }
}

/**
 * The streams a destination is opened with, from the configured catalog: keys, modes, the
 * effective primary key and cursor (configured, else source-defined) and the JSON schema.
 * `resuming(key)` tells whether the stream has committed state (default: none has).
 */
export function toDestinationStreams(catalog: ConfiguredAirbyteCatalog, resuming: (key: string) => boolean = () => false): DestinationStream[] {
  return catalog.streams.map((c) => {
    const key = streamKey(c.stream.name, c.stream.namespace);
    return {
      key,
      name: c.stream.name,
      ...(c.stream.namespace ? { namespace: c.stream.namespace } : {}),
      syncMode: c.sync_mode,
      destinationSyncMode: c.destination_sync_mode,
      primaryKey: c.primary_key ?? c.stream.source_defined_primary_key ?? [],
      cursorField: c.cursor_field ?? c.stream.default_cursor_field ?? [],
      jsonSchema: c.stream.json_schema,
      resuming: resuming(key),
    };
  });
}
