import { TributaryError, toTributaryError } from '../errors.js';
import type { Clock } from './rate-limiter.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive counted failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one trial call is let through. */
  resetAfterMs: number;
  clock?: Clock;
}

export interface CircuitBreaker {
  /**
   * Runs `task` unless the circuit is open. While open (or while the half-open trial is
   * in flight) rejects at once, without calling `task`, with a `transient` TributaryError
   * whose `retryAfterMs` is the time left until the next trial.
   */
  run<T>(task: () => Promise<T>): Promise<T>;
  readonly state: CircuitState;
  /** Told about every transition; returns an unsubscribe function. */
  onStateChange(listener: (state: CircuitState, previous: CircuitState) => void): () => void;
}

const circuitOpenErrors = new WeakSet<TributaryError>();

/** True for the rejections of an open circuit (no request reached the peer). */
export function isCircuitOpenError(error: unknown): boolean {
  return error instanceof TributaryError && circuitOpenErrors.has(error);
}

/**
 * Failures that say the peer is unhealthy. `transient` and `fatal` count; `rate_limited`,
 * `skippable`, `config` and `auth` are answers from a peer that works, so they count as
 * evidence of health (they reset the streak and close a half-open circuit). A 429 is the
 * peer pacing its clients, which the limiter and the retries already obey (Retry-After):
 * counted, an ordinary throttle storm opened the circuit and failed every record behind it
 * although each request still had attempts left and the peer was up.
 */
function countsAsFailure(error: TributaryError): boolean {
  return error.kind === 'transient' || error.kind === 'fatal';
}

/**
 * Closed: calls pass; `failureThreshold` consecutive counted failures open the circuit.
 * Open: calls are rejected at once for `resetAfterMs`. Then the next call is the single
 * trial (half-open): its success closes the circuit, a counted failure reopens it for
 * another `resetAfterMs`. Answers of calls that started before the circuit last opened
 * change nothing: only the trial decides.
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const { failureThreshold, resetAfterMs } = options;
  if (!Number.isInteger(failureThreshold) || failureThreshold < 1) {
    throw new TributaryError('config', { userMessage: `Circuit breaker failureThreshold must be a positive integer, got ${String(failureThreshold)}` });
  }
  if (!(resetAfterMs >= 0)) {
    throw new TributaryError('config', { userMessage: `Circuit breaker resetAfterMs must be >= 0, got ${String(resetAfterMs)}` });
  }
  const clock = options.clock ?? { now: () => Date.now() };
  let state: CircuitState = 'closed';
  let consecutiveFailures = 0;
  let retryAt = 0;
  /**
   * How many times the circuit opened. A call remembers the value it started under; when
   * the circuit opened since, its answer is ignored: it says how the peer was before the
   * circuit opened, it is not the trial. A late success would otherwise close the circuit
   * during its reset time, and a late failure reopen it while the trial is still out.
   */
  let openings = 0;
  const listeners = new Set<(state: CircuitState, previous: CircuitState) => void>();

  function transition(next: CircuitState): void {
    if (next === state) return;
    const previous = state;
    state = next;
    for (const listener of [...listeners]) {
      try {
        listener(next, previous);
      } catch {
        // Observers must not change the breaker's behaviour.
      }
    }
  }

  /** `until`: when a call may be let through again (for a half-open trial: if it fails). */
  function rejectOpen<T>(now: number, until: number): Promise<T> {
    const error = new TributaryError('transient', {
      userMessage: `Circuit open: ${consecutiveFailures} consecutive failures; retrying after ${new Date(until).toISOString()}`,
      retryAfterMs: Math.max(0, until - now),
    });
    circuitOpenErrors.add(error);
    return Promise.reject(error);
  }

  function onSuccess(): void {
    consecutiveFailures = 0;
    transition('closed');
  }

  function onFailure(thrown: unknown): void {
    if (!countsAsFailure(toTributaryError(thrown))) {
      onSuccess();
      return;
    }
    consecutiveFailures++;
    if (state === 'half-open' || consecutiveFailures >= failureThreshold) {
      retryAt = clock.now() + resetAfterMs;
      openings++;
      transition('open');
    }
  }

  async function run<T>(task: () => Promise<T>): Promise<T> {
    const now = clock.now();
    // One trial at a time: while it is in flight, others are turned away.
    if (state === 'half-open') return rejectOpen(now, now + resetAfterMs);
    if (state === 'open') {
      if (now < retryAt) return rejectOpen(now, retryAt);
      transition('half-open');
    }
    const startedUnder = openings;
    try {
      const value = await task();
      if (startedUnder === openings) onSuccess();
      return value;
    } catch (error) {
      if (startedUnder === openings) onFailure(error);
      throw error;
    }
  }

  return {
    run,
    get state(): CircuitState {
      return state;
    },
    onStateChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
