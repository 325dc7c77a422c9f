/**
 * The connector-wide rate limiter: a true sliding-window request cap, a concurrency cap,
 * FIFO service, pauses the peer asks for, and adaptation to the peer's rate-limit headers.
 *
 * Written here rather than taken from `bottleneck` or `p-queue` on purpose: p-queue's
 * `interval` is a fixed window, so a burst at the end of one window and another at the start
 * of the next put 2x `requests` on the wire within `perMs`; and neither library reports
 * pauses, which the runtime needs to emit RATE_LIMITED stream statuses.
 *
 * Guarantees:
 * - Never more than `requests` task starts in any half-open interval of `perMs` ms
 *   (measured on `clock`). The start times of the last `requests` tasks are kept in a ring
 *   buffer, so the check is O(1) and there are no bucket edges.
 * - Never more than `concurrency` tasks in flight; a slot is held until the task settles.
 * - Strict FIFO: a waiting task never starts before one queued ahead of it.
 * - No busy polling: at most one timer is armed, for the earliest instant the head of the
 *   queue could start; completions wake the queue directly.
 * - With no policy (the default for most connectors) `schedule` is a pause check and a
 *   direct call of the task.
 */
import { TributaryError } from '../errors.js';
import type { RateLimitPolicy } from './policy.js';
import type { RateLimiter, RateLimiterStats } from './types.js';

export interface Clock {
  /** Milliseconds since the epoch (pause listeners receive epoch ms computed from it). */
  now(): number;
}

const systemClock: Clock = { now: () => Date.now() };

interface Waiter {
  run: () => void;
  reject: (reason: unknown) => void;
  enqueuedAt: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

function positiveInteger(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1) {
    throw new TributaryError('config', { userMessage: `Rate limit ${name} must be a positive integer, got ${String(value)}` });
  }
  return value;
}

