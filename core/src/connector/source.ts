import type { ConfigOf, ConfigSchema } from '../config/schema.js';
import type {
  AirbyteCatalog,
  AirbyteRecordMessageMetaChange,
  AirbyteStreamStatus,
  ConfiguredAirbyteCatalog,
  RecordData,
  StateBlob,
} from '../protocol/messages.js';
import type { RateLimitPolicy, RetryPolicy } from '../resilience/policy.js';
import type { ConnectorContext } from './context.js';
import type { SyncState } from './state.js';

/** One record read from a stream. */
export interface SourceRecord {
  readonly kind: 'record';
  readonly stream: string;
  readonly namespace?: string;
  readonly data: RecordData;
  readonly changes?: AirbyteRecordMessageMetaChange[];
}

/**
 * Several records of one stream at once, in order — exactly as if each had been yielded on
 * its own. Sources that fetch pages (APIs, bulk exports, CDC transactions) should yield
 * pages: the runtime then pays its per-message cost once per page, not once per record.
 * The array is handed over: the source must not touch it after yielding it. An empty page
 * is allowed and ignored.
 */
export interface SourceRecordPage {
  readonly kind: 'records';
  readonly stream: string;
  readonly namespace?: string;
  readonly records: RecordData[];
}

/**
 * A per-stream checkpoint. Contract: `state` covers every record of `stream` the source
 * yielded before this message, and reading again from `state` yields exactly the records
 * after them (ties on the cursor included). The runtime commits it only after the
 * destination durably acknowledged all of those records.
 * `state` is plain JSON that only this source interprets; it must not contain a secret
 * config value (the runtime refuses to store such a state).
 */
export interface StreamCheckpoint {
  readonly kind: 'checkpoint';
  readonly stream: string;
  readonly namespace?: string;
  readonly state: StateBlob;
}

/**
 * A checkpoint for sources whose position is shared by all streams (CDC: one LSN).
 * Covers every record of every stream yielded before it; the runtime commits it once the
 * records of every configured stream read before it are durable.
 */
export interface GlobalCheckpoint {
  readonly kind: 'global-checkpoint';
  readonly shared: StateBlob;
  readonly streams: ReadonlyArray<{ stream: string; namespace?: string; state: StateBlob }>;
}

/**
 * A stream's lifecycle as reported by the source (the runtime adds RATE_LIMITED itself).
 * The runtime reports STARTED for every stream at the start, and COMPLETE or INCOMPLETE at
 * the end once the data is committed (COMPLETE when the sync completed, INCOMPLETE
 * otherwise); a COMPLETE from the source is ignored. Sources usually report RUNNING.
 */
export interface StreamStatusEvent {
  readonly kind: 'status';
  readonly stream: string;
  readonly namespace?: string;
  readonly status: AirbyteStreamStatus;
}

/**
 * A progress hint: how many rows and/or bytes this read of the stream is expected to
 * produce. Reported as an Airbyte ESTIMATE trace; optional, never checked.
 */
export interface EstimateEvent {
  readonly kind: 'estimate';
  readonly stream: string;
  readonly namespace?: string;
  readonly rows?: number;
  readonly bytes?: number;
}

export type SourceMessage = SourceRecord | SourceRecordPage | StreamCheckpoint | GlobalCheckpoint | StreamStatusEvent | EstimateEvent;

/** A source message with pages expanded into single records (see `expandRecordPages`). */
export type FlatSourceMessage = Exclude<SourceMessage, SourceRecordPage>;

/** The same messages with every record page expanded into its records, in order. */
export async function* expandRecordPages(messages: AsyncIterable<SourceMessage>): AsyncGenerator<FlatSourceMessage> {
  for await (const message of messages) {
    if (message.kind !== 'records') {
      yield message;
      continue;
    }
    for (const data of message.records) yield record(message.stream, data, message.namespace);
  }
}

