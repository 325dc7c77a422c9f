/**
 * The reverse-ETL runner: pushes records into a target through a Writer.
 *
 * Guarantees:
 * - Every input record ends with exactly one result (written, unchanged, or failed with a
 *   reason); none is dropped, including records without a key and records of requests that
 *   failed as a whole or were turned away by an open circuit.
 * - Every record carries an idempotency key derived only from (object, request mode, key,
 *   fields), so a replay of the same change is recognisable by the target.
 * - Requests respect the writer's rate limit (shared limiter), its declared concurrency and
 *   batch size; each request attempt passes a circuit breaker (asked once the attempt holds
 *   its limiter slot; while a half-open circuit's trial is out, attempts wait for its answer),
 *   and retryable whole-request failures are retried with backoff.
 * - Records of one key (one target row) are applied in input order, so the last one wins:
 *   no request holds two records of a key, and a request waits for every in-flight request
 *   (retries included) that holds one of its keys. Keys are compared by the writer's
 *   `keyIdentity` (a target that matches emails without regard to case makes `A@x.com` and
 *   `a@x.com` one key). Writers compare each record with the row
 *   as it was before the request, and concurrent requests (or a retry) land in any order:
 *   without this an older value could be applied over a newer one, and the newer record
 *   reported `unchanged`.
 * - `mirror` deletes only when the upserted key set is complete: if any input record lacked
 *   a key, or the run was halted, the delete phase is skipped (deleting rows that a keyless
 *   record may correspond to would lose data). An empty input deletes nothing either: it is
 *   far more often a broken query or an upstream outage than a wish to empty the object.
 * - With `auditIntent`, the audit trail is write-ahead: before a request is first sent, its
 *   intent (request id, records' keys and idempotency keys) is recorded and awaited, so a
 *   crash can never leave a write applied by the target without a trace of it; the records'
 *   outcome entries carry the same request id.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createConnectorContext } from '../connector/create-context.js';
import type { ConnectorContext } from '../connector/context.js';
import type { WriteMode, WriteRecord, WriteRequest, WriteResult, Writer, WriterSession, WriteStatus } from '../connector/writer.js';
import { TributaryError, toTributaryError, type ErrorKind } from '../errors.js';
import { createCircuitBreaker, isCircuitOpenError, type CircuitBreaker } from '../resilience/circuit-breaker.js';
import { withRetry } from '../resilience/retry.js';
import { writeKeyOf } from './write-key.js';
import { createDryRunLedger, type DryRunLedger } from './dry-run-ledger.js';

export interface WriteAuditEntry {
  /** ISO 8601 time the result was known. */
  timestamp: string;
  object: string;
  /** The run's mode (`mirror` for both its upserts and its deletes). */
  mode: WriteMode;
  key: string;
  idempotencyKey: string;
  status: WriteStatus;
  reason?: string;
  /** The target's id of the row, when the writer reported it. */
  id?: string;
  /** For failures: whether a later attempt could succeed. */
  retryable?: boolean;
  /**
   * For failures: an attempt of the record's request was sent and failed without an answer
   * that says whether the target applied it (a dropped connection, a 5xx, a timeout: a
   * `transient` failure), so the target may hold the record's values although the record is
   * reported failed. Writes are idempotent: running the input again settles it.
   */
  maybeApplied?: boolean;
  dryRun: boolean;
  /**
   * The request that carried the record (see `WriteIntent.request`); set when the run records
   * intents (`auditIntent`) and the record was handed to a request, absent otherwise (e.g. a
   * record without a key, or one not attempted because the run was halted first).
   */
  request?: string;
}

/**
 * A request about to be sent: what the target may apply from this moment on, whatever
 * happens to this process. Given to `auditIntent` once per request (before its first
 * attempt; its retries carry the same records), never for a dry run, which applies nothing.
 */
