import type { ConfigOf, ConfigSchema } from '../config/schema.js';
import type { JsonSchemaObject } from '../protocol/messages.js';
import type { RateLimitPolicy, RetryPolicy } from '../resilience/policy.js';
import type { ConnectorContext } from './context.js';

/** How a reverse-ETL write treats each record. `mirror` = upsert these, delete the rest. */
export type WriteMode = 'insert' | 'update' | 'upsert' | 'delete' | 'mirror';

export interface WritableField {
  name: string;
  /** JSON Schema of the field's value. */
  schema: JsonSchemaObject;
  required?: boolean;
  /** False for fields the target computes (ids, timestamps). */
  writable?: boolean;
  /** Can be used as the match key of an upsert (an external id, a unique email). */
  unique?: boolean;
}

export interface WritableObject {
  name: string;
  fields: WritableField[];
  /** Fields usable as `idProperty`. */
  idProperties: string[];
  /** Modes the target supports for this object (`mirror` needs `listKeys`). */
  modes: WriteMode[];
}

export interface WriteRecord {
  /**
   * Stable across retries and replays of the same change (e.g. a hash of key + values):
   * a target that already applied it must answer `unchanged`, never apply it twice.
   */
  idempotencyKey: string;
  /** The value of `idProperty`, identifying the target row. */
  key: string;
  fields: Record<string, unknown>;
}

export interface WriteRequest {
  object: string;
  mode: Exclude<WriteMode, 'mirror'>;
  idProperty: string;
  records: WriteRecord[];
  /** Compute and return results without changing the target. */
  dryRun: boolean;
}

export type WriteStatus = 'created' | 'updated' | 'unchanged' | 'deleted' | 'failed';

export interface WriteResult {
  idempotencyKey: string;
  key: string;
  status: WriteStatus;
  /** Target's id of the row, when known. */
  id?: string;
  /** Why it failed, in the target's words. */
  reason?: string;
  /** Whether retrying a failed record could succeed. */
  retryable?: boolean;
}

/**
 * One open writer session. `write` may be called concurrently up to the declared
 * concurrency; the runtime applies the rate limit and circuit breaker around it.
 * Contract: exactly one result per input record, in any order, matched by idempotencyKey.
 * A whole-request failure throws a TributaryError (transient / rate_limited / auth / ...).
 */
export interface WriterSession {
  write(request: WriteRequest): Promise<WriteResult[]>;
  /** Keys of every row of `object` (for `mirror`). Optional. */
  listKeys?(object: string, idProperty: string): AsyncIterable<string>;
  close(): Promise<void>;
}

export interface WriterSpec<S extends ConfigSchema> {
  connectionSpecification: S;
  documentationUrl?: string;
}

export interface WriterDefinition<S extends ConfigSchema> {
  name: string;
  version?: string;
  spec: WriterSpec<S>;
  /** The target's documented limits; the runtime never exceeds them. */
  rateLimit: RateLimitPolicy;
  retry?: RetryPolicy;
  /** Largest batch the target accepts in one request. */
  maxBatchSize: number;
  check(ctx: ConnectorContext, config: ConfigOf<S>): Promise<void>;
  discover(ctx: ConnectorContext, config: ConfigOf<S>): Promise<WritableObject[]>;
  open(ctx: ConnectorContext, config: ConfigOf<S>): Promise<WriterSession>;
}

export type Writer<S extends ConfigSchema = ConfigSchema> = WriterDefinition<S> & { readonly kind: 'writer' };

export function defineWriter<const S extends ConfigSchema>(definition: WriterDefinition<S>): Writer<S> {
  return Object.freeze({ ...definition, kind: 'writer' as const });
}

export type Connector = import('./source.js').Source | import('./destination.js').Destination | Writer;
