/**
 * A unique external id field is case-insensitive by default in Salesforce ("Treat ABC and abc
 * as duplicate values"): an upsert of `acme-1` updates the row stored as `ACME-1`, and SOQL
 * `IN ('acme-1')` returns it. The writer's compare-before-write must match that row to the
 * record, or it judges the record a create: a mapping without the fields required on create
 * fails although Salesforce would update, and a replay is sent again (`updated`, triggers
 * fired) instead of being answered `unchanged`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startSalesforceSimulator, type SalesforceSimulator, type ServedRequest } from '../src/index.js';
import { upsertAccounts } from './helpers.js';

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

function upsert(sim: SalesforceSimulator, records: Array<Record<string, unknown>>, dryRun = false) {
  return upsertAccounts(sim, records, { dryRun });
}

const upserts = (log: ServedRequest[]) => log.filter((r) => r.method === 'PATCH').length;

describe('writer: unique case-insensitive external ids', () => {
  it('a record keyed in another case updates the stored row, even without the fields required on create', async () => {
    const { sim } = await orgWithLog();
    sim.insert('Account', [{ External_Id__c: 'ACME-1', Name: 'Acme', NumberOfEmployees: 5 }]);
    // Name is required on create: the record can only update the existing row, as Salesforce would.
    const summary = await upsert(sim, [{ External_Id__c: 'acme-1', NumberOfEmployees: 7 }]);
    expect(summary.results?.[0]?.reason).toBeUndefined();
    expect(summary.results?.[0]).toMatchObject({ status: 'updated', key: 'acme-1' });
    // One row, updated (the upsert also writes the key's new case into it).
    expect(sim.records('Account').map((r) => [String(r.External_Id__c).toLowerCase(), r.NumberOfEmployees])).toEqual([['acme-1', 7]]);
  });

  it('a replay of a record keyed in another case is unchanged and sends no upsert; a dry run says updated, not created', async () => {
    const { sim, log } = await orgWithLog();
    sim.insert('Account', [{ External_Id__c: 'ACME-2', Name: 'Acme', NumberOfEmployees: 5 }]);
    const record = { External_Id__c: 'acme-2', Name: 'Acme', NumberOfEmployees: 9 };
    const dry = await upsert(sim, [record], true);
    expect(dry.counts).toMatchObject({ updated: 1, created: 0 });
    expect((await upsert(sim, [record])).counts).toMatchObject({ updated: 1 });
    const sent = upserts(log);
    const replay = await upsert(sim, [record]);
    expect(replay.counts).toMatchObject({ unchanged: 1, updated: 0, created: 0 });
    expect(upserts(log)).toBe(sent);
    expect(sim.records('Account')).toHaveLength(1);
  });

  it('keys differing in case from no stored row are still created', async () => {
    const { sim } = await orgWithLog();
    sim.insert('Account', [{ External_Id__c: 'ACME-3', Name: 'Acme' }]);
    const summary = await upsert(sim, [{ External_Id__c: 'acme-4', Name: 'Other' }]);
    expect(summary.counts).toMatchObject({ created: 1 });
    expect(sim.records('Account').map((r) => r.External_Id__c).sort()).toEqual(['ACME-3', 'acme-4']);
  });
});
