/**
 * Bulk API 2.0 results pages are requested as text (CSV). Their error answers are still JSON
 * arrays `[{ errorCode, message }]`: read as text, the errorCode was lost (ERROR_HTTP_403), and
 * a 403 REQUEST_LIMIT_EXCEEDED — the concurrent long-running requests limit, to be retried, or
 * the daily limit, a clean stop — failed the sync as a missing permission (`auth`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TributaryError, type RecordData } from '@tributary/core';
import { startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, readAll, sync } from './helpers.js';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function org(): Promise<SalesforceSimulator> {
  const sim = await startSalesforceSimulator({ records: { Account: 30 }, bulkPageSize: 10 });
  running.push(sim);
  return sim;
}

const ids = (records: RecordData[]): string[] => records.map((r) => String(r.Id));

/** The next request after the first results page answers 403 REQUEST_LIMIT_EXCEEDED with `message`. */
function refuseAfterFirstResultsPage(sim: SalesforceSimulator, message: string): void {
  let pages = 0;
  sim.onRequest((r) => {
    if (r.path.endsWith('/results') && r.status === 200 && ++pages === 1) sim.failNext(1, 403, 'REQUEST_LIMIT_EXCEEDED', message);
  });
}

describe('source: error answers to Bulk results pages keep their errorCode', () => {
  it('the concurrent-requests limit on a results page is retried: every row once', async () => {
    const sim = await org();
    const config = { ...credentials(sim), bulk: 'always', bulk_poll_interval_ms: 0, hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const expected = ids((await readAll(config, catalog)).records);
    refuseAfterFirstResultsPage(sim, 'ConcurrentRequests (Concurrent API Requests) Limit exceeded.');
    const read: Awaited<ReturnType<typeof readAll>> | TributaryError = await readAll(config, catalog).catch((error: unknown) => {
      if (error instanceof TributaryError) return error;
      throw error;
    });
    expect(read instanceof TributaryError ? `${read.kind}: ${read.userMessage}` : ids(read.records)).toEqual(expected);
    expect(sim.stats.byStatus[403]).toBe(1);
  });

  it('the daily limit on a results page stops the sync as the daily limit, not as a missing permission', async () => {
    const sim = await org();
    const config = { ...credentials(sim), bulk: 'always', bulk_poll_interval_ms: 0, hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    refuseAfterFirstResultsPage(sim, 'TotalRequests Limit exceeded.');
    const result = await sync(config, catalog, memoryTarget(), memoryStateStore());
    expect(result.outcome).toBe('failed');
    expect(`${result.error?.kind}: ${result.error?.userMessage}`).toMatch(/^rate_limited: .*daily API request limit/);
  });
});
