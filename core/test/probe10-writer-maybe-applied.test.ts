/**
 * A request the target applied but whose answer was lost (a dropped connection, a 5xx), then
 * refused for good on its retry (the daily API limit reached meanwhile), used to be audited
 * as a plain `failed`, not retryable: the audit said the record was not written while the
 * target held its values (found by connectors/salesforce probe10-writer-lost-responses).
 * Its result now says the record may have been applied (`maybeApplied`, and in the reason);
 * a request only refused (429, then fatal) says nothing of the kind.
 */
import { describe, expect, it } from 'vitest';
import { defineWriter, runWriter, TributaryError, type WriteAuditEntry, type WriteRequest, type WriteResult } from '@tributary/core';

/** An in-process target: `failures` lists how each attempt of the first request fails after (`applied`) or before applying it. */
function scriptedWriter(failures: Array<{ kind: 'transient' | 'rate_limited' | 'fatal'; applied: boolean }>) {
  const target = new Map<string, Record<string, unknown>>();
  let attempt = 0;
  const writer = defineWriter({
    name: 'scripted',
    spec: { connectionSpecification: { type: 'object' } },
    rateLimit: { requests: 1000, perMs: 1000, concurrency: 1 },
    retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 },
    maxBatchSize: 10,
    async check() {},
    async discover() {
      return [];
    },
    async open() {
      return {
        async write(request: WriteRequest): Promise<WriteResult[]> {
          const failure = failures[attempt++];
          const apply = (): WriteResult[] =>
            request.records.map((r) => {
              target.set(r.key, r.fields);
              return { idempotencyKey: r.idempotencyKey, key: r.key, status: 'updated' };
            });
          if (failure === undefined) return apply();
          if (failure.applied) apply();
          throw new TributaryError(failure.kind, { userMessage: `attempt ${attempt}: ${failure.kind}${failure.applied ? ' after applying' : ''}` });
        },
        async close() {},
      };
    },
  });
  return { writer, target };
}

async function run(failures: Parameters<typeof scriptedWriter>[0]) {
  const { writer, target } = scriptedWriter(failures);
  const audit: WriteAuditEntry[] = [];
  const summary = await runWriter({
    writer,
    config: {},
    object: 'contacts',
    mode: 'upsert',
    idProperty: 'email',
    records: [{ email: 'ada@example.com', name: 'Ada' }],
    audit: (e) => audit.push(e),
  });
  return { summary, target, audit };
}

describe('reverse ETL: a failed record whose request may have been applied', () => {
  it('an answer lost after applying, then a fatal refusal on the retry: failed, maybeApplied, the reason says so', async () => {
    const { target, audit } = await run([
      { kind: 'transient', applied: true },
      { kind: 'fatal', applied: false },
    ]);
    expect(target.get('ada@example.com')).toEqual({ email: 'ada@example.com', name: 'Ada' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ status: 'failed', maybeApplied: true });
    expect(audit[0]!.reason).toMatch(/may have been applied/);
  });

  it('transient failures until the attempts run out: failed, maybeApplied', async () => {
    const { audit } = await run([
      { kind: 'transient', applied: false },
      { kind: 'transient', applied: true },
      { kind: 'transient', applied: false },
      { kind: 'transient', applied: false },
    ]);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ status: 'failed', retryable: true, maybeApplied: true });
  });

  it('only refusals (429, then fatal): failed, nothing says it may have been applied', async () => {
    const { target, audit } = await run([
      { kind: 'rate_limited', applied: false },
      { kind: 'fatal', applied: false },
    ]);
    expect(target.size).toBe(0);
    expect(audit).toHaveLength(1);
    expect(audit[0]!.status).toBe('failed');
    expect(audit[0]!.maybeApplied).toBeUndefined();
    expect(audit[0]!.reason).not.toMatch(/may have been applied/);
  });

  it('a lost answer, then a retry that succeeds: updated, no maybeApplied', async () => {
    const { audit } = await run([{ kind: 'transient', applied: true }]);
    expect(audit).toHaveLength(1);
    expect(audit[0]!.status).toBe('updated');
    expect(audit[0]!.maybeApplied).toBeUndefined();
  });
});
