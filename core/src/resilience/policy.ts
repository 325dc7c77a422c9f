/**
 * Rate-limit and retry policies a connector declares. The runtime builds one limiter per
 * connector instance from the policy, and every stream of that instance shares it.
 */
export interface RateLimitPolicy {
  /** Requests allowed per `perMs` window (sliding). Omit for no rate cap. */
  requests?: number;
  /** Window length in milliseconds for `requests` (default 1000). */
  perMs?: number;
  /** Requests in flight at once (default unlimited). */
  concurrency?: number;
}

export interface RetryPolicy {
  /** Attempts including the first (default 5). */
  maxAttempts?: number;
  /** First backoff in ms (default 200). Doubles each attempt, with full jitter. */
  baseDelayMs?: number;
  /** Cap for one backoff in ms (default 30 000). A Retry-After longer than this is still honoured. */
  maxDelayMs?: number;
}
