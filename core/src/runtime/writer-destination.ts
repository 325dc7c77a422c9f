import type { ConfigSchema } from '../config/schema.js';
import type { Destination, RejectedRecord } from '../connector/destination.js';
import { defineDestination } from '../connector/destination.js';
import type { WriteMode, Writer } from '../connector/writer.js';
import { TributaryError } from '../errors.js';
import { createConnectorContext } from '../connector/create-context.js';
import { createCircuitBreaker } from '../resilience/circuit-breaker.js';
import type { RecordData } from '../protocol/messages.js';
import type { StateStore } from '../state/store.js';
import { idempotencyKeyOf, runWriter, type WriteAuditEntry, type WriteIntent } from './reverse-etl.js';
import { writeKeyOf } from './write-key.js';
import { createDryRunLedger } from './dry-run-ledger.js';

/** Where a reverse-ETL sync writes one source stream. */
export interface WriterTarget {
  /** The writable object, e.g. `contacts`. */
  object: string;
  mode: Exclude<WriteMode, 'mirror'>;
  /** The field identifying target rows (an external id, a unique email). */
  idProperty: string;
  /** Target field ← source field. Without it, records are written with their own field names. */
  fields?: Record<string, string>;
  /**
   * Compute results without changing the target. Run such a sync with
   * `dryRunStateStore(store)`: its checkpoints cover records that were not written.
   */
  dryRun?: boolean;
  breaker?: { failureThreshold: number; resetAfterMs: number };
  /** Receives every per-record result: the audit trail. */
  audit?: (entry: WriteAuditEntry) => void;
  /**
   * Makes the audit trail write-ahead: records each request's intent durably before it is
   * sent (see `RunWriterOptions.auditIntent`), so that records the target applied in a run
   * that crashed before its commit still show in the trail; their replay comes back
   * `unchanged`. Not called for a dry run.
   */
  auditIntent?: (intent: WriteIntent) => Promise<void>;
  /**
   * Makes every audit entry received so far durable. The destination's commit awaits it, so
   * the runtime never saves a checkpoint covering records whose audit lines could be lost.
   */
  flushAudit?: () => Promise<void>;
}

/**
 * Runs a reverse-ETL writer as a destination, so `runSync` drives it with the same
 * checkpoint-after-commit contract: a batch's records are applied (or settled as failed)
 * before `write` returns, so a checkpoint is committed only after the target answered for
 * every record before it.
 *
 * Results map onto the destination contract:
 * - created / updated / unchanged / deleted → written;
 * - failed and not retryable (the target refused the record) → rejected with the target's
 *   reason: reported and kept in the audit trail, never dropped silently;
 * - failed and retryable (rate limits, 5xx, an open circuit, after retries) → the write
 *   throws `transient`, the sync stops before the checkpoint, and the next run replays the
 *   batch — harmless, because a replayed change has the same idempotency key and comes
 *   back `unchanged`.
 * One writer session, rate limiter and circuit breaker serve the whole sync.
 */
