import { describe, expect, it } from 'vitest';
import { TributaryError, backoffDelay, createRateLimiter, withRetry } from '@tributary/core';

const transient = (n: number): TributaryError => new TributaryError('transient', { userMessage: `flaky ${n}`, internalMessage: `peer said no (${n})` });

describe('withRetry', () => {
  it('retries transient errors with exponential backoff and full jitter', async () => {
    const attempts: number[] = [];
    const retries: Array<[string, number, number]> = [];
    const value = await withRetry(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 4) throw transient(attempt);
        return 'ok';
      },
      {
        maxAttempts: 5,
        baseDelayMs: 4,
        maxDelayMs: 10,
        random: () => 0.5,
        onRetry: (error, attempt, delay) => retries.push([error.userMessage, attempt, delay]),
      },
    );
    expect(value).toBe('ok');
    expect(attempts).toEqual([1, 2, 3, 4]);
    // 0.5 * min(10, 4 * 2^(n-1)): 2, 4, 5
    expect(retries).toEqual([
      ['flaky 1', 1, 2],
      ['flaky 2', 2, 4],
      ['flaky 3', 3, 5],
    ]);
  });

  it('computes the documented backoff', () => {
    expect(backoffDelay(1, { baseDelayMs: 100, maxDelayMs: 1000 }, () => 0.999)).toBe(99);
    expect(backoffDelay(5, { baseDelayMs: 100, maxDelayMs: 1000 }, () => 1)).toBe(1000);
    expect(backoffDelay(3, {}, () => 0)).toBe(0);
    expect(backoffDelay(2, {}, () => 1)).toBe(400); // default base 200
  });

  it('honours retryAfterMs even above maxDelayMs', async () => {
    const delays: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw new TributaryError('transient', { userMessage: 'busy', retryAfterMs: 40 });
        return calls;
      },
      { baseDelayMs: 1, maxDelayMs: 2, random: () => 1, onRetry: (_e, _a, d) => delays.push(d) },
    );
    expect(delays).toEqual([40]);
  });

  it('does not retry non-retryable errors and rethrows them unchanged', async () => {
    for (const kind of ['skippable', 'config', 'auth', 'fatal'] as const) {
      const error = new TributaryError(kind, { userMessage: kind });
      let calls = 0;
      await expect(
        withRetry(
          async () => {
            calls++;
            throw error;
          },
          { baseDelayMs: 1 },
        ),
      ).rejects.toBe(error);
      expect(calls).toBe(1);
    }
  });

  it('converts unknown errors: network codes retry, anything else is fatal', async () => {
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        return 'ok';
      },
      { baseDelayMs: 1 },
    );
    expect(value).toBe('ok');
    expect(calls).toBe(2);

    calls = 0;
    const failure = withRetry(
      async () => {
        calls++;
        throw new Error('boom');
      },
      { baseDelayMs: 1 },
    );
    await expect(failure).rejects.toBeInstanceOf(TributaryError);
    await expect(failure).rejects.toMatchObject({ kind: 'fatal', internalMessage: 'boom' });
    expect(calls).toBe(1);
  });

  it('rethrows the last error after the last attempt, noting the attempts', async () => {
    let calls = 0;
    let last: TributaryError | undefined;
    const failure = withRetry(
      async () => {
        calls++;
        last = transient(calls);
        throw last;
      },
      { maxAttempts: 3, baseDelayMs: 1 },
    );
    await expect(failure).rejects.toMatchObject({ kind: 'transient', userMessage: 'flaky 3', internalMessage: 'peer said no (3) (gave up after 3 attempts)' });
    const error = await failure.catch((e: unknown) => e as TributaryError);
    expect(error.cause).toBe(last);
    expect(calls).toBe(3);
  });

  it('a rate_limited error pauses the shared limiter for every stream', async () => {
    const limiter = createRateLimiter();
    const pauses: number[] = [];
    limiter.onPause((until) => pauses.push(until));
    let calls = 0;
    const before = Date.now();
    await withRetry(
      async () => {
        calls++;
        if (calls === 1) throw new TributaryError('rate_limited', { userMessage: 'slow down', retryAfterMs: 60 });
        if (calls === 2) throw new TributaryError('rate_limited', { userMessage: 'slow down' });
        return 'ok';
      },
      { limiter, baseDelayMs: 20, maxDelayMs: 20, random: () => 1 },
    );
    expect(pauses).toHaveLength(2);
    expect(pauses[0]).toBeGreaterThanOrEqual(before + 60);
    // Without retryAfterMs the pause is the backoff (1 * min(20, 20 * 2)).
    expect(pauses[1]).toBeGreaterThanOrEqual((pauses[0] as number) - 60 + 20);
    expect(limiter.stats.pauses).toBe(2);
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    let calls = 0;
    const failure = withRetry(
      async () => {
        calls++;
        throw new TributaryError('transient', { userMessage: 'down', retryAfterMs: 60_000 });
      },
      { signal: controller.signal, onRetry: () => setImmediate(() => controller.abort(new Error('shutting down'))) },
    );
    await expect(failure).rejects.toThrow('shutting down');
    expect(calls).toBe(1);

    await expect(withRetry(async () => 'never', { signal: controller.signal })).rejects.toThrow('shutting down');
  });

  it('rejects an invalid maxAttempts', async () => {
    await expect(withRetry(async () => 1, { maxAttempts: 0 })).rejects.toMatchObject({ kind: 'config' });
  });
});