export interface SourceSpec<S extends ConfigSchema> {
  /**
   * The config as one draft-07 JSON Schema of an object (the config's TypeScript type is
   * inferred from it). Fields marked `airbyte_secret: true` are redacted from every log,
   * error and progress line, and a state containing one of their values is refused.
   * The runtime validates configs against it (and fills defaults) before any call.
   */
  connectionSpecification: S;
  documentationUrl?: string;
  /** `false` when no stream supports incremental (the conformance suite then registers no incremental case). */
  supportsIncremental?: boolean;
}

/** What a connector author writes. */
export interface SourceDefinition<S extends ConfigSchema> {
  /** Short name used by the CLI and in sync files, e.g. `hubspot`. */
  name: string;
  version?: string;
  spec: SourceSpec<S>;
  /** Declared request budget; the runtime enforces it across all streams. */
  rateLimit?: RateLimitPolicy;
  /** Default retry policy of `ctx.call` (and so of `createHttpClient`) for this source. */
  retry?: RetryPolicy;
  /**
   * Proves the config works (credentials, reachability). Throws a TributaryError of kind
   * `config` or `auth` with a message that says what to fix.
   */
  check(ctx: ConnectorContext, config: ConfigOf<S>): Promise<void>;
  /**
   * The streams this config can read: per stream its `json_schema` (records must validate
   * against it), `supported_sync_modes`, primary key and default cursor field (both must
   * exist in the schema's properties; incremental streams need a cursor).
   */
  discover(ctx: ConnectorContext, config: ConfigOf<S>): Promise<AirbyteCatalog>;
  /**
   * Reads the configured streams, starting from `state` (empty on a first sync).
   * Contract: every stream yields at least one checkpoint (even when empty), so a later
   * incremental read knows where to start; checkpoints follow the records they cover.
   * The runtime may stop iterating at any point (via `return()`): the source must release
   * its resources in `finally` blocks.
   * Every message must name a configured stream. An error thrown from `read` ends the sync
   * `failed` — except, once the sync's signal was aborted, the signal's reason (or an
   * AbortError) rethrown unchanged, which ends it `interrupted`: rethrow an abort as it came,
   * never wrapped. The runtime does not call `read` again (retry requests through
   * `ctx.call`); the state committed so far is kept and the next sync resumes from it.
   */
  read(ctx: ConnectorContext, config: ConfigOf<S>, catalog: ConfiguredAirbyteCatalog, state: SyncState): AsyncIterable<SourceMessage>;
  /**
   * Called by the runtime after `state` was committed to the state store, i.e. after the
   * destination acknowledged every record before it. CDC sources confirm their position
   * upstream here, never earlier. Calls are sequential and in commit order. An `ack` that
   * throws is logged and does not fail the sync: a later `ack` confirms a later position.
   */
  ack?(ctx: ConnectorContext, config: ConfigOf<S>, state: SyncState): Promise<void>;
}

/** A source as the runtime sees it: the definition plus its kind tag. */
export type Source<S extends ConfigSchema = ConfigSchema> = SourceDefinition<S> & { readonly kind: 'source' };

export function defineSource<const S extends ConfigSchema>(definition: SourceDefinition<S>): Source<S> {
  return Object.freeze({ ...definition, kind: 'source' as const });
}

export function record(stream: string, data: RecordData, namespace?: string): SourceRecord {
  return namespace === undefined ? { kind: 'record', stream, data } : { kind: 'record', stream, data, namespace };
}

export function recordPage(stream: string, records: RecordData[], namespace?: string): SourceRecordPage {
  return namespace === undefined ? { kind: 'records', stream, records } : { kind: 'records', stream, records, namespace };
}

export function checkpoint(stream: string, state: StateBlob, namespace?: string): StreamCheckpoint {
  return namespace === undefined ? { kind: 'checkpoint', stream, state } : { kind: 'checkpoint', stream, state, namespace };
}

export function streamStatus(stream: string, status: AirbyteStreamStatus, namespace?: string): StreamStatusEvent {
  return namespace === undefined ? { kind: 'status', stream, status } : { kind: 'status', stream, status, namespace };
}
