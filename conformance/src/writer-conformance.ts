import { describe, it } from 'vitest';
import {
  createConnectorContext,
  createRateLimiter,
  idempotencyKeyOf,
  parseConfig,
  runWriter,
  type ConnectorContext,
  type WriteMode,
  type WriteResult,
  type WriteStatus,
  type WriterRunSummary,
} from '@tributary/core';
import { assertSpec, contextFor, diffMultisets, maxStartsWithin, preview, validated, type RawConfig, type WriterUnderTest } from './harness.js';

type RequestMode = Exclude<WriteMode, 'mirror' | 'delete'>;

export interface WriterConformanceOptions {
  writer: WriterUnderTest;
  /** A config pointing at a fresh target (no rows of `object`). Called once per case. */
  config: () => RawConfig | Promise<RawConfig>;
  object: string;
  idProperty: string;
  /** Mode of every run (default `upsert`). */
  mode?: RequestMode;
  /** `n` valid records with distinct `idProperty` values; the same `n` gives equal records. */
  records(n: number): Record<string, unknown>[];
  /** A record the target refuses (a missing required field, a malformed value). */
  invalidRecord(): Record<string, unknown>;
  /** Records per run in the idempotency, partial-failure and dry-run cases (default 10). */
  recordCount?: number;
  /**
   * Write requests the rate-limit case drives. Default: two full windows plus one
   * (`2 * rateLimit.requests + 1`), so the limiter must hold requests back.
   */
  rateLimitRequests?: number;
  /** Dotted paths of fields whose name looks secret but is not. */
  notSecret?: readonly string[];
}

export interface WriterCase {
  readonly name: string;
  run(options: WriterConformanceOptions): Promise<void>;
}

const APPLIED: readonly WriteStatus[] = ['created', 'updated', 'unchanged'];

async function parsed(options: WriterConformanceOptions): Promise<RawConfig> {
  return parseConfig(options.writer.spec.connectionSpecification, await options.config(), 'config');
}

async function run(
  options: WriterConformanceOptions,
  config: RawConfig,
  records: Record<string, unknown>[],
  extra: { dryRun?: boolean; writer?: WriterUnderTest; ctx?: ConnectorContext } = {},
): Promise<WriterRunSummary & { results: WriteResult[] }> {
  const summary = await runWriter({
    ...(extra.ctx ? { ctx: extra.ctx } : {}),
    writer: extra.writer ?? options.writer,
    config,
    object: options.object,
    mode: options.mode ?? 'upsert',
    idProperty: options.idProperty,
    records,
    dryRun: extra.dryRun ?? false,
  });
  if (summary.halted) throw new Error(`the run halted (${summary.halted.kind}): ${summary.halted.message}`);
  const results = summary.results ?? [];
  if (results.length !== records.length) throw new Error(`${records.length} record(s) in, ${results.length} result(s) out: exactly one result per record is the contract`);
  return { ...summary, results };
}

/** The idempotency key runWriter gives a record (its identity in results). */
function idempotencyKeyOfRecord(options: WriterConformanceOptions, record: Record<string, unknown>): string {
  const value = record[options.idProperty];
  const key = typeof value === 'string' || typeof value === 'number' ? String(value) : '';
  return idempotencyKeyOf(options.object, options.mode ?? 'upsert', key, record);
}

function statusesByKey(results: WriteResult[]): Map<string, WriteStatus[]> {
  const out = new Map<string, WriteStatus[]>();
  for (const r of results) out.set(r.idempotencyKey, [...(out.get(r.idempotencyKey) ?? []), r.status].sort());
  return out;
}

function describeResults(results: WriteResult[]): string {
  return preview(results.map((r) => `${r.key}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`));
}

/**
 * When the writer can list the target's keys (`listKeys`, as for mirror runs), every record a
 * run reported applied must be listed: a writer that answers from a ledger of its own and
 * never stored the row passes every status check, and fails here.
 */
