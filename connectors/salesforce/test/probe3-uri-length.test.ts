/**
 * Salesforce refuses a request whose URI and headers pass 16,384 bytes (414 URI Too Long, 431;
 * Knowledge article 000386264), and a REST SOQL query travels in the URI. The simulator
 * applies that limit; these tests hold the connector to it where its queries grow with the
 * data: the writer's compare query (one IN list of up to 200 external ids) and the source's
 * query of an object with hundreds of fields.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TributaryError } from '@tributary/core';
import { startSalesforceSimulator, type SalesforceSimulator, type ServedRequest } from '../src/index.js';
import { catalogOf, credentials, readAll, upsertAccounts } from './helpers.js';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function orgWithLog(options: Parameters<typeof startSalesforceSimulator>[0] = {}): Promise<{ sim: SalesforceSimulator; log: ServedRequest[] }> {
  const sim = await startSalesforceSimulator(options);
  running.push(sim);
  const log: ServedRequest[] = [];
  sim.onRequest((r) => log.push(r));
  return { sim, log };
}

/** A composite external id (tenant and customer UUIDs), 89 characters: 200 of them pass 16 KB in a URI. */
const compositeKey = (i: number): string => `tenant-0f8fad5b-d9cb-469f-a165-70867728950e:customer-7c9e6679-7425-40de-944b-e07fc1f9${String(i).padStart(4, '0')}`;

describe('requests within Salesforce URI limit', () => {
  it('writer: a batch of 200 long external ids is compared in queries that fit a URI, and all are written', async () => {
    const { sim, log } = await orgWithLog();
    const records = Array.from({ length: 200 }, (_, i) => ({ External_Id__c: compositeKey(i), Name: `Account ${i}`, NumberOfEmployees: i }));
    const first = await upsertAccounts(sim, records);
    expect(first.results?.find((r) => r.status === 'failed')?.reason).toBeUndefined();
    expect(first.counts).toMatchObject({ created: 200, failed: 0 });
    expect(log.filter((r) => r.status === 414 || r.status === 431)).toEqual([]);
    expect(sim.records('Account')).toHaveLength(200);
    // The comparison still sees every row: a replay changes nothing.
    const replay = await upsertAccounts(sim, records);
    expect(replay.counts).toMatchObject({ unchanged: 200, created: 0, updated: 0, failed: 0 });
    expect(sim.records('Account')).toHaveLength(200);
  });

  it('source: an object with 600 custom fields is read whole (through Bulk API 2.0), not refused as too long', async () => {
    const { sim, log } = await orgWithLog({ records: { Account: 30 }, customFields: { Account: 600 } });
    const config = { ...credentials(sim), hard_deletes: false, bulk_poll_interval_ms: 0 };
    const catalog = await catalogOf(config, ['Account']);
    const read = await readAll(config, catalog);
    expect(log.filter((r) => r.status === 414 || r.status === 431)).toEqual([]);
    expect(read.records.map((r) => r.Id).sort()).toEqual(sim.records('Account').map((r) => r.Id).sort());
    const stored = new Map(sim.records('Account').map((r) => [r.Id, r]));
    for (const record of read.records) expect(record.Custom_Text_Field_0600__c).toBe(stored.get(record.Id)!.Custom_Text_Field_0600__c);
    // Resuming from the saved state reads only what changed since.
    const [changed] = sim.insert('Account', [{ Name: 'Late', Custom_Text_Field_0600__c: 'wide' }], { stamp: Date.now() + 1000 });
    const next = await readAll({ ...config, lookback_seconds: 0 }, catalog, read.state);
    expect(next.records.map((r) => r.Id)).toEqual([changed]);
  });

  it('source with bulk: never: an object too wide for a REST query fails with a config error saying what to change', async () => {
    const { sim } = await orgWithLog({ records: { Account: 3 }, customFields: { Account: 600 } });
    const config = { ...credentials(sim), hard_deletes: false, bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const error = await readAll(config, catalog).catch((e: unknown) => e);
    expect(TributaryError.is(error, 'config')).toBe(true);
    expect((error as TributaryError).userMessage).toMatch(/"Account".*too long for the REST API.*Set bulk to auto or always/);
  });
});
