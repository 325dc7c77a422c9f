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
   * True when the previous sync of this stream stopped before completing and this sync
   * resumes it. An `overwrite` destination then keeps the partial data it staged.
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
  /** Accepts a batch. It need not be durable yet. Throwing fails the sync (transient errors are retried by the runtime). */
  write(batch: RecordBatch): Promise<WriteOutcome | void>;
  /**
   * Makes every batch written so far durable: once this resolves, those records survive a
   * crash of this process and of the destination. The runtime commits checkpoints only
   * after this resolves. Must be idempotent.
   */
  commit(): Promise<void>;
  /**
   * Ends the session. `completed` is true when every stream was read to its end: an
   * overwrite destination publishes its staged data then. Called after the final commit.
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
  delivery: DeliverySemantics;
  /**
   * Batching that suits this destination (e.g. small batches for a rate-limited API, so
   * checkpoints commit often). A sync's own `batching` settings override it field by field.
   */
  batching?: BatchingOptions;
  rateLimit?: RateLimitPolicy;
  retry?: RetryPolicy;
  check(ctx: ConnectorContext, config: ConfigOf<S>): Promise<void>;
  open(ctx: ConnectorContext, config: ConfigOf<S>, streams: readonly DestinationStream[]): Promise<DestinationSession>;
}

export type Destination<S extends ConfigSchema = ConfigSchema> = DestinationDefinition<S> & { readonly kind: 'destination' };

export function defineDestination<const S extends ConfigSchema>(definition: DestinationDefinition<S>): Destination<S> {
  return Object.freeze({ ...definition, kind: 'destination' as const });
}
