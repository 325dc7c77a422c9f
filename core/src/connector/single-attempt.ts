import type { ConnectorContext } from './context.js';

/**
 * The context a writer session's client should use. The runtime already runs every `write`
 * under the shared rate limiter, retries and the circuit breaker; a client that went through
 * `ctx.call` again would count each request twice against the budget, multiply the retries
 * and — with a concurrency cap — wait for the slot its own caller holds. This context's
 * `call` makes exactly one attempt; everything else (limiter, logger, signal, metrics) is the
 * session's own, so the client still feeds the API's rate-limit headers to the shared limiter.
 */
export function singleAttempt(ctx: ConnectorContext): ConnectorContext {
  return { ...ctx, call: (request) => request(1) };
}
