/**
 * Keys differing only in case name one row of a unique case-insensitive external id field,
 * and Salesforce refuses every record of an sObject collections upsert whose key is matched
 * more than once in the request (DUPLICATE_VALUE, "Duplicate external id specified"): it never
 * creates two rows for them. Found by probe10-writer-lost-responses (seeds 2 and 3): the writer
 * put `ACC-9` and `acc-9` in one request, which the simulator answered with two new rows
 * (Salesforce: both records refused).
 */
import { describe, expect, it } from 'vitest';
import { upsertAccounts, useOrgs } from './helpers.js';
import type { SalesforceSimulator } from '../src/index.js';

const org = useOrgs();

/** One sObject collections upsert of Accounts by External_Id__c, over HTTP with a token from the token endpoint. */
async function patchAccounts(sim: SalesforceSimulator, records: Array<Record<string, unknown>>): Promise<Array<{ success: boolean; errors: Array<{ statusCode: string }> }>> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: sim.clientId, client_secret: sim.clientSecret, refresh_token: sim.refreshToken });
  const token = (await (await fetch(`${sim.url}/services/oauth2/token`, { method: 'POST', body: form })).json()) as { access_token: string };
  const answer = await fetch(`${sim.url}/services/data/v${sim.version}/composite/sobjects/Account/External_Id__c`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ allOrNone: false, records: records.map((r) => ({ attributes: { type: 'Account' }, ...r })) }),
  });
  expect(answer.status).toBe(200);
  return (await answer.json()) as Array<{ success: boolean; errors: Array<{ statusCode: string }> }>;
}

describe('probe10: external ids differing only in case', () => {
  it('the simulator refuses every record of a request whose key is matched twice, as Salesforce does, and creates no row', async () => {
    const sim = await org();
    const results = await patchAccounts(sim, [
      { External_Id__c: 'acme-9', Name: 'First' },
      { External_Id__c: 'other-1', Name: 'Other' },
      { External_Id__c: 'ACME-9', Name: 'Second' },
    ]);
    expect(results.map((r) => (r.success ? 'ok' : r.errors[0]?.statusCode))).toEqual(['DUPLICATE_VALUE', 'ok', 'DUPLICATE_VALUE']);
    expect(sim.records('Account').map((r) => r.External_Id__c)).toEqual(['other-1']);
  });

  it('the writer applies records whose keys differ only in case one after the other: one row, the last values', async () => {
    const sim = await org();
    const summary = await upsertAccounts(sim, [
      { External_Id__c: 'acme-9', Name: 'First', NumberOfEmployees: 1 },
      { External_Id__c: 'ACME-9', Name: 'Second', NumberOfEmployees: 2 },
    ]);
    const byKey = Object.fromEntries((summary.results ?? []).map((r) => [r.key, r.reason ?? r.status]));
    expect(byKey).toEqual({ 'acme-9': 'created', 'ACME-9': 'updated' });
    const rows = sim.records('Account');
    expect(rows.map((r) => [r.External_Id__c, r.Name, r.NumberOfEmployees])).toEqual([['ACME-9', 'Second', 2]]);
  });
});
