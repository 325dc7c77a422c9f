/**
 * 403 REQUEST_LIMIT_EXCEEDED is two different limits. `TotalRequests Limit exceeded.` is the
 * org's daily budget: nothing works until it resets. `ConcurrentRequests (Concurrent API
 * Requests) Limit exceeded.` means the org already runs as many long-running requests as it
 * may (25 of 20 s or more in production orgs, "API Request Limits and Allocations"): new
 * requests are refused only until one of those ends. The second must be retried like a rate
 * limit, not end the sync or halt the reverse-ETL run as if the day's budget were spent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, runWriter, type RecordData } from '@tributary/core';
import { salesforceWriter, startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, readAll, sync } from './helpers.js';

const CONCURRENT_LIMIT_MESSAGE = 'ConcurrentRequests (Concurrent API Requests) Limit exceeded.';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function org(options: Parameters<typeof startSalesforceSimulator>[0] = {}): Promise<SalesforceSimulator> {
  const sim = await startSalesforceSimulator(options);
  running.push(sim);
  return sim;
}

const ids = (records: RecordData[]): string[] => records.map((r) => String(r.Id));

describe('403 REQUEST_LIMIT_EXCEEDED for concurrent long-running requests', () => {
  it('source: a page refused for concurrency is retried and the sync completes with every row once', async () => {
    const sim = await org({ records: { Account: 60 }, queryPageSize: 20 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const expected = ids((await readAll(config, catalog)).records);
    let pages = 0;
    sim.onRequest((r) => {
      if (r.path.includes('/query') && r.status === 200 && ++pages === 1) sim.failNext(2, 403, 'REQUEST_LIMIT_EXCEEDED', CONCURRENT_LIMIT_MESSAGE);
    });
    const warnings: string[] = [];
    const { records } = await readAll(config, catalog, undefined, warnings);
    expect(ids(records)).toEqual(expected);
    expect(sim.stats.byStatus[403]).toBe(2);
    expect(warnings.some((w) => /long-running requests/.test(w))).toBe(true);
  });

  it('source through the runtime: the sync completes, not failed as if the daily limit were reached', async () => {
    const sim = await org({ records: { Account: 60 }, queryPageSize: 20 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    let pages = 0;
    sim.onRequest((r) => {
      if (r.path.includes('/query') && r.status === 200 && ++pages === 2) sim.failNext(1, 403, 'REQUEST_LIMIT_EXCEEDED', CONCURRENT_LIMIT_MESSAGE);
    });
    const target = memoryTarget();
    const result = await sync(config, catalog, target, memoryStateStore());
    expect(result.error?.userMessage).toBeUndefined();
    expect(result.outcome).toBe('completed');
    expect(new Set(ids(target.received.get('Account')!)).size).toBe(60);
  });

  it('writer: a batch refused for concurrency is retried; the run is not halted and every record is written', async () => {
    const sim = await org();
    const config = parseConfig(salesforceWriter.spec.connectionSpecification, credentials(sim));
    const records = Array.from({ length: 450 }, (_, i) => ({ External_Id__c: `ext-${i}`, Name: `Account ${i}` }));
    let upserts = 0;
    sim.onRequest((r) => {
      if (r.method === 'PATCH' && r.status === 200 && ++upserts === 1) sim.failNext(1, 403, 'REQUEST_LIMIT_EXCEEDED', CONCURRENT_LIMIT_MESSAGE);
    });
    const summary = await runWriter({ writer: salesforceWriter, config, object: 'Account', mode: 'upsert', idProperty: 'External_Id__c', records });
    expect(summary.halted).toBeUndefined();
    expect(summary.counts).toMatchObject({ created: 450, failed: 0 });
    expect(sim.records('Account')).toHaveLength(450);
    expect(sim.stats.byStatus[403]).toBe(1);
  });

  it('the daily limit (TotalRequests) still stops at once', async () => {
    const sim = await org({ records: { Account: 10 } });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, max_api_usage: 1 };
    const catalog = await catalogOf(config, ['Account']);
    sim.setApiUsage(sim.apiUsage.limit);
    const result = await sync(config, catalog, memoryTarget(), memoryStateStore());
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toMatch(/daily API request limit/);
    expect(sim.stats.byStatus[403]).toBe(1);
  });
});
