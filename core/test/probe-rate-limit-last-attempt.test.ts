import { describe, expect, it } from 'vitest';
import { createConnectorContext, defineWriter, runWriter, TributaryError, withRetry, type WriterSession } from '@tributary/core';

/**
 * A `rate_limited` failure pauses the shared limiter for its `retryAfterMs` — also when it
 * is the last attempt the retry policy allows. The peer's "wait" holds for every request of
 * the connector, not only for a retry of the one that was refused: without the pause, the
 * next request (another batch, another stream, the runtime's replay of the batch) went out
 * at once, into the window the peer had asked to be left alone.
 */

const RETRY_AFTER_MS = 300;

describe('a 429 on the last attempt still pauses the shared limiter', () => {
  it('withRetry pauses the limiter when a rate_limited error ends the retries', async () => {
    const ctx = createConnectorContext();
    const pauses: number[] = [];
    ctx.limiter.onPause((until) => pauses.push(until));
    const refused = new TributaryError('rate_limited', { userMessage: '429', retryAfterMs: RETRY_AFTER_MS });
    const before = Date.now();
    await expect(withRetry(() => Promise.reject(refused), { maxAttempts: 1, limiter: ctx.limiter })).rejects.toBe(refused);
    expect(pauses).toHaveLength(1);
    expect(pauses[0]!).toBeGreaterThanOrEqual(before + RETRY_AFTER_MS);
  });

  it('runWriter sends no request during the Retry-After of a 429 that used up the attempts', async () => {
    /** When the peer accepts requests again (epoch ms); a request before it is a violation. */
    let quietUntil = 0;
    const violations: number[] = [];
    const sentAt: number[] = [];
    let calls = 0;
    const session: WriterSession = {
      async write(request) {
        const now = Date.now();
        sentAt.push(now);
        if (now < quietUntil) violations.push(quietUntil - now);
        if (calls++ === 0) {
          quietUntil = now + RETRY_AFTER_MS;
          throw new TributaryError('rate_limited', { userMessage: 'HTTP 429', retryAfterMs: RETRY_AFTER_MS });
        }
        return request.records.map((r) => ({ idempotencyKey: r.idempotencyKey, key: r.key, status: 'created' as const }));
      },
      async close() {},
    };
    const writer = defineWriter({
      name: 'one-shot',
      spec: { connectionSpecification: { type: 'object', properties: {} } },
      rateLimit: { concurrency: 1 },
      // One attempt per request: the peer's Retry-After must still hold for the next one.
      retry: { maxAttempts: 1 },
      maxBatchSize: 1,
      async check() {},
      async discover() {
        return [{ name: 'items', fields: [], idProperties: ['id'], modes: ['upsert'] }];
      },
      async open() {
        return session;
      },
    });
    const summary = await runWriter({ writer, config: {}, object: 'items', mode: 'upsert', idProperty: 'id', records: [{ id: 'a' }, { id: 'b' }] });
    expect(summary.counts.failed).toBe(1);
    expect(summary.counts.created).toBe(1);
    expect(sentAt).toHaveLength(2);
    expect(violations).toEqual([]);
  });
});
