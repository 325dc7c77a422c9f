import { afterEach, describe, expect, it, vi } from 'vitest';
import { TributaryError, createRateLimiter } from '@tributary/core';

/** A promise resolved from outside. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Largest number of starts falling in any half-open window [t, t + perMs). */
function maxInAnyWindow(starts: number[], perMs: number): number {
  const sorted = [...starts].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[j] as number) + perMs <= (sorted[i] as number)) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('createRateLimiter (fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is a sliding window: no burst across window edges', async () => {
    vi.useFakeTimers({ now: 0 });
    const limiter = createRateLimiter({ requests: 5, perMs: 1000 });
    const starts: number[] = [];
    const task = async (): Promise<void> => {
      starts.push(Date.now());
    };
    const all: Promise<void>[] = [limiter.schedule(task)];
    await vi.advanceTimersByTimeAsync(900);
    for (let i = 0; i < 10; i++) all.push(limiter.schedule(task));
    await vi.advanceTimersByTimeAsync(5000);
    await Promise.all(all);
    // A fixed 1000 ms bucket would have let 5 more start at t=1000 (9 within [900, 1900)).
    expect(starts).toEqual([0, 900, 900, 900, 900, 1000, 1900, 1900, 1900, 1900, 2000]);
    expect(maxInAnyWindow(starts, 1000)).toBe(5);
    expect(limiter.stats.started).toBe(11);
  });

  it('never exceeds the cap under a mixed load, with at most one timer armed', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const limiter = createRateLimiter({ requests: 3, perMs: 250, concurrency: 2 });
    const starts: number[] = [];
    let maxTimers = 0;
    const all: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      all.push(
        limiter.schedule(async () => {
          starts.push(Date.now());
          // Tasks of varying length keep the concurrency cap in play too.
          await new Promise<void>((r) => setTimeout(r, (i * 37) % 120));
        }),
      );
      if (i % 7 === 0) await vi.advanceTimersByTimeAsync(13 * i);
      maxTimers = Math.max(maxTimers, vi.getTimerCount());
    }
    while (starts.length < 40) {
      await vi.advanceTimersByTimeAsync(10);
      // The limiter's timer plus at most `concurrency` task timers.
      maxTimers = Math.max(maxTimers, vi.getTimerCount());
    }
    await Promise.all(all);
    expect(starts).toHaveLength(40);
    expect(maxInAnyWindow(starts, 250)).toBeLessThanOrEqual(3);
    expect(maxTimers).toBeLessThanOrEqual(3);
  });

  it('arms a single timer for a long queue', async () => {
    vi.useFakeTimers({ now: 0 });
    const limiter = createRateLimiter({ requests: 1, perMs: 1000 });
    const done: Promise<number>[] = [];
    for (let i = 0; i < 50; i++) done.push(limiter.schedule(async () => i));
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(49_000);
    expect(await Promise.all(done)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(vi.getTimerCount()).toBe(0);
    expect(limiter.stats.waitedMs).toBe(Array.from({ length: 50 }, (_, i) => i * 1000).reduce((a, b) => a + b, 0));
  });

  it('pauses: pauseFor extends, never shortens, and notifies listeners', async () => {
    vi.useFakeTimers({ now: 10_000 });
    const limiter = createRateLimiter();
    const notified: number[] = [];
    const unsubscribe = limiter.onPause((until) => notified.push(until));
    limiter.pauseFor(500);
    limiter.pauseFor(100); // shorter: ignored
    const starts: number[] = [];
    const p = limiter.schedule(async () => {
      starts.push(Date.now());
    });
    await vi.advanceTimersByTimeAsync(200);
    limiter.pauseFor(1000); // extends to 11_200
    await vi.advanceTimersByTimeAsync(2000);
    await p;
    expect(notified).toEqual([10_500, 11_200]);
    expect(starts).toEqual([11_200]);
    expect(limiter.stats.pauses).toBe(2);
    unsubscribe();
    limiter.pauseFor(5000);
    expect(notified).toHaveLength(2);
  });

  it('observe: pauses until reset when the budget is spent, adopts a smaller limit', async () => {
    vi.useFakeTimers({ now: 0 });
    const limiter = createRateLimiter({ requests: 10, perMs: 1000 });
    const notified: number[] = [];
    limiter.onPause((until) => notified.push(until));
    limiter.observe({ remaining: 0, limit: 2, resetInMs: 300 });
    expect(notified).toEqual([300]);
    const starts: number[] = [];
    const all = Array.from({ length: 5 }, () =>
      limiter.schedule(async () => {
        starts.push(Date.now());
      }),
    );
    await vi.advanceTimersByTimeAsync(5000);
    await Promise.all(all);
    expect(starts).toEqual([300, 300, 1300, 1300, 2300]);
    // A limit above the policy is never adopted.
    limiter.observe({ limit: 50, remaining: 49 });
    const more: number[] = [];
    const next = Array.from({ length: 12 }, () =>
      limiter.schedule(async () => {
        more.push(Date.now());
      }),
    );
    await vi.advanceTimersByTimeAsync(5000);
    await Promise.all(next);
    expect(maxInAnyWindow(more, 1000)).toBe(10);
  });

  it('aborting the only waiter disarms the timer', async () => {
    vi.useFakeTimers({ now: 0 });
    const limiter = createRateLimiter();
    limiter.pauseFor(60_000);
    const controller = new AbortController();
    const waiting = limiter.schedule(async () => 'ran', controller.signal);
    expect(vi.getTimerCount()).toBe(1);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(vi.getTimerCount()).toBe(0);
    expect(limiter.stats.started).toBe(0);
  });

  it('no policy: runs tasks at once and still honours pauses', async () => {
    vi.useFakeTimers({ now: 0 });
    const limiter = createRateLimiter();
    expect(await limiter.schedule(async () => 42)).toBe(42);
    await expect(limiter.schedule(async () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    await expect(
      limiter.schedule(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(vi.getTimerCount()).toBe(0);
    limiter.observe({ remaining: 0 }); // no reset hint: one default window (1000 ms)
    const starts: number[] = [];
    const p = limiter.schedule(async () => {
      starts.push(Date.now());
    });
    await vi.advanceTimersByTimeAsync(1000);
    await p;
    expect(starts).toEqual([1000]);
    expect(limiter.stats.started).toBe(4);
  });
});

describe('createRateLimiter (real time)', () => {
  it('caps concurrency and serves in FIFO order', async () => {
    const limiter = createRateLimiter({ concurrency: 2 });
    let inFlight = 0;
    let maxInFlight = 0;
    const order: number[] = [];
    const gates = Array.from({ length: 12 }, () => deferred());
    const all = gates.map((gate, i) =>
      limiter.schedule(async () => {
        order.push(i);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await gate.promise;
        inFlight--;
        return i;
      }),
    );
    // Release in reverse order of arrival where possible: completions free slots in any order,
    // but starts must still follow arrival order.
    for (let i = gates.length - 1; i >= 0; i--) {
      await new Promise((r) => setImmediate(r));
      gates[i]?.resolve();
    }
    expect(await Promise.all(all)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(maxInFlight).toBe(2);
    expect(order).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('keeps the sliding window on the real clock', async () => {
    const perMs = 150;
    const limiter = createRateLimiter({ requests: 3, perMs });
    const starts: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, () =>
        limiter.schedule(async () => {
          starts.push(Date.now());
        }),
      ),
    );
    // Tasks are started synchronously after the limiter reads the clock, so a recorded time
    // can only trail the limiter's by the millisecond tick in between.
    expect(maxInAnyWindow(starts, perMs - 1)).toBeLessThanOrEqual(3);
  });

  it('rejects a waiting task when its signal aborts, and the queue moves on', async () => {
    const limiter = createRateLimiter({ concurrency: 1 });
    const gate = deferred();
    const ran: string[] = [];
    const first = limiter.schedule(async () => {
      ran.push('first');
      await gate.promise;
    });
    const controller = new AbortController();
    const second = limiter.schedule(async () => {
      ran.push('second');
    }, controller.signal);
    const third = limiter.schedule(async () => {
      ran.push('third');
    });
    const reason = new TributaryError('transient', { userMessage: 'stopping' });
    controller.abort(reason);
    await expect(second).rejects.toBe(reason);
    gate.resolve();
    await first;
    await third;
    expect(ran).toEqual(['first', 'third']);

    const already = new AbortController();
    already.abort('gone');
    await expect(limiter.schedule(async () => ran.push('never'), already.signal)).rejects.toBe('gone');
    expect(ran).toEqual(['first', 'third']);
  });

  it('rejects invalid policies', () => {
    expect(() => createRateLimiter({ requests: 0 })).toThrow(TributaryError);
    expect(() => createRateLimiter({ concurrency: 1.5 })).toThrow(TributaryError);
    expect(() => createRateLimiter({ requests: 1, perMs: 0 })).toThrow(TributaryError);
  });
});
