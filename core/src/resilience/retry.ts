import { TributaryError, toTributaryError } from '../errors.js';
import type { RetryPolicy } from './policy.js';
import type { RateLimiter } from './types.js';

export const DEFAULT_RETRY_POLICY: Readonly<Required<RetryPolicy>> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 30_000,
});

export interface RetryOptions extends RetryPolicy {
  /** Aborts the wait between attempts (and stops retrying); rejects with its reason. */
  signal?: AbortSignal;
  /** Paused for every stream when an attempt fails with `rate_limited`. */
  limiter?: RateLimiter;
  /** Told about each retry before its wait: the error, the attempt that failed, the wait. */
  onRetry?: (error: TributaryError, attempt: number, delayMs: number) => void;
  /** Source of jitter in [0, 1); `Math.random` by default. */
  random?: () => number;
  /**
   * Extra veto on top of `error.retryable` (e.g. the reverse-ETL runner does not retry an
   * open circuit). Only consulted for retryable errors.
   */
  shouldRetry?: (error: TributaryError, attempt: number) => boolean;
}

/** Full-jitter exponential backoff for the wait after `attempt` (1-based) failed. */
export function backoffDelay(attempt: number, policy: RetryPolicy = {}, random: () => number = Math.random): number {
  const base = policy.baseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs;
  const max = policy.maxDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs;
  const ceiling = Math.min(max, base * 2 ** (attempt - 1));
  return Math.max(0, Math.floor(random() * ceiling));
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function gaveUp(error: TributaryError, attempts: number): TributaryError {
  const note = `gave up after ${attempts} attempts`;
  return new TributaryError(error.kind, {
    userMessage: error.userMessage,
    internalMessage: error.internalMessage ? `${error.internalMessage} (${note})` : note,
    cause: error,
    ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
    ...(error.stream ? { stream: error.stream } : {}),
  });
}

/**
 * Runs `task` until it succeeds, retrying `transient` and `rate_limited` TributaryErrors
 * (anything else thrown is converted with `toTributaryError`; non-retryable errors are
 * rethrown at once). The wait after attempt n is `random() * min(maxDelayMs, baseDelayMs *
 * 2^(n-1))`, raised to the error's `retryAfterMs` when it carries one (even above
 * `maxDelayMs`). A `rate_limited` error also pauses `limiter` so that every stream of the
 * connector waits, not just this call — also after the last attempt. After the last
 * attempt the last error is rethrown as a TributaryError of the same kind whose
 * `internalMessage` notes the attempt count and whose `cause` is the original. If `signal`
 * aborts, rejects with its reason.
 */
export async function withRetry<T>(task: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new TributaryError('config', { userMessage: `Retry maxAttempts must be a positive integer, got ${String(maxAttempts)}` });
  }
  const { signal, limiter, onRetry, shouldRetry } = options;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw signal.reason;
    try {
      return await task(attempt);
    } catch (thrown) {
      if (signal?.aborted) throw signal.reason;
      const error = toTributaryError(thrown);
      const backoff = backoffDelay(attempt, options, random);
      // The peer's "slow down" holds for every request of the connector, so the limiter is
      // paused even when this call gives up (last attempt, or a veto): otherwise the next
      // request — another stream's, another batch's, the runtime's replay of this one — would
      // go out at once, inside the window the peer asked to be left alone.
      if (error.kind === 'rate_limited') limiter?.pauseFor(error.retryAfterMs ?? backoff);
      if (!error.retryable || (shouldRetry && !shouldRetry(error, attempt))) throw error;
      if (attempt >= maxAttempts) throw attempt > 1 ? gaveUp(error, attempt) : error;
      const delay = error.retryAfterMs !== undefined && error.retryAfterMs > backoff ? Math.ceil(error.retryAfterMs) : backoff;
      onRetry?.(error, attempt, delay);
      await sleep(delay, signal);
    }
  }
}
