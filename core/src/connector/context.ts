import type { Logger } from '../logging/logger.js';
import type { RetryPolicy } from '../resilience/policy.js';
import type { RateLimiter } from '../resilience/types.js';

/**
 * What the runtime hands every connector call. One context per connector instance per
 * command; its limiter is shared by all streams of that instance.
 */
export interface ConnectorContext {
  readonly logger: Logger;
  /**
   * Aborted when the sync is stopping (SIGINT/SIGTERM, a fatal error elsewhere).
   * Sources should stop at the next checkpoint boundary; long waits should pass it on.
   */
  readonly signal: AbortSignal;
  /** The connector's declared rate limit, shared across streams. */
  readonly limiter: RateLimiter;
  /**
   * Runs `request` under the rate limit, retrying `transient` and `rate_limited`
   * TributaryErrors with exponential backoff and full jitter, honouring `retryAfterMs`.
   * A `rate_limited` error also pauses the shared limiter for every stream.
   */
  call<T>(request: (attempt: number) => Promise<T>, policy?: RetryPolicy): Promise<T>;
}