export interface WriteIntent {
  /** Unique per request (a random UUID); the outcome entries of its records carry it. */
  request: string;
  /** ISO 8601 time the intent was formed, before the request waited for a limiter slot. */
  timestamp: string;
  object: string;
  /** The run's mode, as in audit entries (`mirror` for both its upserts and its deletes). */
  mode: WriteMode;
  /** What the request does: the run's mode, or for a mirror run `upsert` or `delete`. */
  operation: Exclude<WriteMode, 'mirror'>;
  /** The request's records (fields included), in request order. Not to be modified. */
  records: readonly WriteRecord[];
}

export interface WriterRunSummary {
  object: string;
  mode: WriteMode;
  dryRun: boolean;
  /** Results produced (input records, plus deletions of a mirror run). */
  total: number;
  counts: Record<WriteStatus, number>;
  /** Write requests actually sent to the writer (attempts included, open-circuit rejections not). */
  requests: number;
  /** Per-record results, in completion order; omitted when they were streamed to `audit`. */
  results?: WriteResult[];
  /** Set when a non-recoverable error (auth, config, fatal) stopped the run early. */
  halted?: { kind: ErrorKind; message: string };
  /** Why a mirror run did not delete anything, when it did not. */
  deletesSkipped?: string;
}

export interface RunWriterOptions {
  writer: Writer;
  /** Already parsed and validated against the writer's spec (see `parseConfig`). */
  config: Record<string, unknown>;
  /**
   * Defaults to a context of this run built from `writer.rateLimit` / `writer.retry`: its
   * limiter keeps this run within the writer's limits, not runs beside it. Runs in one process
   * that spend the same budget (the same API token) must share one context (or its limiter,
   * `createConnectorContext({ limiter })`); runs against different accounts must not.
   */
  ctx?: ConnectorContext;
  object: string;
  mode: WriteMode;
  idProperty: string;
  records: AsyncIterable<Record<string, unknown>> | Iterable<Record<string, unknown>>;
  dryRun?: boolean;
  /** Default: 5 consecutive failures, 30 s open. */
  breaker?: { failureThreshold: number; resetAfterMs: number } | CircuitBreaker;
  /**
   * An open session to write through (left open afterwards), so that consecutive runs — one
   * per batch of a sync — share it; by default the run opens and closes its own.
   */
  session?: WriterSession;
  /** Receives every result as it is known; the summary then omits `results`. */
  audit?: (entry: WriteAuditEntry) => void;
  /**
   * Records a request's intent durably (a write-ahead audit trail); the request is sent only
   * once the returned promise resolved. Awaited once per request, before its first attempt
   * (and before it waits for a limiter slot), so its cost overlaps other requests in flight.
   * If it rejects, nothing more is sent: the run halts (`fatal`), the request's records and
   * every later one fail as not attempted. Not called in a dry run. Default: none, at no cost.
   */
  auditIntent?: (intent: WriteIntent) => Promise<void>;
  /**
   * For a dry run: the rows earlier runs of the same dry run would have changed, so that
   * consecutive runs (the batches of a sync) report a key that comes back as a real run
   * would (see `createDryRunLedger`). Default: one of its own per dry run.
   */
  dryRunLedger?: DryRunLedger;
}

const STATUSES: readonly WriteStatus[] = ['created', 'updated', 'unchanged', 'deleted', 'failed'];
const MAX_REASON = 500;

/** The result without the writer's `comparedValues`, which are for the dry-run ledger only. */
function withoutComparedValues(result: WriteResult): WriteResult {
  const { comparedValues: _comparedValues, ...reported } = result;
  return reported;
}

/** JSON with object keys sorted at every level; stable for equal values. */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'bigint') return JSON.stringify(value.toString());
  if (typeof value !== 'object') {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  const withJson = value as { toJSON?: () => unknown };
  if (typeof withJson.toJSON === 'function') return canonicalJson(withJson.toJSON());
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** sha256 of (object, request mode, key, canonical fields), hex. */
export function idempotencyKeyOf(object: string, mode: Exclude<WriteMode, 'mirror'>, key: string, fields: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify([object, mode, key, canonicalJson(fields)])).digest('hex');
}

