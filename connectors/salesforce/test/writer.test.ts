import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, runWriter } from '@tributary/core';
import { salesforceWriter, startSalesforceSimulator, type SalesforceSimulator, type ServedRequest } from '../src/index.js';
import { credentials } from './helpers.js';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function orgWithLog(): Promise<{ sim: SalesforceSimulator; log: ServedRequest[] }> {
  const sim = await startSalesforceSimulator();
  running.push(sim);
  const log: ServedRequest[] = [];
  sim.onRequest((r) => log.push(r));
  return { sim, log };
}

const upserts = (log: ServedRequest[]) => log.filter((r) => r.method === 'PATCH' && r.path.includes('/composite/sobjects/'));

function accounts(n: number, name = 'Account'): Array<Record<string, unknown>> {
  return Array.from({ length: n }, (_, i) => ({ External_Id__c: `ext-${i}`, Name: `${name} ${i}`, NumberOfEmployees: i, Industry: 'Energy' }));
}

function write(sim: SalesforceSimulator, records: Array<Record<string, unknown>>, options: { dryRun?: boolean; config?: Record<string, unknown>; breaker?: { failureThreshold: number; resetAfterMs: number } } = {}) {
  return runWriter({
    writer: salesforceWriter,
    config: parseConfig(salesforceWriter.spec.connectionSpecification, { ...credentials(sim), ...(options.config ?? {}) }),
    object: 'Account',
    mode: 'upsert',
    idProperty: 'External_Id__c',
    records,
    ...(options.dryRun ? { dryRun: true } : {}),
    ...(options.breaker ? { breaker: options.breaker } : {}),
  });
}

