import { describe, expect, it } from 'vitest';
import { TributaryError, createCircuitBreaker, defineWriter, isCircuitOpenError, runWriter, type CircuitState, type WriteRequest } from '@tributary/core';

function manualClock(start = 1_000_000): { now(): number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

const fail = (kind: TributaryError['kind']) => async (): Promise<never> => {
  throw new TributaryError(kind, { userMessage: kind });
};

describe('createCircuitBreaker', () => {
  it('opens after consecutive failures and rejects without calling the task', async () => {
    const clock = manualClock();
    const breaker = createCircuitBreaker({ failureThreshold: 3, resetAfterMs: 10_000, clock });
    for (let i = 0; i < 3; i++) await expect(breaker.run(fail('transient'))).rejects.toMatchObject({ kind: 'transient' });
    expect(breaker.state).toBe('open');

    clock.advance(4_000);
    let called = false;
    const rejected = await breaker
      .run(async () => {
        called = true;
      })
      .catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(isCircuitOpenError(rejected)).toBe(true);
    expect(rejected).toBeInstanceOf(TributaryError);
    const error = rejected as TributaryError;
    expect(error.kind).toBe('transient');
    expect(error.userMessage).toBe(`Circuit open: 3 consecutive failures; retrying after ${new Date(1_010_000).toISOString()}`);
    expect(error.retryAfterMs).toBe(6_000);
  });

  it('counts only retryable and fatal failures; other answers reset the streak', async () => {
    const breaker = createCircuitBreaker({ failureThreshold: 2, resetAfterMs: 1000, clock: manualClock() });
    await expect(breaker.run(fail('transient'))).rejects.toThrow();
    await expect(breaker.run(fail('skippable'))).rejects.toThrow();
    await expect(breaker.run(fail('rate_limited'))).rejects.toThrow();
    await expect(breaker.run(fail('config'))).rejects.toThrow();
    await expect(breaker.run(fail('fatal'))).rejects.toThrow();
    await expect(breaker.run(async () => 'ok')).resolves.toBe('ok');
    await expect(breaker.run(fail('transient'))).rejects.toThrow();
    expect(breaker.state).toBe('closed');
    await expect(breaker.run(fail('fatal'))).rejects.toThrow();
    expect(breaker.state).toBe('open');
    // Plain errors are converted: a thrown Error is fatal and counts.
    const other = createCircuitBreaker({ failureThreshold: 1, resetAfterMs: 1000, clock: manualClock() });
    await expect(
      other.run(async () => {
        throw new Error('bug');
      }),
    ).rejects.toThrow('bug');
    expect(other.state).toBe('open');
  });

  it('lets one trial through after resetAfterMs: success closes, failure reopens', async () => {
    const clock = manualClock();
    const breaker = createCircuitBreaker({ failureThreshold: 1, resetAfterMs: 500, clock });
    const transitions: Array<[CircuitState, CircuitState]> = [];
    breaker.onStateChange((state, previous) => transitions.push([previous, state]));

    await expect(breaker.run(fail('transient'))).rejects.toThrow();
    clock.advance(500);
    // Failed trial: reopened for another full resetAfterMs.
    await expect(breaker.run(fail('transient'))).rejects.toMatchObject({ userMessage: 'transient' });
    expect(breaker.state).toBe('open');
    clock.advance(499);
    await expect(breaker.run(async () => 'early')).rejects.toSatisfy(isCircuitOpenError);
    clock.advance(1);

    // Successful trial; while it is in flight, other calls are turned away.
    let release!: () => void;
    const trial = breaker.run(
      () =>
        new Promise<string>((resolve) => {
          release = () => resolve('trial ok');
        }),
    );
    expect(breaker.state).toBe('half-open');
    let secondCalled = false;
    await expect(
      breaker.run(async () => {
        secondCalled = true;
      }),
    ).rejects.toSatisfy(isCircuitOpenError);
    expect(secondCalled).toBe(false);
    release();
    await expect(trial).resolves.toBe('trial ok');
    expect(breaker.state).toBe('closed');
    await expect(breaker.run(async () => 'after')).resolves.toBe('after');

    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
  });

  it('validates its options', () => {
    expect(() => createCircuitBreaker({ failureThreshold: 0, resetAfterMs: 1 })).toThrow(TributaryError);
    expect(() => createCircuitBreaker({ failureThreshold: 1, resetAfterMs: -1 })).toThrow(TributaryError);
  });
});

/**
 * The circuit breaker's contract: once open, calls are turned away for `resetAfterMs`, then
 * exactly one trial decides. A call let through *before* the circuit opened may finish
 * after it (a writer has several requests in flight): its answer is evidence about the peer
 * as it was then, not a trial. A late success must not close an open circuit (the queued
 * requests would all go to a peer just seen failing five times), and a late failure must
 * not reopen the circuit while the trial is still out.
 */
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