export function writerDestination(writer: Writer, target: WriterTarget): Destination {
  return defineDestination({
    name: `writer:${writer.name}`,
    ...(writer.version ? { version: writer.version } : {}),
    delivery: 'upsert',
    // A batch is what the writer can send at once: checkpoints then commit at the target's
    // pace instead of waiting behind thousands of queued records.
    batching: { maxRecords: writer.maxBatchSize * Math.max(1, writer.rateLimit.concurrency ?? 1), maxBatchesInFlight: 2 },
    spec: {
      connectionSpecification: writer.spec.connectionSpecification as ConfigSchema,
      ...(writer.spec.documentationUrl ? { documentationUrl: writer.spec.documentationUrl } : {}),
      supportedDestinationSyncModes: ['append', 'append_dedup', 'overwrite'],
    },
    // No rateLimit/retry here: the runtime calls `write` under the destination's own limiter,
    // and the writer's requests take slots on the writer's limiter (built in `open`); sharing
    // one limiter would nest a request inside a slot it already holds and deadlock at
    // concurrency 1.
    check: (ctx, config) => writer.check(ctx, config),
    async open(destinationCtx, config, streams) {
      const ctx = createConnectorContext({
        logger: destinationCtx.logger,
        signal: destinationCtx.signal,
        rateLimit: writer.rateLimit,
        ...(writer.retry ? { retry: writer.retry } : {}),
      });
      if (streams.length !== 1) {
        throw new TributaryError('config', {
          userMessage: `A writer takes one source stream; ${streams.length} are selected (${streams.map((s) => s.key).join(', ')})`,
        });
      }
      const objects = await writer.discover(ctx, config);
      const object = objects.find((o) => o.name === target.object);
      if (!object) {
        throw new TributaryError('config', {
          userMessage: `Writer ${writer.name} has no object "${target.object}"; it offers ${objects.map((o) => o.name).join(', ')}`,
        });
      }
      if (!object.idProperties.includes(target.idProperty)) {
        throw new TributaryError('config', {
          userMessage: `"${target.idProperty}" cannot identify ${target.object} rows; use one of ${object.idProperties.join(', ')}`,
        });
      }
      if (!object.modes.includes(target.mode)) {
        throw new TributaryError('config', { userMessage: `Writer ${writer.name} cannot ${target.mode} ${target.object} (it supports ${object.modes.join(', ')})` });
      }
      const session = await writer.open(ctx, config);
      const breaker = createCircuitBreaker(target.breaker ?? { failureThreshold: 5, resetAfterMs: 30_000 });
      // One for the whole sync: a key that comes back in a later batch is judged as a real sync would.
      const dryRunLedger = target.dryRun ? createDryRunLedger() : undefined;
      breaker.onStateChange((state) => ctx.logger.warn(`writer ${writer.name}: circuit ${state}`, { object: target.object, circuit: state }));
      const mapping = target.fields;
      const shape = (data: RecordData): Record<string, unknown> =>
        mapping ? Object.fromEntries(Object.entries(mapping).map(([to, from]) => [to, data[from]])) : data;

      return {
        async write(batch) {
          const records = batch.records.map(shape);
          /**
           * Every result's idempotency key and failure (undefined: applied), as reported. One
           * change may appear twice in a batch (one idempotency key) and fail only once — a
           * record refused before another created its row is applied when it comes back — so
           * failures are matched to records by occurrence, not by key: results of one key are
           * reported in input order (`runWriter` applies a key's records in order).
           */
          const reportedKeys: string[] = [];
          const reportedFailures: Array<Failure | undefined> = [];
          let failed = 0;
          let retryable = false;
          const summary = await runWriter({
            writer,
            config,
            ctx,
            session,
            breaker,
            object: target.object,
            mode: target.mode,
            idProperty: target.idProperty,
            records,
            dryRun: target.dryRun ?? false,
            ...(dryRunLedger ? { dryRunLedger } : {}),
            ...(target.auditIntent ? { auditIntent: target.auditIntent } : {}),
            audit: (entry) => {
              reportedKeys.push(entry.idempotencyKey);
              if (entry.status === 'failed') {
                failed++;
                retryable ||= entry.retryable === true;
                reportedFailures.push({ reason: entry.reason ?? 'failed', retryable: entry.retryable === true });
              } else {
                reportedFailures.push(undefined);
              }
              target.audit?.(entry);
            },
          });
          if (summary.halted) {
            throw new TributaryError(summary.halted.kind, { userMessage: `Writer ${writer.name} stopped: ${summary.halted.message}` });
          }
          if (failed === 0) return undefined;
          if (retryable) {
            throw new TributaryError('transient', { userMessage: `Writer ${writer.name}: some records could not be written yet; the sync stops here and the next run resumes` });
          }
          return { rejected: rejectedRecords(records, reportedKeys, reportedFailures, target) };
        },
        // The target applied every record before `write` returned; what may still be buffered
        // is their audit trail, made durable before the runtime saves the checkpoint.
        async commit() {
          await target.flushAudit?.();
        },
        async close() {
          await session.close();
        },
      };
    },
  });
}

interface Failure {
  reason: string;
  retryable: boolean;
}

/**
 * The records of a batch that failed, by index, from the results reported for them. A
 * record's idempotency key is a function of its content; records sharing one take that key's
 * results in the order reported, which is input order.
 */
function rejectedRecords(
  records: readonly Record<string, unknown>[],
  reportedKeys: readonly string[],
  reportedFailures: ReadonlyArray<Failure | undefined>,
  target: WriterTarget,
): RejectedRecord[] {
  /** Per idempotency key, its results' failures in the order reported. */
  const outcomes = new Map<string, Array<Failure | undefined>>();
  reportedKeys.forEach((key, i) => {
    const list = outcomes.get(key);
    if (list) list.push(reportedFailures[i]);
    else outcomes.set(key, [reportedFailures[i]]);
  });
  const rejected: RejectedRecord[] = [];
  records.forEach((fields, index) => {
    const id = idempotencyKeyOf(target.object, target.mode, writeKeyOf(fields[target.idProperty]) ?? '', fields);
    const failure = outcomes.get(id)?.shift();
    if (failure) rejected.push({ index, reason: failure.reason });
  });
  return rejected;
}

/**
 * The state store of a dry-run sync. It loads the connection's committed state, so the dry
 * run previews what the next real run would write, and saves and resets nothing: a dry run
 * writes no record to the target, and a checkpoint it saved would make the next real run
 * resume after those records — they would never be written. It takes no connection lock
 * (`lock` is left out): a dry run changes neither the target nor the state, so it may run
 * beside a real sync of the connection.
 */
export function dryRunStateStore(store: StateStore): StateStore {
  return {
    location: `${store.location} (read only: dry run)`,
    load: (connection) => store.load(connection),
    async save() {},
    async reset() {},
    list: () => store.list(),
    close: () => store.close(),
  };
}
