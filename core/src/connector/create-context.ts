import { silentLogger, type Logger } from '../logging/logger.js';
import type { RateLimitPolicy, RetryPolicy } from '../resilience/policy.js';
import { createRateLimiter } from '../resilience/rate-limiter.js';
import { withRetry } from '../resilience/retry.js';
import type { RateLimiter } from '../resilience/types.js';
import { createMetricsRegistry, type Metrics } from '../metrics/metrics.js';
import type { ConnectorContext } from './context.js';

export interface ConnectorContextOptions {
  logger?: Logger;
  /** Defaults to a signal that never aborts. */
  signal?: AbortSignal;
  /** Builds the limiter when `limiter` is not given (no policy = no caps, pauses only). */
  rateLimit?: RateLimitPolicy;
  /** Default retry policy of `call`; a policy passed to `call` overrides it field by field. */
  retry?: RetryPolicy;
  /** Share an existing limiter (e.g. one per connector instance across commands). */
  limiter?: RateLimiter;
  /** Where the connector's gauges go (default: a registry of its own, read by nobody). */
  metrics?: Metrics;
  /** The sync's connection name (see `ConnectorContext.connection`). */
  connection?: string;
}

function mergePolicy(defaults: RetryPolicy, override: RetryPolicy | undefined): RetryPolicy {
  const merged: RetryPolicy = { ...defaults };
  if (override?.maxAttempts !== undefined) merged.maxAttempts = override.maxAttempts;
  if (override?.baseDelayMs !== undefined) merged.baseDelayMs = override.baseDelayMs;
  if (override?.maxDelayMs !== undefined) merged.maxDelayMs = override.maxDelayMs;
  return merged;
}

/**
 * The context the runtime hands a connector. `call(request)` = retry loop around
 * `limiter.schedule(request)`: every attempt waits its turn under the rate limit, and a
 * `rate_limited` failure pauses the shared limiter for every stream.
 */
export function createConnectorContext(options: ConnectorContextOptions = {}): ConnectorContext {
  const logger = options.logger ?? silentLogger;
  const signal = options.signal ?? new AbortController().signal;
  const limiter = options.limiter ?? createRateLimiter(options.rateLimit ?? {});
  const defaults = options.retry ?? {};

  return {
    logger,
    ...(options.connection !== undefined ? { connection: options.connection } : {}),
    signal,
    limiter,
    metrics: options.metrics ?? createMetricsRegistry(),
    call<T>(request: (attempt: number) => Promise<T>, policy?: RetryPolicy): Promise<T> {
      return withRetry((attempt) => limiter.schedule(() => request(attempt), signal), {
        ...mergePolicy(defaults, policy),
        signal,
        limiter,
        onRetry: (error, attempt, delayMs) => {
          logger.warn(`attempt ${attempt} failed (${error.kind}): ${error.userMessage}; retrying in ${delayMs} ms`, {
            kind: error.kind,
            attempt,
            delayMs,
          });
        },
      });
    },
  };
}