describe('salesforce writer', () => {
  it('upserts through sObject collections, 200 per request, one result per record', async () => {
    const { sim, log } = await orgWithLog();
    const summary = await write(sim, [...accounts(450), { External_Id__c: 'too-long', Name: 'x'.repeat(300) }]);
    expect(summary.counts).toMatchObject({ created: 450, failed: 1 });
    expect(summary.results?.find((r) => r.key === 'too-long')).toMatchObject({ status: 'failed', retryable: false, reason: expect.stringMatching(/^STRING_TOO_LONG/) });
    expect(upserts(log).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(sim.records('Account')).toHaveLength(450);
    expect(new Set(summary.results?.map((r) => r.idempotencyKey)).size).toBe(451);
  });

  it('is idempotent: a replayed batch is all unchanged and sends no upsert; changed rows update', async () => {
    const { sim, log } = await orgWithLog();
    await write(sim, accounts(30));
    const before = upserts(log).length;
    const replay = await write(sim, accounts(30));
    expect(replay.counts).toMatchObject({ unchanged: 30, created: 0, updated: 0 });
    expect(upserts(log).length).toBe(before);
    const stamps = sim.records('Account').map((r) => r.SystemModstamp);
    const changed = accounts(30).map((r, i) => (i < 5 ? { ...r, NumberOfEmployees: 1000 + i } : r));
    const third = await write(sim, changed);
    expect(third.counts).toMatchObject({ updated: 5, unchanged: 25 });
    // Unchanged rows were not touched (no SystemModstamp bump, no trigger would fire).
    const after = sim.records('Account');
    expect(after.filter((r, i) => r.SystemModstamp !== stamps[i]).length).toBeLessThanOrEqual(5);
  });

  it('a key written twice in one run ends with its last value, in one request or in two concurrent ones', async () => {
    // The writer compares each record with the row queried before its upsert: two records of
    // one external id in a request, or in two requests in flight at once, must not be judged
    // against the same old row (the later one would come back `unchanged`, the older value stay).
    const { sim } = await orgWithLog();
    const name = (key: string) => sim.records('Account').find((r) => r.External_Id__c === key)?.Name;
    await write(sim, [{ External_Id__c: 'one', Name: 'A' }, { External_Id__c: 'two', Name: 'A' }]);

    const sameRequest = await write(sim, [{ External_Id__c: 'one', Name: 'B' }, { External_Id__c: 'one', Name: 'A' }]);
    expect(name('one')).toBe('A');
    expect(sameRequest.results!.map((r) => r.status)).toEqual(['updated', 'updated']);

    // 201 records: two requests of the writer's concurrency 2, the key at both ends.
    const twoRequests = await write(sim, [{ External_Id__c: 'two', Name: 'B' }, ...accounts(199), { External_Id__c: 'two', Name: 'A' }]);
    expect(name('two')).toBe('A');
    expect(twoRequests.counts).toMatchObject({ created: 199, updated: 2, unchanged: 0, failed: 0 });
  });

  it('a dry run reports creates, updates and unchanged and changes nothing', async () => {
    const { sim, log } = await orgWithLog();
    await write(sim, accounts(10));
    const patchesBefore = upserts(log).length;
    const records = [...accounts(10).map((r, i) => (i < 3 ? { ...r, Name: `Renamed ${i}` } : r)), ...accounts(14).slice(10), { External_Id__c: 'bad', Rating: 'Lukewarm', Name: 'x' }];
    const dry = await write(sim, records, { dryRun: true });
    expect(dry.counts).toMatchObject({ updated: 3, unchanged: 7, created: 4, failed: 1 });
    expect(upserts(log).length).toBe(patchesBefore);
    expect(sim.records('Account')).toHaveLength(10);
    expect(sim.records('Account').filter((r) => String(r.Name).startsWith('Renamed'))).toHaveLength(0);
    const real = await write(sim, records);
    expect(real.counts).toMatchObject({ updated: 3, unchanged: 7, created: 4, failed: 1 });
  });

  it('reports rows Salesforce cannot lock as retryable failures; allOrNone rolls the batch back', async () => {
    const { sim } = await orgWithLog();
    sim.lockRows(['ext-2']);
    const partial = await write(sim, accounts(5));
    expect(partial.counts).toMatchObject({ created: 4, failed: 1 });
    expect(partial.results?.find((r) => r.key === 'ext-2')).toMatchObject({ status: 'failed', retryable: true, reason: expect.stringMatching(/^UNABLE_TO_LOCK_ROW/) });
    const { sim: other } = await orgWithLog();
    other.lockRows(['ext-2']);
    const all = await write(other, accounts(5), { config: { all_or_none: true } });
    expect(all.counts.failed).toBe(5);
    expect(other.records('Account')).toHaveLength(0);
    other.unlock();
    expect((await write(other, accounts(5), { config: { all_or_none: true } })).counts.created).toBe(5);
  });

  it('all_or_none: a record refused from the describe alone rolls back its batch, as Salesforce would', async () => {
    const { sim, log } = await orgWithLog();
    await write(sim, [{ External_Id__c: 'kept', Name: 'Kept' }]);
    const records = [
      { External_Id__c: 'new', Name: 'New' },
      { External_Id__c: 'kept', Name: 'Renamed' },
      { External_Id__c: 'bad', Name: 'Bad', Rating: 'Lukewarm' },
      { External_Id__c: 'nameless' },
    ];
    const patches = upserts(log).length;
    for (const dryRun of [true, false]) {
      const summary = await write(sim, records, { dryRun, config: { all_or_none: true } });
      expect(summary.results!.map((r) => [r.key, r.status, r.reason?.split(':')[0]])).toEqual([
        ['new', 'failed', 'ALL_OR_NONE_OPERATION_ROLLED_BACK'],
        ['kept', 'failed', 'ALL_OR_NONE_OPERATION_ROLLED_BACK'],
        ['bad', 'failed', 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST'],
        ['nameless', 'failed', 'REQUIRED_FIELD_MISSING'],
      ]);
    }
    expect(sim.records('Account').map((r) => [r.External_Id__c, r.Name])).toEqual([['kept', 'Kept']]);
    expect(upserts(log).length).toBe(patches);
  });

  it('renews an expired session between batches', async () => {
    const { sim, log } = await orgWithLog();
    let patches = 0;
    sim.onRequest((r) => {
      if (r.method === 'PATCH' && ++patches === 1) sim.expireTokens();
    });
    const summary = await write(sim, accounts(600));
    expect(summary.counts.created).toBe(600);
    expect(log.filter((r) => r.status === 401).length).toBeGreaterThanOrEqual(1);
  });

  it('halts at max_api_usage and on 403 REQUEST_LIMIT_EXCEEDED; unsent records fail, nothing is half-written', async () => {
    const { sim } = await orgWithLog();
    sim.setDailyApiLimit(100);
    sim.setApiUsage(88);
    // Each batch costs a query and an upsert: the budget (95 of 100) allows a few of the 5 batches.
    const halted = await write(sim, accounts(1000), { config: { max_api_usage: 0.95 } });
    expect(halted.halted?.kind).toBe('fatal');
    expect(halted.halted?.message).toMatch(/daily Salesforce API requests/);
    expect(halted.counts.created).toBeGreaterThan(0);
    expect(halted.counts.created).toBeLessThan(1000);
    expect(halted.counts.created % 200).toBe(0);
    expect(halted.counts.created + halted.counts.failed).toBe(1000);
    expect(sim.records('Account')).toHaveLength(halted.counts.created);
    expect(sim.apiUsage.used).toBeLessThanOrEqual(96);
    const { sim: capped } = await orgWithLog();
    capped.setDailyApiLimit(100);
    capped.setApiUsage(100);
    const refused = await write(capped, accounts(3), { config: { max_api_usage: 1 } });
    expect(refused.halted?.kind).toBe('fatal');
    expect(refused.halted?.message).toMatch(/REQUEST_LIMIT_EXCEEDED/);
    expect(capped.stats.byStatus[403]).toBe(1);
  });

  it('opens the circuit after repeated 503s: later batches are turned away without reaching Salesforce', async () => {
    const { sim, log } = await orgWithLog();
    // Log in first, then every API request fails.
    await write(sim, accounts(1));
    sim.failNext(1_000, 503);
    const before = log.length;
    const summary = await write(sim, accounts(2000).slice(1), { breaker: { failureThreshold: 3, resetAfterMs: 60_000 } });
    expect(summary.counts.failed).toBe(1999);
    expect(summary.results?.every((r) => r.status === 'failed' && r.retryable === true)).toBe(true);
    // 10 batches × 5 attempts would be 50 requests; the breaker let through 3 failures' worth.
    expect(log.length - before).toBeLessThan(20);
  });
});
