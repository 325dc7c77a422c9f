import type { ConfigOf, ConfigSchema } from '../config/schema.js';
import type { DestinationSyncMode, JsonSchemaObject, RecordData, SyncMode } from '../protocol/messages.js';
import type { RateLimitPolicy, RetryPolicy } from '../resilience/policy.js';
import type { BatchingOptions } from '../runtime/pipeline.js';
import type { ConnectorContext } from './context.js';

/**
 * What a destination promises about replays. The runtime delivers at least once: records
 * after the last committed checkpoint are sent again after a crash.
 * - `upsert`: rows are keyed by the primary key; a replay overwrites, never duplicates.
 * - `append-dedupe`: an append log that drops a record identical to one already stored
 *   under the same key, so replays add nothing.
 * - `append`: plain append; replays of uncommitted batches may duplicate unkeyed rows.
 */
export type DeliverySemantics = 'upsert' | 'append-dedupe' | 'append';

/** A stream as the destination receives it at open. */
export interface DestinationStream {
  /** `streamKey(name, namespace)`; batches carry this key. */
  readonly key: string;
  readonly name: string;
  readonly namespace?: string;
  readonly syncMode: SyncMode;
  readonly destinationSyncMode: DestinationSyncMode;
  /** Primary key as field paths, e.g. [['id']]. Empty when the stream has none. */
  readonly primaryKey: string[][];
  readonly cursorField: string[];
  readonly jsonSchema: JsonSchemaObject;
  /**
   * True when the connection has a committed state for this stream, i.e. this sync continues
   * from a checkpoint. For a full refresh that means the previous sync stopped before
   * completing (a completed full refresh drops its state): an `overwrite` destination then
   * keeps the partial data it staged. For an incremental stream it is true after any
   * earlier sync that committed a checkpoint.
   */
  readonly resuming: boolean;
}

/** Records of one stream, in source order. */
export interface RecordBatch {
  readonly stream: string;
  readonly records: RecordData[];
  /** Epoch ms at which the runtime received the first record of the batch. */
  readonly emittedAt: number;
}

export interface RejectedRecord {
  /** Index in the batch. */
  index: number;
  reason: string;
}

export interface WriteOutcome {
  /**
   * Records the destination refused and set aside (quarantine) with a reason. They count
   * as handled: the runtime reports them and moves on. A destination that cannot
   * quarantine must throw instead — records are never dropped silently.
   */
  rejected?: RejectedRecord[];
}

/**
 * One open write session. The runtime calls its methods one at a time (never
 * concurrently), in this order: write* (commit write*)* commit close.
 */
export interface DestinationSession {
  /**
   * Accepts a batch. It need not be durable yet. A `transient` or `rate_limited` error is
   * retried with the same batch under the destination's retry policy (so a write must be
   * safe to repeat); any other error, or the last failed attempt, fails the sync.
   */
  write(batch: RecordBatch): Promise<WriteOutcome | void>;
  /**
   * Makes every batch written so far durable: once this resolves, those records survive a
   * crash of this process and of the destination. The runtime commits checkpoints only
   * after this resolves. Must be idempotent: it is also called when nothing was written
   * since the last commit (on a timer, and at the end of every sync, failed or interrupted
   * ones included). Retried like `write`.
   */
  commit(): Promise<void>;
  /**
   * Ends the session. `completed` is true when every stream was read to its end: an
   * overwrite destination publishes its staged data then. Called exactly once per opened
   * session, after the final commit — also when the sync failed or was interrupted
   * (`completed: false`), in which case that commit may itself have failed.
   */
  close(outcome: { completed: boolean }): Promise<void>;
}

export interface DestinationSpec<S extends ConfigSchema> {
  connectionSpecification: S;
  documentationUrl?: string;
  supportedDestinationSyncModes: DestinationSyncMode[];
}

export interface DestinationDefinition<S extends ConfigSchema> {
  name: string;
  version?: string;
  spec: DestinationSpec<S>;
  /** What a replay of already-delivered records does here (see `DeliverySemantics`). */
  delivery: DeliverySemantics;
  /**
   * Batching that suits this destination (e.g. small batches for a rate-limited API, so
   * checkpoints commit often). A sync's own `batching` settings override it field by field.
   */
  batching?: BatchingOptions;
  /** Applies to the destination's own context (`ctx.call`, `ctx.limiter`) and to every `write` and `commit` call. */
  rateLimit?: RateLimitPolicy;
  /** Retry policy of `open`, `write` and `commit` (and of `ctx.call`). */
  retry?: RetryPolicy;
  /** Proves the config works; throws a TributaryError of kind `config` or `auth` saying what to fix. */
  check(ctx: ConnectorContext, config: ConfigOf<S>): Promise<void>;
  /**
   * Opens one write session for a sync, with every configured stream, before the source is
   * read. A `transient` or `rate_limited` error is retried under the destination's `retry`
   * policy, so an open that fails must release what it took (connections, locks, temp
   * files); any other error, or the last attempt's, fails the sync before anything is read
   * (`runSync` rejects).
   */
  open(ctx: ConnectorContext, config: ConfigOf<S>, streams: readonly DestinationStream[]): Promise<DestinationSession>;
}

export type Destination<S extends ConfigSchema = ConfigSchema> = DestinationDefinition<S> & { readonly kind: 'destination' };

export function defineDestination<const S extends ConfigSchema>(definition: DestinationDefinition<S>): Destination<S> {
  return Object.freeze({ ...definition, kind: 'destination' as const });
}