async function assertInTarget(options: WriterConformanceOptions, config: RawConfig, results: WriteResult[], what: string): Promise<void> {
  const { writer } = options;
  const session = await writer.open(contextFor(writer), validated(config));
  try {
    if (!session.listKeys) return;
    const identity = (key: string): string => (writer.keyIdentity ? writer.keyIdentity(options.object, options.idProperty, key) : key);
    const listed = new Set<string>();
    for await (const key of session.listKeys(options.object, options.idProperty)) listed.add(identity(key));
    const absent = results.filter((r) => APPLIED.includes(r.status) && !listed.has(identity(r.key)));
    if (absent.length > 0) throw new Error(`${what}: ${absent.length} applied record(s) are not in the target (listKeys does not list them): ${describeResults(absent)}`);
  } finally {
    await session.close();
  }
}

/**
 * The field the changed-records case changes, from the object's discovered fields: the first
 * writable, non-unique, non-id field the records all hold as a plain string (it gets a suffix)
 * or, failing that, as a number without bounds (it grows by one).
 */
async function fieldToChange(
  options: WriterConformanceOptions,
  config: RawConfig,
  records: Record<string, unknown>[],
): Promise<{ name: string; change(value: unknown): unknown }> {
  const objects = await options.writer.discover(contextFor(options.writer), validated(config));
  const fields = objects.find((o) => o.name === options.object)?.fields ?? [];
  const candidates = fields.filter((f) => f.name !== options.idProperty && f.writable !== false && f.unique !== true);
  const constrained = (schema: Record<string, unknown>, keys: string[]): boolean => keys.some((k) => schema[k] !== undefined);
  const typed = (schema: Record<string, unknown>, type: string): boolean => schema.type === type || (Array.isArray(schema.type) && schema.type.includes(type));
  const text = candidates.find(
    (f) =>
      typed(f.schema, 'string') &&
      !constrained(f.schema, ['format', 'enum', 'const', 'pattern']) &&
      records.every((r) => typeof r[f.name] === 'string' && (typeof f.schema.maxLength !== 'number' || (r[f.name] as string).length + 10 <= f.schema.maxLength)),
  );
  if (text) return { name: text.name, change: (value) => `${String(value)} (changed)` };
  const number = candidates.find(
    (f) => (typed(f.schema, 'number') || typed(f.schema, 'integer')) && !constrained(f.schema, ['enum', 'const', 'maximum', 'exclusiveMaximum', 'multipleOf']) && records.every((r) => typeof r[f.name] === 'number'),
  );
  if (number) return { name: number.name, change: (value) => (value as number) + 1 };
  throw new Error(
    `changedRecords: ${options.object} has no writable, non-unique field other than ${options.idProperty} that the records hold as a plain string or an unbounded number, so no record can be changed`,
  );
}

