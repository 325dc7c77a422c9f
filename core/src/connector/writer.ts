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
  /**
   * Never `mirror`: a mirror run sends `upsert` requests, then `delete` requests for the
   * keys `listKeys` returned that no input record had.
   */
  mode: Exclude<WriteMode, 'mirror'>;
  idProperty: string;
  /**
   * At most `maxBatchSize`; no two records of one request share a key, nor a key identity
   * (`keyIdentity`), so none share an idempotency key.
   */
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
  /**
   * Whether retrying a failed record could succeed. In a sync, a retryable failure stops the
   * sync before the checkpoint (the next run replays the batch); a non-retryable one is
   * reported as a rejected record with its `reason`.
   */
  retryable?: boolean;
  /**
   * Optional, read only in dry runs (of `upsert` and `update` requests): the values the record
   * would leave in the row, as the writer's compare-before-write sees them. One entry per field
   * the record sets but `idProperty`, named as the target knows the field (`Name` for a record's
   * `name` where names are case-insensitive), holding a text that two values of the field share
   * exactly when that comparison finds them equal (the writer's normalized form, e.g. `"1000"`
   * for both `1000` and `"1000.0"` of a number field). Give it on every `created`, `updated`
   * and `unchanged` result of a dry run, or on none.
   *
   * A dry run judges the later records of a row against what its earlier records would have
   * written (see `createDryRunLedger`): by these texts when given, else by the records' fields
   * as canonical JSON under their names as written — where a value equal to the stored one
   * only by the target's rules (a number and its decimal text, a field name in other case)
   * counts as a change, and the dry run reports `updated` where the real run reports
   * `unchanged`. Exact when a row written with a value compares equal to that value afterwards
   * (what makes a replayed batch `unchanged`). The runtime does not pass it on (the run's
   * results and audit entries leave it out).
   */
  comparedValues?: Record<string, string>;
}

/**
 * One open writer session. `write` may be called concurrently up to the declared
 * concurrency; the runtime applies the rate limit and circuit breaker around it.
 * Contract: exactly one result per input record, in any order, matched by idempotencyKey.
 * A record the target refuses is a `failed` result with a `reason`, not an exception.
 * A whole-request failure throws a TributaryError: `transient` and `rate_limited` are
 * retried with backoff (honouring `retryAfterMs`) and then fail the request's records as
 * retryable; `skippable` fails only this request's records; `auth`, `config` and `fatal`
 * halt the run (the remaining records fail without being sent).
 * `write` makes one attempt per call: it must not retry or rate-limit by itself, nor go
 * through `ctx.call` (or an HTTP client built on it) — the runtime already does, and with a
 * concurrency cap the nested call would wait for the slot its own caller holds.
 */
export interface WriterSession {
  write(request: WriteRequest): Promise<WriteResult[]>;
  /** Keys of every row of `object` (for `mirror`), listed completely before any delete is sent. Optional. */
  listKeys?(object: string, idProperty: string): AsyncIterable<string>;
  /** Called once, after every write of the run (of the sync, for a writer run as a destination) settled. */
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
  /**
   * The target's documented limits; the runtime never exceeds them. `concurrency` also caps
   * the `write` calls in flight (default 1).
   */
  rateLimit: RateLimitPolicy;
  /** Retry policy of whole-request failures of `write` (and of `ctx.call`). */
  retry?: RetryPolicy;
  /** Largest batch the target accepts in one request. */
  maxBatchSize: number;
  /**
   * The row a key identifies, when the target matches keys less strictly than by exact
   * string (e.g. emails without regard to case): keys with the same identity are one row, so
   * the runtime keeps them in input order (never two in a request, never two requests in
   * flight) and a mirror run counts them as one. Must be a pure function. Default: the key.
   */
  keyIdentity?(object: string, idProperty: string, key: string): string;
  /** Proves the config works; throws a TributaryError of kind `config` or `auth` saying what to fix. */
  check(ctx: ConnectorContext, config: ConfigOf<S>): Promise<void>;
  /** The objects the target offers; a sync checks its object, id property and mode against them before writing. */
  discover(ctx: ConnectorContext, config: ConfigOf<S>): Promise<WritableObject[]>;
  /** One session per run (per sync, for a writer run as a destination). */
  open(ctx: ConnectorContext, config: ConfigOf<S>): Promise<WriterSession>;
}

export type Writer<S extends ConfigSchema = ConfigSchema> = WriterDefinition<S> & { readonly kind: 'writer' };

export function defineWriter<const S extends ConfigSchema>(definition: WriterDefinition<S>): Writer<S> {
  return Object.freeze({ ...definition, kind: 'writer' as const });
}

export type Connector = import('./source.js').Source | import('./destination.js').Destination | Writer;