function reasonOf(error: TributaryError): string {
  const text = error.internalMessage ? `${error.userMessage}: ${error.internalMessage}` : error.userMessage;
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}...` : text;
}

/**
 * Resolves once `breaker` is not half-open: at once when it is not, else when its trial was
 * answered (the breaker then closes or reopens). Rejects with the signal's reason on abort.
 */
function trialAnswered(breaker: CircuitBreaker, signal: AbortSignal): Promise<void> {
  if (breaker.state !== 'half-open') return Promise.resolve();
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(signal.reason);
    };
    const unsubscribe = breaker.onStateChange((state) => {
      if (state === 'half-open') return;
      done();
      resolve();
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Writes `records` to `object` through `writer`; see the module comment for guarantees. */
export async function runWriter(options: RunWriterOptions): Promise<WriterRunSummary> {
  const { writer, object, mode, idProperty, audit } = options;
  const dryRun = options.dryRun ?? false;
  // A dry run applies nothing, so it has nothing to record ahead.
  const auditIntent = dryRun ? undefined : options.auditIntent;
  if (!Number.isInteger(writer.maxBatchSize) || writer.maxBatchSize < 1) {
    throw new TributaryError('config', { userMessage: `Writer ${writer.name} declares an invalid maxBatchSize (${String(writer.maxBatchSize)})` });
  }
  const concurrency = writer.rateLimit.concurrency ?? 1;
  const ctx =
    options.ctx ??
    createConnectorContext({
      rateLimit: writer.rateLimit,
      ...(writer.retry ? { retry: writer.retry } : {}),
    });
  const sharedBreaker = options.breaker && 'run' in options.breaker ? options.breaker : undefined;
  const breaker: CircuitBreaker =
    sharedBreaker ?? createCircuitBreaker((options.breaker as { failureThreshold: number; resetAfterMs: number } | undefined) ?? { failureThreshold: 5, resetAfterMs: 30_000 });
  // A shared breaker is watched by whoever created it.
  if (!sharedBreaker) breaker.onStateChange((state) => ctx.logger.warn(`writer ${writer.name}: circuit ${state}`, { object, circuit: state }));

  /** The row a key names, as the target matches keys (see `WriterDefinition.keyIdentity`). */
  const identityOf = (key: string): string => (writer.keyIdentity ? writer.keyIdentity(object, idProperty, key) : key);

  const ledger = dryRun ? (options.dryRunLedger ?? createDryRunLedger()) : undefined;
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<WriteStatus, number>;
  const results: WriteResult[] | undefined = audit ? undefined : [];
  let requests = 0;
  let halted: TributaryError | undefined;

  /** `request`: the id of the request that carried the record, when intents are recorded. */
  function report(result: WriteResult, request?: string, maybeApplied = false): void {
    counts[result.status]++;
    if (results) results.push(result);
    if (audit) {
      const entry: WriteAuditEntry = {
        timestamp: new Date().toISOString(),
        object,
        mode,
        key: result.key,
        idempotencyKey: result.idempotencyKey,
        status: result.status,
        dryRun,
      };
      if (result.reason !== undefined) entry.reason = result.reason;
      if (result.id !== undefined) entry.id = result.id;
      if (result.retryable !== undefined) entry.retryable = result.retryable;
      if (maybeApplied) entry.maybeApplied = true;
      if (request !== undefined) entry.request = request;
      audit(entry);
    }
  }

  /** `maybeApplied`: an attempt was sent whose outcome is unknown (see WriteAuditEntry.maybeApplied); said in the reason too. */
  function failAll(records: WriteRecord[], reason: string, retryable: boolean, request?: string, maybeApplied = false): void {
    const text = maybeApplied ? `${reason}; an earlier attempt got no answer and may have been applied (run the input again to settle it)` : reason;
    for (const r of records) report({ idempotencyKey: r.idempotencyKey, key: r.key, status: 'failed', reason: text, retryable }, request, maybeApplied);
  }

  /**
   * Records `request`'s intent through `auditIntent` and returns its id; undefined without
   * `auditIntent`. When recording fails, halts the run and fails the request's records as
   * not attempted (nothing was sent), and returns null.
   */
  async function recordIntent(request: WriteRequest): Promise<string | undefined | null> {
    if (!auditIntent) return undefined;
    const id = randomUUID();
    try {
      await auditIntent({ request: id, timestamp: new Date().toISOString(), object, mode, operation: request.mode, records: request.records });
      return id;
    } catch (thrown) {
      const cause = toTributaryError(thrown, 'recording the write intent failed');
      const error = new TributaryError('fatal', {
        userMessage: 'The audit trail could not record a write before it was sent',
        internalMessage: cause.internalMessage ?? cause.userMessage,
        cause: thrown,
      });
      halted ??= error;
      ctx.logger.error(`write to ${object}: the audit trail could not record the intent; halting the run`, { object });
      failAll(request.records, `not attempted: ${error.userMessage}`, false, id);
      return null;
    }
  }

  async function send(session: WriterSession, request: WriteRequest): Promise<void> {
    if (halted) {
      failAll(request.records, `not attempted: the run was halted (${halted.userMessage})`, false);
      return;
    }
    const requestId = await recordIntent(request);
    if (requestId === null) return;
    let answer: WriteResult[];
    /** Set when the run was halted before this request's next attempt could be sent. */
    let stoppedByHalt: TributaryError | undefined;
    let sent = false;
    /** An attempt was sent and failed without saying whether the target applied it. */
    let maybeApplied = false;
    try {
      const write = (): Promise<WriteResult[]> => {
        requests++;
        sent = true;
        return session.write(request).catch((error: unknown) => {
          // `transient`: a dropped connection, a 5xx, a timeout — the request may have been
          // applied. The other kinds are refusals (429, auth, config) or the writer's own verdict.
          if (toTributaryError(error).kind === 'transient') maybeApplied = true;
          throw error;
        });
      };
      /** An attempt (a retry, or one that waited for a slot) after another request halted the run is not sent. */
      const unlessHalted = <T>(task: () => Promise<T>): Promise<T> => {
        if (!halted) return task();
        stoppedByHalt = halted;
        return Promise.reject(new TributaryError('fatal', { userMessage: 'the run was halted' }));
      };
      answer = await withRetry(
        // While a half-open circuit's trial is out, an attempt waits for its answer (holding
        // no limiter slot, which the trial may need) instead of being turned away: the trial
        // decides whether the peer is back, and turned away, every request sent while it was
        // out failed although the peer was up. With the circuit closed, the breaker is asked
        // once the limiter lets the attempt go, not before it waits for a slot: an attempt
        // queued behind one that opened the circuit must be turned away, not sent to a peer
        // the circuit says is down. Otherwise it is asked first: an open circuit turns the
        // attempt away without taking a slot, and a trial waits for its slot as the one
        // attempt the circuit lets through.
        async () => {
          await trialAnswered(breaker, ctx.signal);
          return breaker.state === 'closed'
            ? ctx.limiter.schedule(() => unlessHalted(() => breaker.run(write)), ctx.signal)
            : unlessHalted(() => breaker.run(() => ctx.limiter.schedule(() => unlessHalted(write), ctx.signal)));
        },
        {
          ...writer.retry,
          signal: ctx.signal,
          limiter: ctx.limiter,
          // An open circuit fails the batch fast instead of waiting out the reset.
          shouldRetry: (error) => !isCircuitOpenError(error),
          onRetry: (error, attempt, delayMs) =>
            ctx.logger.warn(`write to ${object} failed (${error.kind}), attempt ${attempt}; retrying in ${delayMs} ms`, { object, attempt }),
        },
      );
    } catch (thrown) {
      if (ctx.signal.aborted) throw thrown;
      if (stoppedByHalt) {
        failAll(request.records, `${sent ? 'not retried' : 'not attempted'}: the run was halted (${stoppedByHalt.userMessage})`, false, requestId, maybeApplied);
        return;
      }
      const error = toTributaryError(thrown, `Writing to ${object} failed`);
      if (error.kind === 'auth' || error.kind === 'config' || error.kind === 'fatal') {
        halted ??= error;
        ctx.logger.error(`write to ${object} failed (${error.kind}); halting the run`, { object, kind: error.kind });
      }
      failAll(request.records, reasonOf(error), error.retryable, requestId, maybeApplied);
      return;
    }
    matchResults(request, Array.isArray(answer) ? answer : [], requestId);
  }

  /**
   * Enforces "exactly one result per input record", matched by idempotency key. A dry run's
   * results pass the ledger, which judges a key seen earlier in the run as a real run would.
   */
  function matchResults(request: WriteRequest, answer: WriteResult[], requestId: string | undefined): void {
    const records = request.records;
    const byKey = new Map<string, WriteResult>();
    let strays = 0;
    for (const result of answer) {
      if (result && typeof result.idempotencyKey === 'string' && !byKey.has(result.idempotencyKey)) byKey.set(result.idempotencyKey, result);
      else strays++;
    }
    for (const record of records) {
      const result = byKey.get(record.idempotencyKey);
      byKey.delete(record.idempotencyKey);
      if (!result) {
        report({ idempotencyKey: record.idempotencyKey, key: record.key, status: 'failed', reason: 'writer returned no result', retryable: true }, requestId);
      } else if (!STATUSES.includes(result.status)) {
        report({ idempotencyKey: record.idempotencyKey, key: record.key, status: 'failed', reason: `writer returned an unknown status ${JSON.stringify(result.status)}` }, requestId);
      } else {
        const matched: WriteResult = { ...result, idempotencyKey: record.idempotencyKey, key: record.key };
        const judged = ledger ? ledger.judge(identityOf(record.key), request, record, matched) : matched;
        report(judged.comparedValues === undefined ? judged : withoutComparedValues(judged), requestId);
      }
    }
    strays += byKey.size;
    if (strays > 0) ctx.logger.warn(`writer ${writer.name} returned ${strays} result(s) matching no record of the request`, { object });
  }

  /**
   * Sends batches with at most `concurrency` requests in flight, and never two at once that
   * hold a record of the same key (the later waits: see the module comment).
   */
  function createDispatcher(session: WriterSession): {
    submit(request: WriteRequest): Promise<void>;
    drain(): Promise<void>;
    settle(): Promise<void>;
  } {
    /** In-flight requests and the keys of their records. */
    const inFlight = new Map<Promise<void>, ReadonlySet<string>>();
    let failure: unknown;
    const sharesKeyWithInFlight = (keys: ReadonlySet<string>): boolean => {
      for (const held of inFlight.values()) for (const key of keys) if (held.has(key)) return true;
      return false;
    };
    return {
      async submit(request) {
        const keys = new Set(request.records.map((r) => identityOf(r.key)));
        while (inFlight.size >= concurrency || sharesKeyWithInFlight(keys)) await Promise.race(inFlight.keys());
        if (failure !== undefined) throw failure;
        const p: Promise<void> = send(session, request).then(
          () => {
            inFlight.delete(p);
          },
          (error: unknown) => {
            inFlight.delete(p);
            failure ??= error;
          },
        );
        inFlight.set(p, keys);
      },
      async drain() {
        while (inFlight.size > 0) await Promise.race(inFlight.keys());
        if (failure !== undefined) throw failure;
      },
      /** Waits for in-flight requests without raising (before closing the session on an error). */
      async settle() {
        while (inFlight.size > 0) await Promise.race(inFlight.keys());
      },
    };
  }

  const upsertMode: Exclude<WriteMode, 'mirror'> = mode === 'mirror' ? 'upsert' : mode;
  const session = options.session ?? (await writer.open(ctx, options.config));
  let deletesSkipped: string | undefined;
  const dispatcher = createDispatcher(session);
  try {
    if (mode === 'mirror' && typeof session.listKeys !== 'function') {
      throw new TributaryError('config', { userMessage: `Writer ${writer.name} cannot mirror ${object}: it does not list keys (listKeys)` });
    }
    const seenKeys = mode === 'mirror' ? new Set<string>() : undefined;
    let keyless = 0;
    let batch: WriteRecord[] = [];
    let batchKeys = new Set<string>();
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const request: WriteRequest = { object, mode: upsertMode, idProperty, records: batch, dryRun };
      batch = [];
      batchKeys = new Set();
      await dispatcher.submit(request);
    };

    let index = 0;
    for await (const input of options.records) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const position = index++;
      const fields: Record<string, unknown> = input !== null && typeof input === 'object' && !Array.isArray(input) ? input : {};
      const key = writeKeyOf(fields[idProperty]);
      const idempotencyKey = idempotencyKeyOf(object, upsertMode, key ?? '', fields);
      if (key === undefined) {
        keyless++;
        report({ idempotencyKey, key: '', status: 'failed', reason: `record ${position} has no usable value for ${JSON.stringify(idProperty)}`, retryable: false });
        continue;
      }
      const identity = identityOf(key);
      seenKeys?.add(identity);
      // One record per key and request: a writer judges every record of a request against
      // the row as it was before the request, so a second record of the key would be compared
      // with a stale row (and identical records would share an idempotency key).
      if (batchKeys.has(identity)) await flush();
      batch.push({ idempotencyKey, key, fields });
      batchKeys.add(identity);
      if (batch.length >= writer.maxBatchSize) await flush();
    }
    await flush();
    await dispatcher.drain();

    if (mode === 'mirror' && seenKeys && session.listKeys) {
      if (keyless > 0) deletesSkipped = `${keyless} input record(s) had no ${idProperty}, so the set of rows to keep is unknown`;
      else if (halted) deletesSkipped = `the run was halted (${halted.userMessage})`;
      else if (index === 0) deletesSkipped = `the input was empty, and mirroring it would delete every row of ${object} (to empty it, delete its rows in mode delete)`;
      if (deletesSkipped !== undefined) {
        ctx.logger.warn(`mirror of ${object}: not deleting anything: ${deletesSkipped}`, { object });
      } else {
        // List everything first: deleting while paging could shift the peer's cursor.
        const doomed = new Set<string>();
        for await (const key of session.listKeys(object, idProperty)) {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          if (!seenKeys.has(identityOf(key))) doomed.add(key);
        }
        let deletes: WriteRecord[] = [];
        for (const key of doomed) {
          deletes.push({ idempotencyKey: idempotencyKeyOf(object, 'delete', key, {}), key, fields: {} });
          if (deletes.length >= writer.maxBatchSize) {
            await dispatcher.submit({ object, mode: 'delete', idProperty, records: deletes, dryRun });
            deletes = [];
          }
        }
        if (deletes.length > 0) await dispatcher.submit({ object, mode: 'delete', idProperty, records: deletes, dryRun });
        await dispatcher.drain();
      }
    }
  } catch (error) {
    await dispatcher.settle();
    throw error;
  } finally {
    if (!options.session) await session.close();
  }

  const summary: WriterRunSummary = {
    object,
    mode,
    dryRun,
    total: STATUSES.reduce((sum, s) => sum + counts[s], 0),
    counts,
    requests,
  };
  if (results) summary.results = results;
  if (halted) summary.halted = { kind: halted.kind, message: halted.userMessage };
  if (deletesSkipped !== undefined) summary.deletesSkipped = deletesSkipped;
  return summary;
}