/** The named writer cases, in the order `writerConformance` registers them. */
export const writerCases = {
  spec: {
    name: 'spec: connectionSpecification is draft-07, secrets are marked, SPEC validates against the protocol',
    async run(options) {
      assertSpec(options.writer.spec, options.notSecret);
    },
  },
  checkAndDiscover: {
    name: 'check succeeds; discover offers the object, its id property and the mode',
    async run(options) {
      const config = await parsed(options);
      const ctx = contextFor(options.writer);
      await options.writer.check(ctx, validated(config));
      const objects = await options.writer.discover(ctx, validated(config));
      const object = objects.find((o) => o.name === options.object);
      if (!object) throw new Error(`discover does not offer object ${options.object} (offers ${objects.map((o) => o.name).join(', ')})`);
      if (!object.idProperties.includes(options.idProperty)) throw new Error(`${options.object}: ${options.idProperty} is not among idProperties (${object.idProperties.join(', ')})`);
      const mode = options.mode ?? 'upsert';
      if (!object.modes.includes(mode)) throw new Error(`${options.object}: mode ${mode} is not among modes (${object.modes.join(', ')})`);
      if (!Number.isInteger(options.writer.maxBatchSize) || options.writer.maxBatchSize < 1) throw new Error(`maxBatchSize must be a positive integer`);
    },
  },
  sameBatchTwice: {
    name: 'idempotency: the same batch written twice, the second run is all unchanged',
    async run(options) {
      const config = await parsed(options);
      const records = options.records(options.recordCount ?? 10);
      const first = await run(options, config, records);
      const notApplied = first.results.filter((r) => !APPLIED.includes(r.status));
      if (notApplied.length > 0) throw new Error(`the first run did not apply ${notApplied.length} valid record(s): ${describeResults(notApplied)}`);
      await assertInTarget(options, config, first.results, 'after the first run');
      const second = await run(options, config, records);
      const changed = second.results.filter((r) => r.status !== 'unchanged');
      if (changed.length > 0) throw new Error(`replaying the same batch changed ${changed.length} record(s) again: ${describeResults(changed)}`);
    },
  },
  changedRecords: {
    name: 'changed records: a new version of a stored key is updated (not unchanged, not created again), and its replay is unchanged',
    async run(options) {
      const config = await parsed(options);
      const records = options.records(options.recordCount ?? 10);
      const changedField = await fieldToChange(options, config, records);
      const changed = records.map((r) => ({ ...r, [changedField.name]: changedField.change(r[changedField.name]) }));
      const first = await run(options, config, records);
      const notApplied = first.results.filter((r) => !APPLIED.includes(r.status));
      if (notApplied.length > 0) throw new Error(`the first run did not apply ${notApplied.length} valid record(s): ${describeResults(notApplied)}`);
      const update = await run(options, config, changed);
      const notUpdated = update.results.filter((r) => r.status !== 'updated');
      if (notUpdated.length > 0) {
        const unchanged = notUpdated.filter((r) => r.status === 'unchanged').length;
        throw new Error(
          `${notUpdated.length} changed record(s) (field ${changedField.name}) were not updated; ${unchanged} changed record(s) came back unchanged: ${describeResults(notUpdated)}`,
        );
      }
      // Proof that the update reached the target: the same change again has nothing to do.
      const replay = await run(options, config, changed);
      const again = replay.results.filter((r) => r.status !== 'unchanged');
      if (again.length > 0) throw new Error(`replaying the changed records changed ${again.length} record(s) again: ${describeResults(again)}`);
    },
  },
  partialFailures: {
    name: 'partial failure: one result per record; invalid records fail with a reason, valid ones are applied',
    async run(options) {
      const config = await parsed(options);
      const valid = options.records(options.recordCount ?? 10);
      const invalid = [options.invalidRecord(), options.invalidRecord()];
      // Invalid records sit among valid ones in the same requests.
      const mixed = [...valid.slice(0, 1), invalid[0]!, ...valid.slice(1), invalid[1]!];
      const { results } = await run(options, config, mixed);
      const { missing, extra } = diffMultisets(
        mixed.map((r) => idempotencyKeyOfRecord(options, r)),
        results.map((r) => r.idempotencyKey),
      );
      if (missing.length > 0 || extra.length > 0) throw new Error(`results do not match the inputs one to one: ${missing.length} without a result, ${extra.length} unmatched`);
      const invalidKeys = new Set(invalid.map((r) => idempotencyKeyOfRecord(options, r)));
      for (const result of results) {
        if (invalidKeys.has(result.idempotencyKey)) {
          if (result.status !== 'failed') throw new Error(`an invalid record came back ${result.status}, expected failed`);
          if (!result.reason || result.reason.trim().length === 0) throw new Error('a failed record carries no reason');
        } else if (!APPLIED.includes(result.status)) {
          throw new Error(`a valid record next to invalid ones was not applied: ${describeResults([result])}`);
        }
      }
      // Proof that the valid ones reached the target: replaying them changes nothing.
      const again = await run(options, config, valid);
      const changed = again.results.filter((r) => r.status !== 'unchanged');
      if (changed.length > 0) throw new Error(`the valid records were not all applied by the mixed run: ${describeResults(changed)}`);
    },
  },
  rateLimit: {
    name: 'rate limit: no window of perMs holds more write starts than declared, in-flight never above concurrency',
    async run(options) {
      const { writer } = options;
      const policy = writer.rateLimit;
      const perMs = policy.perMs ?? 1000;
      const requests = options.rateLimitRequests ?? (policy.requests !== undefined ? 2 * policy.requests + 1 : 10);
      const config = await parsed(options);
      // The run gets the context runWriter would build by default (the writer's declared rate
      // limit and retry policy), except that its limiter reads a clock this case watches.
      // The limiter reads that clock to grant a start and then calls the write in the same
      // synchronous stack, so the last reading when the wrapper below runs is the grant time.
      // Taking Date.now() in the wrapper instead counted the time between the two (a GC pause,
      // the process descheduled on a loaded machine) against the limiter: a start delayed by
      // a few milliseconds made 11 starts of a correct 10-per-1000-ms limiter look like one window.
      let clockRead = 0;
      const limiter = createRateLimiter(policy, { now: () => (clockRead = Date.now()) });
      const runContext = createConnectorContext({ rateLimit: policy, ...(writer.retry ? { retry: writer.retry } : {}), limiter });
      const starts: number[] = [];
      let ungranted = 0;
      let inFlight = 0;
      let maxInFlight = 0;
      // The session is wrapped, not the target: what is measured is what runWriter lets through.
      const measured: WriterUnderTest = {
        ...writer,
        async open(ctx, c) {
          const session = await writer.open(ctx, c);
          return {
            ...session,
            async write(request) {
              // Every write must be a start the limiter granted (one grant, one write).
              if (limiter.stats.started <= starts.length) ungranted++;
              starts.push(clockRead);
              inFlight++;
              maxInFlight = Math.max(maxInFlight, inFlight);
              try {
                return await session.write(request);
              } finally {
                inFlight--;
              }
            },
            close: () => session.close(),
          };
        },
      };
      const records = options.records(requests * writer.maxBatchSize);
      const summary = await run(options, config, records, { writer: measured, ctx: runContext });
      const failed = summary.results.filter((r) => r.status === 'failed');
      if (failed.length > 0) throw new Error(`${failed.length} record(s) failed under the rate limit: ${describeResults(failed)}`);
      if (starts.length < requests) throw new Error(`expected at least ${requests} write requests, saw ${starts.length}`);
      if (ungranted > 0) throw new Error(`${ungranted} write(s) started without the rate limiter granting them`);
      if (policy.concurrency !== undefined && maxInFlight > policy.concurrency) {
        throw new Error(`${maxInFlight} writes were in flight at once; the writer declares concurrency ${policy.concurrency}`);
      }
      if (policy.requests !== undefined) {
        // Grant times on the limiter's own clock: its contract is at most `requests` in any half-open interval of perMs.
        const worst = maxStartsWithin(starts, perMs);
        if (worst > policy.requests) throw new Error(`${worst} write starts within ${perMs} ms; the writer declares ${policy.requests} per ${perMs} ms`);
      }
    },
  },
  dryRun: {
    name: 'dry run: reports the statuses a real run then reports, and changes nothing',
    async run(options) {
      const config = await parsed(options);
      const valid = options.records(options.recordCount ?? 10);
      const records = [...valid, options.invalidRecord()];
      const dry = await run(options, config, records, { dryRun: true });
      if (dry.results.every((r) => r.status === 'unchanged' || r.status === 'failed')) {
        throw new Error('the dry run reports nothing to change, so it cannot show it changed nothing: config() must give a fresh target');
      }
      // Had the dry run written anything, the real run would now answer `unchanged` for it.
      const real = await run(options, config, records);
      const dryStatuses = statusesByKey(dry.results);
      const realStatuses = statusesByKey(real.results);
      const differing = [...dryStatuses].filter(([key, s]) => JSON.stringify(s) !== JSON.stringify(realStatuses.get(key)));
      if (differing.length > 0) {
        throw new Error(
          `dry and real runs disagree on ${differing.length} record(s): ${preview(differing.map(([key, s]) => `${key.slice(0, 12)}: dry ${s.join('/')} vs real ${(realStatuses.get(key) ?? []).join('/')}`))}`,
        );
      }
    },
  },
} satisfies Record<string, WriterCase>;

export type WriterCaseName = keyof typeof writerCases;


/** Registers the writer conformance suite: one `describe`, one named `it` per case. */
export function writerConformance(options: WriterConformanceOptions): void {
  describe(`writer conformance: ${options.writer.name} → ${options.object}`, () => {
    for (const name of Object.keys(writerCases) as WriterCaseName[]) {
      const c: WriterCase = writerCases[name];
      it(c.name, () => c.run(options));
    }
  });
}
