import { describe, expect, it } from 'vitest';
import {
  TributaryError,
  createCircuitBreaker,
  createConnectorContext,
  defineWriter,
  idempotencyKeyOf,
  runWriter,
  type RateLimitPolicy,
  type WriteAuditEntry,
  type WriteRequest,
  type WriteResult,
  type WriterSession,
} from '@tributary/core';

type Row = Record<string, unknown>;

interface Behaviour {
  /** Called before each request is applied; may throw to fail the whole request. */
  beforeWrite?: (request: WriteRequest, call: number) => void;
  /** Records the target refuses, by key. */
  rejectKeys?: Set<string>;
  /** Records the writer "forgets" to answer for, by key. */
  dropResultKeys?: Set<string>;
  listKeys?: boolean;
  rateLimit?: RateLimitPolicy;
  maxBatchSize?: number;
  /** Milliseconds each write takes (to observe concurrency). */
  latencyMs?: number;
}

/** A target backed by a Map, honouring dry runs and idempotency keys like a real one should. */
function mapTarget(initial: Record<string, Row> = {}, behaviour: Behaviour = {}) {
  const store = new Map<string, Row>(Object.entries(initial));
  const requests: WriteRequest[] = [];
  const applied = new Set<string>();
  let inFlight = 0;
  let maxInFlight = 0;
  let closed = 0;

  const session: WriterSession = {
    async write(request) {
      const call = requests.length;
      requests.push(structuredClone(request));
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (behaviour.latencyMs) await new Promise((r) => setTimeout(r, behaviour.latencyMs));
        behaviour.beforeWrite?.(request, call);
        const results: WriteResult[] = [];
        for (const record of request.records) {
          if (behaviour.dropResultKeys?.has(record.key)) continue;
          const base = { idempotencyKey: record.idempotencyKey, key: record.key };
          if (behaviour.rejectKeys?.has(record.key)) {
            results.push({ ...base, status: 'failed', reason: `target refused ${record.key}`, retryable: false });
            continue;
          }
          const existing = store.get(record.key);
          if (request.mode === 'delete') {
            if (!existing) results.push({ ...base, status: 'unchanged' });
            else {
              if (!request.dryRun) store.delete(record.key);
              results.push({ ...base, status: 'deleted' });
            }
            continue;
          }
          if (applied.has(record.idempotencyKey) || (existing && JSON.stringify(existing) === JSON.stringify(record.fields))) {
            results.push({ ...base, status: 'unchanged', id: record.key });
            continue;
          }
          if (request.mode === 'insert' && existing) {
            results.push({ ...base, status: 'failed', reason: 'already exists' });
            continue;
          }
          if (request.mode === 'update' && !existing) {
            results.push({ ...base, status: 'failed', reason: 'not found' });
            continue;
          }
          if (!request.dryRun) {
            store.set(record.key, { ...record.fields });
            applied.add(record.idempotencyKey);
          }
          results.push({ ...base, status: existing ? 'updated' : 'created', id: record.key });
        }
        return results;
      } finally {
        inFlight--;
      }
    },
    async close() {
      closed++;
    },
  };
  if (behaviour.listKeys !== false) {
    session.listKeys = async function* (object: string, idProperty: string) {
      expect(object).toBe('contacts');
      expect(idProperty).toBe('email');
      for (const key of [...store.keys()]) yield key;
    };
  }

  const writer = defineWriter({
    name: 'map-target',
    // (A schema with `properties: {}` makes ConfigOf too deep for tsc when widened to Writer.)
    spec: { connectionSpecification: { type: 'object', properties: { label: { type: 'string' } } } },
    rateLimit: behaviour.rateLimit ?? { concurrency: 2 },
    retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 },
    maxBatchSize: behaviour.maxBatchSize ?? 3,
    async check() {},
    async discover() {
      return [];
    },
    async open() {
      return session;
    },
  });
  return {
    writer,
    store,
    requests,
    get maxInFlight() {
      return maxInFlight;
    },
    get closed() {
      return closed;
    },
  };
}

const people = (n: number, offset = 0): Row[] => Array.from({ length: n }, (_, i) => ({ email: `p${i + offset}@x.io`, name: `Person ${i + offset}` }));
const base = { config: {}, object: 'contacts', idProperty: 'email' } as const;

