import type { Logger } from '../logging/logger.js';
import type { RetryPolicy } from '../resilience/policy.js';
import type { RateLimiter } from '../resilience/types.js';
import type { Metrics } from '../metrics/metrics.js';

/**
 * What the runtime hands every connector call. One context per connector instance per
 * command; its limiter is shared by all streams of that instance.
 */
export interface ConnectorContext {
  readonly logger: Logger;
  /**
   * The sync's connection name (`runSync`'s `connection`; `tributary sync`'s `connection:`),
   * for a destination whose bookkeeping is per connection (the event lake's replay windows,
   * when two connections write one stream). Undefined outside a sync.
   */
  readonly connection?: string;
  /**
   * Aborted when the sync is asked to stop (SIGINT/SIGTERM in the CLI, the `signal` given to
   * `runSync`). The runtime then stops iterating the source by itself at the next message
   * (via `return()`), flushes, commits and ends `interrupted`. Long waits should pass it on
   * (`call`, `createHttpClient` and the limiter do): a source blocked in one sees it reject
   * with the signal's reason and should then return rather than rethrow, because a read
   * that throws ends the sync `failed`. A destination's context is never aborted during a
   * sync: it must be able to flush and commit after the source stopped.
   */
  readonly signal: AbortSignal;
  /**
   * The connector's declared rate limit: one limiter per connector instance per sync (the
   * source and the destination each have their own), shared by all its streams.
   * `createHttpClient` feeds it the peer's rate-limit headers.
   */
  readonly limiter: RateLimiter;
  /**
   * Runs `request` under the rate limit, retrying `transient` and `rate_limited`
   * TributaryErrors with exponential backoff and full jitter, honouring `retryAfterMs`.
   * A `rate_limited` error also pauses the shared limiter for every stream.
   * Connectors retry through this (or `createHttpClient`), never with loops of their own.
   * Not inside a writer session's `write`, which the runtime already runs under the limiter,
   * retries and a circuit breaker (see `WriterSession`).
   */
  call<T>(request: (attempt: number) => Promise<T>, policy?: RetryPolicy): Promise<T>;
  /**
   * Gauges for operators (e.g. a replication slot's lag), exported by the runtime: see
   * `tributary sync --metrics-file`. Shared by the source and the destination of a sync.
   */
  readonly metrics: Metrics;
}
