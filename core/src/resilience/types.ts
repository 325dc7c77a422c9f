/** Shared by every stream of one connector instance. Implementations: `rate-limiter.ts`. */
export interface RateLimiter {
  /**
   * Runs `task` once both the request rate and the concurrency cap allow it, holding a
   * concurrency slot until it settles. Callers are served in FIFO order. Rejects with the
   * signal's reason if `signal` aborts while waiting.
   */
  schedule<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /**
   * The peer said to stop (429, Retry-After, a reset header): no task starts for `ms`.
   * Listeners registered with `onPause` are told, so the runtime can report RATE_LIMITED.
   */
  pauseFor(ms: number): void;
  /**
   * Adapts to the peer's own accounting from response headers: when `remaining` reaches
   * zero before `resetInMs`, the limiter pauses until the reset instead of drawing a 429.
   */
  observe(budget: { remaining?: number; limit?: number; resetInMs?: number }): void;
  /** Called whenever the limiter starts a pause; returns an unsubscribe function. */
  onPause(listener: (untilEpochMs: number) => void): () => void;
  readonly stats: RateLimiterStats;
}

export interface RateLimiterStats {
  started: number;
  /** Total time tasks spent waiting for a slot, ms. */
  waitedMs: number;
  pauses: number;
}