describe('runWriter', () => {
  it('batches to maxBatchSize and reports one result per record', async () => {
    const target = mapTarget();
    const input = people(7);
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: input });
    expect(target.requests.map((r) => r.records.length)).toEqual([3, 3, 1]);
    expect(target.requests.every((r) => r.mode === 'upsert' && r.dryRun === false && r.idProperty === 'email')).toBe(true);
    expect(summary.total).toBe(7);
    expect(summary.counts).toEqual({ created: 7, updated: 0, unchanged: 0, deleted: 0, failed: 0 });
    expect(summary.requests).toBe(3);
    expect(summary.results!.map((r) => r.key).sort()).toEqual(input.map((r) => r.email as string).sort());
    expect(new Set(summary.results!.map((r) => r.idempotencyKey)).size).toBe(7);
    expect(Object.fromEntries(target.store)).toEqual(Object.fromEntries(input.map((r) => [r.email, r])));
    expect(target.closed).toBe(1);
  });

  it('uses stable idempotency keys, so a replay is answered unchanged', async () => {
    const target = mapTarget();
    const first = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: people(4) });
    // Same values, other key order: same change, same idempotency key.
    const reordered = people(4).map((r) => ({ name: r.name, email: r.email }));
    const second = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: reordered });
    expect(second.counts.unchanged).toBe(4);
    const keysOf = (s: typeof first) => s.results!.map((r) => `${r.key}=${r.idempotencyKey}`).sort();
    expect(keysOf(second)).toEqual(keysOf(first));
    expect(first.results![0]!.idempotencyKey).toBe(idempotencyKeyOf('contacts', 'upsert', first.results![0]!.key, people(4).find((p) => p.email === first.results![0]!.key)!));
    expect(target.store.size).toBe(4);
  });

  it('fails records without a key instead of dropping them', async () => {
    const target = mapTarget();
    const input: Row[] = [people(1)[0]!, { name: 'no email' }, { email: '', name: 'empty' }, { email: { nested: true } }, people(1, 1)[0]!];
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: input });
    expect(summary.total).toBe(5);
    expect(summary.counts.created).toBe(2);
    expect(summary.counts.failed).toBe(3);
    const failed = summary.results!.filter((r) => r.status === 'failed');
    expect(failed.map((r) => r.reason)).toEqual([
      'record 1 has no usable value for "email"',
      'record 2 has no usable value for "email"',
      'record 3 has no usable value for "email"',
    ]);
    expect(target.requests.flatMap((r) => r.records.map((x) => x.key))).toEqual(['p0@x.io', 'p1@x.io']);
  });

  it('reports partial failures and missing results per record', async () => {
    const target = mapTarget({}, { rejectKeys: new Set(['p2@x.io']), dropResultKeys: new Set(['p4@x.io']) });
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: people(6) });
    expect(summary.total).toBe(6);
    const byKey = Object.fromEntries(summary.results!.map((r) => [r.key, r]));
    expect(byKey['p2@x.io']).toMatchObject({ status: 'failed', reason: 'target refused p2@x.io' });
    expect(byKey['p4@x.io']).toMatchObject({ status: 'failed', reason: 'writer returned no result' });
    expect(summary.counts).toMatchObject({ created: 4, failed: 2 });
    expect([...target.store.keys()].sort()).toEqual(['p0@x.io', 'p1@x.io', 'p3@x.io', 'p5@x.io']);
  });

  it('retries a failed request as a whole without duplicating results', async () => {
    const target = mapTarget(
      {},
      {
        maxBatchSize: 2,
        beforeWrite: (_request, call) => {
          if (call === 0 || call === 1) throw new TributaryError('transient', { userMessage: 'HTTP 502' });
        },
        rateLimit: { concurrency: 1 },
      },
    );
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: people(4) });
    expect(summary.requests).toBe(4);
    expect(summary.total).toBe(4);
    expect(summary.counts.created).toBe(4);
    expect(target.store.size).toBe(4);
  });

  it('opens the circuit on repeated transient failures and fails the rest fast', async () => {
    const target = mapTarget(
      {},
      {
        maxBatchSize: 2,
        rateLimit: { concurrency: 1 },
        beforeWrite: () => {
          throw new TributaryError('transient', { userMessage: 'HTTP 503' });
        },
      },
    );
    const ctx = createConnectorContext({ rateLimit: { concurrency: 1 } });
    const summary = await runWriter({
      ...base,
      writer: target.writer,
      ctx,
      mode: 'upsert',
      records: people(10),
      breaker: { failureThreshold: 3, resetAfterMs: 60_000 },
    });
    // Three attempts reached the peer; everything after was turned away by the breaker,
    // without taking a rate-limit slot.
    expect(target.requests).toHaveLength(3);
    expect(summary.requests).toBe(3);
    expect(ctx.limiter.stats.started).toBe(3);
    expect(summary.total).toBe(10);
    expect(summary.counts.failed).toBe(10);
    const reasons = summary.results!.map((r) => r.reason ?? '');
    expect(reasons.filter((r) => r.startsWith('Circuit open: 3 consecutive failures; retrying after '))).toHaveLength(10);
    expect(summary.results!.every((r) => r.retryable === true)).toBe(true);
    expect(target.store.size).toBe(0);
  });

  it('does not send a request that waited for a limiter slot while the circuit opened', async () => {
    // The writer allows two requests in flight; the shared limiter lets one go at a time, so
    // the second request waits in the limiter while the first fails and opens the circuit.
    const breaker = createCircuitBreaker({ failureThreshold: 1, resetAfterMs: 60_000 });
    const statesAtCall: string[] = [];
    const target = mapTarget(
      {},
      {
        maxBatchSize: 1,
        latencyMs: 1,
        rateLimit: { concurrency: 2 },
        beforeWrite: () => {
          statesAtCall.push(breaker.state);
          throw new TributaryError('transient', { userMessage: 'HTTP 503' });
        },
      },
    );
    const ctx = createConnectorContext({ rateLimit: { concurrency: 1 } });
    const summary = await runWriter({ ...base, writer: target.writer, ctx, breaker, mode: 'upsert', records: people(2) });
    expect(target.requests).toHaveLength(1);
    expect(statesAtCall).toEqual(['closed']);
    expect(summary.requests).toBe(1);
    expect(summary.counts.failed).toBe(2);
    expect(summary.results!.find((r) => r.key === 'p1@x.io')?.reason).toMatch(/^Circuit open/);
  });

  it('halts on an auth error: no more requests, every record failed', async () => {
    const target = mapTarget(
      {},
      {
        rateLimit: { concurrency: 1 },
        beforeWrite: () => {
          throw new TributaryError('auth', { userMessage: 'token expired' });
        },
      },
    );
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: people(7) });
    expect(target.requests).toHaveLength(1);
    expect(summary.counts.failed).toBe(7);
    expect(summary.halted).toEqual({ kind: 'auth', message: 'token expired' });
  });

  it('sends no retry of another request once an auth error halted the run', async () => {
    // Request 0 fails with auth while request 1 is in flight; request 1 then fails with a
    // transient error, and its retry must not be sent: the run is halted.
    const calls: string[] = [];
    let request1Started!: () => void;
    const started = new Promise<void>((resolve) => (request1Started = resolve));
    const writer = defineWriter({
      name: 'halting-target',
      spec: { connectionSpecification: { type: 'object', properties: { label: { type: 'string' } } } },
      rateLimit: { concurrency: 2 },
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
      maxBatchSize: 1,
      async check() {},
      async discover() {
        return [];
      },
      async open() {
        return {
          async write(request: WriteRequest): Promise<WriteResult[]> {
            const key = request.records[0]!.key;
            calls.push(key);
            if (key === 'p0@x.io') {
              await started;
              throw new TributaryError('auth', { userMessage: 'token expired' });
            }
            request1Started();
            await new Promise((resolve) => setTimeout(resolve, 5));
            throw new TributaryError('transient', { userMessage: 'HTTP 503' });
          },
          async close() {},
        };
      },
    });
    const summary = await runWriter({ ...base, writer, mode: 'upsert', records: people(3) });
    expect(calls).toEqual(['p0@x.io', 'p1@x.io']);
    expect(summary.requests).toBe(2);
    expect(summary.halted).toEqual({ kind: 'auth', message: 'token expired' });
    expect(summary.counts).toMatchObject({ failed: 3, created: 0 });
    const reasons = Object.fromEntries(summary.results!.map((r) => [r.key, r.reason]));
    expect(reasons['p1@x.io']).toMatch(/^not retried: the run was halted \(token expired\)/);
    expect(reasons['p2@x.io']).toMatch(/^not attempted: the run was halted/);
  });

  it('mirror: upserts the input, then deletes what is not in it', async () => {
    const initial = {
      'a@x.io': { email: 'a@x.io', name: 'old A' },
      'b@x.io': { email: 'b@x.io', name: 'B' },
      'c@x.io': { email: 'c@x.io', name: 'C' },
      'x@x.io': { email: 'x@x.io', name: 'X' },
      'y@x.io': { email: 'y@x.io', name: 'Y' },
    };
    const target = mapTarget(initial);
    const audit: WriteAuditEntry[] = [];
    async function* input(): AsyncGenerator<Row> {
      yield { email: 'a@x.io', name: 'new A' };
      yield { email: 'b@x.io', name: 'B' };
      yield { email: 'd@x.io', name: 'D' };
    }
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'mirror', records: input(), audit: (e) => audit.push(e) });
    expect(Object.fromEntries(target.store)).toEqual({
      'a@x.io': { email: 'a@x.io', name: 'new A' },
      'b@x.io': { email: 'b@x.io', name: 'B' },
      'd@x.io': { email: 'd@x.io', name: 'D' },
    });
    expect(summary.counts).toEqual({ created: 1, updated: 1, unchanged: 1, deleted: 3, failed: 0 });
    expect(target.requests.map((r) => [r.mode, r.records.map((x) => x.key).sort()])).toEqual([
      ['upsert', ['a@x.io', 'b@x.io', 'd@x.io']],
      ['delete', ['c@x.io', 'x@x.io', 'y@x.io']],
    ]);
    // Streamed to the audit log instead of collected.
    expect(summary.results).toBeUndefined();
    expect(audit).toHaveLength(6);
    expect(audit.every((e) => e.object === 'contacts' && e.mode === 'mirror' && e.dryRun === false && /^[0-9a-f]{64}$/.test(e.idempotencyKey))).toBe(true);
    expect(audit.filter((e) => e.status === 'deleted').map((e) => e.key).sort()).toEqual(['c@x.io', 'x@x.io', 'y@x.io']);
    expect(audit.every((e) => !Number.isNaN(Date.parse(e.timestamp)))).toBe(true);
  });

  it('mirror: refuses a writer without listKeys before writing anything', async () => {
    const target = mapTarget({}, { listKeys: false });
    await expect(runWriter({ ...base, writer: target.writer, mode: 'mirror', records: people(2) })).rejects.toMatchObject({ kind: 'config' });
    expect(target.requests).toHaveLength(0);
    expect(target.closed).toBe(1);
  });

  it('mirror: deletes nothing when an input record has no key', async () => {
    const target = mapTarget({ 'keep@x.io': { email: 'keep@x.io' } });
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'mirror', records: [...people(2), { name: 'keyless' }] });
    expect(target.store.has('keep@x.io')).toBe(true);
    expect(summary.counts).toMatchObject({ created: 2, failed: 1, deleted: 0 });
    expect(summary.deletesSkipped).toContain('1 input record(s) had no email');
  });

  it('mirror: an empty input deletes nothing', async () => {
    const target = mapTarget({ 'keep@x.io': { email: 'keep@x.io' }, 'also@x.io': { email: 'also@x.io' } });
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'mirror', records: [] });
    expect([...target.store.keys()].sort()).toEqual(['also@x.io', 'keep@x.io']);
    expect(target.requests).toHaveLength(0);
    expect(summary.total).toBe(0);
    expect(summary.counts.deleted).toBe(0);
    expect(summary.deletesSkipped).toContain('the input was empty');
  });

  it('dry run changes nothing but reports what would happen', async () => {
    const initial = { 'p0@x.io': { email: 'p0@x.io', name: 'changed' }, 'gone@x.io': { email: 'gone@x.io' } };
    const target = mapTarget(initial);
    const before = structuredClone(Object.fromEntries(target.store));
    const audit: WriteAuditEntry[] = [];
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'mirror', records: people(3), dryRun: true, audit: (e) => audit.push(e) });
    expect(Object.fromEntries(target.store)).toEqual(before);
    expect(summary.dryRun).toBe(true);
    expect(summary.counts).toEqual({ created: 2, updated: 1, unchanged: 0, deleted: 1, failed: 0 });
    expect(target.requests.every((r) => r.dryRun)).toBe(true);
    expect(audit.every((e) => e.dryRun)).toBe(true);
  });

  it('keeps to the declared concurrency and shares a given context limiter', async () => {
    const target = mapTarget({}, { maxBatchSize: 1, latencyMs: 5, rateLimit: { concurrency: 3 } });
    const ctx = createConnectorContext({ rateLimit: { concurrency: 3 } });
    const summary = await runWriter({ ...base, writer: target.writer, ctx, mode: 'insert', records: people(12) });
    expect(summary.counts.created).toBe(12);
    expect(target.maxInFlight).toBeLessThanOrEqual(3);
    expect(ctx.limiter.stats.started).toBe(12);
  });

  it('splits identical records into separate requests so results stay matched', async () => {
    const target = mapTarget();
    const row = { email: 'same@x.io', name: 'Same' };
    const summary = await runWriter({ ...base, writer: target.writer, mode: 'upsert', records: [row, { ...row }, { ...row }] });
    expect(summary.total).toBe(3);
    expect(summary.counts).toMatchObject({ created: 1, unchanged: 2, failed: 0 });
    expect(target.requests.map((r) => r.records.length)).toEqual([1, 1, 1]);
  });
});
