/**
 * The circuit breaker's contract: once open, calls are turned away for `resetAfterMs`, then
 * exactly one trial decides. A call let through *before* the circuit opened may finish
 * after it (a writer has several requests in flight): its answer is evidence about the peer
 * as it was then, not a trial. A late success must not close an open circuit (the queued
 * requests would all go to a peer just seen failing five times), and a late failure must
 * not reopen the circuit while the trial is still out.
 */
import { describe, expect, it } from 'vitest';
import { createCircuitBreaker, defineWriter, isCircuitOpenError, runWriter, TributaryError, type WriteRequest } from '@tributary/core';

function manualClock(start = 1_000_000): { now(): number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const transient = async (): Promise<never> => {
  throw new TributaryError('transient', { userMessage: 'HTTP 503' });
};

describe('answers of calls that started before the circuit opened', () => {
  it('a late success does not close an open circuit: calls are still turned away until the reset time', async () => {
    const clock = manualClock();
    const breaker = createCircuitBreaker({ failureThreshold: 3, resetAfterMs: 30_000, clock });
    const slow = deferred<string>();
    const straggler = breaker.run(() => slow.promise);
    for (let i = 0; i < 3; i++) await expect(breaker.run(transient)).rejects.toThrow('HTTP 503');
    expect(breaker.state).toBe('open');

    slow.resolve('ok');
    await expect(straggler).resolves.toBe('ok');
    expect(breaker.state).toBe('open');
    clock.advance(1_000);
    let called = false;
    const turnedAway = await breaker
      .run(async () => {
        called = true;
      })
      .catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(isCircuitOpenError(turnedAway)).toBe(true);
  });

  it('a late failure does not reopen the circuit while the trial is out; the trial decides', async () => {
    const clock = manualClock();
    const breaker = createCircuitBreaker({ failureThreshold: 2, resetAfterMs: 30_000, clock });
    const slow = deferred<never>();
    const straggler = breaker.run(() => slow.promise);
    for (let i = 0; i < 2; i++) await expect(breaker.run(transient)).rejects.toThrow('HTTP 503');
    expect(breaker.state).toBe('open');

    clock.advance(30_000);
    const trial = deferred<string>();
    const trialRun = breaker.run(() => trial.promise);
    expect(breaker.state).toBe('half-open');
    slow.reject(new TributaryError('transient', { userMessage: 'late 503' }));
    await expect(straggler).rejects.toThrow('late 503');
    expect(breaker.state).toBe('half-open');
    trial.resolve('healthy');
    await expect(trialRun).resolves.toBe('healthy');
    expect(breaker.state).toBe('closed');
  });

  it('calls started while closed still count while it stays closed', async () => {
    const breaker = createCircuitBreaker({ failureThreshold: 2, resetAfterMs: 30_000, clock: manualClock() });
    const a = deferred<never>();
    const b = deferred<never>();
    const runs = [breaker.run(() => a.promise), breaker.run(() => b.promise)];
    a.reject(new TributaryError('transient', { userMessage: 'a' }));
    b.reject(new TributaryError('transient', { userMessage: 'b' }));
    await Promise.allSettled(runs);
    expect(breaker.state).toBe('open');
  });
});

describe('runWriter with concurrent requests', () => {
  it('a request answered after the circuit opened does not let the next ones through to the failing peer', async () => {
    const slow = deferred<void>();
    const sent: string[] = [];
    const writer = defineWriter({
      name: 'flaky',
      spec: { connectionSpecification: { type: 'object', properties: {} } },
      rateLimit: { concurrency: 2 },
      retry: { maxAttempts: 1 },
      maxBatchSize: 1,
      async check() {},
      async discover() {
        return [{ name: 'items', fields: [], idProperties: ['id'], modes: ['upsert'] }];
      },
      async open() {
        return {
          async write(request: WriteRequest) {
            const key = request.records[0]!.key;
            sent.push(key);
            // `a` was accepted before the peer went down and is answered late; then it fails.
            if (key === 'a') await slow.promise;
            else if (key === 'b' || key === 'c') {
              if (key === 'c') setTimeout(() => slow.resolve(), 5);
              throw new TributaryError('transient', { userMessage: 'HTTP 503' });
            }
            return request.records.map((r) => ({ idempotencyKey: r.idempotencyKey, key: r.key, status: 'created' as const }));
          },
          async close() {},
        };
      },
    });
    const records = (async function* () {
      yield { id: 'a' };
      yield { id: 'b' };
      yield { id: 'c' };
      // Arrives once the circuit opened and `a` was answered.
      await new Promise((r) => setTimeout(r, 30));
      yield { id: 'd' };
    })();
    const summary = await runWriter({ writer, config: {}, object: 'items', mode: 'upsert', idProperty: 'id', records, breaker: { failureThreshold: 2, resetAfterMs: 60_000 } });
    expect(sent).toEqual(['a', 'b', 'c']);
    expect(summary.counts).toMatchObject({ created: 1, failed: 3 });
  });
});
