import { describe, expect, it } from 'vitest';
import { TributaryError, createCircuitBreaker, isCircuitOpenError, type CircuitState } from '@tributary/core';

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