function callTask<T>(task: () => Promise<T>): Promise<T> {
  try {
    return task();
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Builds a limiter from a connector's declared policy. `clock` supplies the time used for
 * windows and pauses (timers still use `setTimeout`; tests fake both with vitest timers).
 */
export function createRateLimiter(policy: RateLimitPolicy = {}, clock: Clock = systemClock): RateLimiter {
  const capacity = positiveInteger(policy.requests, 'requests');
  const perMs = policy.perMs ?? 1000;
  if (!(perMs > 0) || !Number.isFinite(perMs)) {
    throw new TributaryError('config', { userMessage: `Rate limit perMs must be a positive number, got ${String(policy.perMs)}` });
  }
  const concurrency = positiveInteger(policy.concurrency, 'concurrency');

  /** Current request cap: the policy's, lowered to what the peer reports (`observe`). */
  let requestCap = capacity;
  /** Ring buffer of the last `capacity` start times; `startCount` counts all starts. */
  const starts = capacity === undefined ? undefined : new Float64Array(capacity);
  let startCount = 0;

  let inFlight = 0;
  let pausedUntil = 0;
  const queue: Waiter[] = [];
  let queueHead = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerAt = 0;
  const pauseListeners = new Set<(untilEpochMs: number) => void>();
  const stats: RateLimiterStats = { started: 0, waitedMs: 0, pauses: 0 };

  const queued = (): number => queue.length - queueHead;

  /** Earliest time a task may start by the request cap (`now` when it may start now). */
  function rateReadyAt(now: number): number {
    if (starts === undefined || requestCap === undefined || startCount < requestCap) return now;
    // The requestCap-th most recent start must have left the window (t + perMs <= now).
    const index = (startCount - requestCap) % starts.length;
    const readyAt = (starts[index] ?? 0) + perMs;
    return readyAt > now ? readyAt : now;
  }

  function recordStart(now: number): void {
    if (starts !== undefined) {
      starts[startCount % starts.length] = now;
    }
    startCount++;
    stats.started++;
  }

  function release(): void {
    inFlight--;
    if (queued() > 0) pump();
  }

  function runHeld<T>(task: () => Promise<T>): Promise<T> {
    inFlight++;
    const promise = callTask(task);
    // The derived promise always fulfils, so it never reports an unhandled rejection.
    promise.then(release, release);
    return promise;
  }

  function arm(at: number, now: number): void {
    if (timer !== undefined) {
      if (timerAt === at) return;
      clearTimeout(timer);
    }
    timerAt = at;
    timer = setTimeout(onTimer, Math.max(1, Math.ceil(at - now)));
  }

  function disarm(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }

  function onTimer(): void {
    timer = undefined;
    pump();
  }

  /** Starts queued tasks while every cap allows; arms one timer when time is the obstacle. */
  function pump(): void {
    while (queued() > 0) {
      if (concurrency !== undefined && inFlight >= concurrency) {
        // A completion calls pump again; no timer needed.
        disarm();
        return;
      }
      const now = clock.now();
      const readyAt = Math.max(pausedUntil, rateReadyAt(now));
      if (readyAt > now) {
        arm(readyAt, now);
        return;
      }
      const waiter = queue[queueHead] as Waiter;
      queue[queueHead] = undefined as unknown as Waiter;
      queueHead++;
      if (queueHead > 1024 && queueHead * 2 > queue.length) {
        queue.splice(0, queueHead);
        queueHead = 0;
      }
      if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
      stats.waitedMs += now - waiter.enqueuedAt;
      recordStart(now);
      waiter.run();
    }
    disarm();
  }

  function schedule<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (queued() === 0 && (concurrency === undefined || inFlight < concurrency)) {
      // Fast path: nobody waiting ahead of us; start now if the clock allows.
      const now = pausedUntil === 0 && starts === undefined ? 0 : clock.now();
      if (now >= pausedUntil && rateReadyAt(now) <= now) {
        recordStart(now);
        return concurrency === undefined ? callTask(task) : runHeld(task);
      }
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        run: () => {
          const promise = concurrency === undefined ? callTask(task) : runHeld(task);
          promise.then(resolve, reject);
        },
        reject,
        enqueuedAt: clock.now(),
        signal,
        onAbort: undefined,
      };
      if (signal) {
        waiter.onAbort = () => {
          const index = queue.indexOf(waiter, queueHead);
          if (index < 0) return;
          queue.splice(index, 1);
          reject(signal.reason);
          // The head may have changed (or the queue emptied): re-evaluate the timer.
          pump();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      queue.push(waiter);
      if (queued() === 1) pump();
    });
  }

  function pauseFor(ms: number): void {
    if (!(ms > 0)) return;
    const until = clock.now() + Math.ceil(ms);
    if (until <= pausedUntil) return; // a pause only ever grows
    pausedUntil = until;
    stats.pauses++;
    for (const listener of [...pauseListeners]) {
      try {
        listener(until);
      } catch {
        // A listener's failure must not break the limiter every stream depends on.
      }
    }
    if (queued() > 0) pump();
  }

  function observe(budget: { remaining?: number; limit?: number; resetInMs?: number }): void {
    const { remaining, limit, resetInMs } = budget;
    if (capacity !== undefined && limit !== undefined && Number.isFinite(limit) && limit >= 1) {
      // The peer's current limit, never above what the connector declared. The window stays
      // the policy's: the headers carry no reliable window length.
      const next = Math.min(capacity, Math.floor(limit));
      if (next !== requestCap) {
        requestCap = next;
        if (queued() > 0) pump();
      }
    }
    if (remaining !== undefined && Number.isFinite(remaining) && remaining <= 0) {
      // Without a reset hint, one policy window is the best guess of when budget returns.
      const wait = resetInMs !== undefined && Number.isFinite(resetInMs) ? resetInMs : perMs;
      pauseFor(wait);
    }
  }

  return {
    schedule,
    pauseFor,
    observe,
    onPause(listener) {
      pauseListeners.add(listener);
      return () => {
        pauseListeners.delete(listener);
      };
    },
    get stats(): RateLimiterStats {
      return { ...stats };
    },
  };
}
