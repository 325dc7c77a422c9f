/**
 * A Number external id field matches keys as numbers: `1`, `1.0`, `"1.00"` and `1e0` name one
 * row, and Salesforce refuses every record of an sObject collections upsert whose key is
 * matched more than once (DUPLICATE_VALUE, "Duplicate external id specified"). The writer's key
 * identity was the key's text without case, so records keyed `1` and `"1.0"` went in one
 * request and both failed. Text external ids keep their own rule: `1` and `1.0` are two rows.
 */
import { describe, expect, it } from 'vitest';
import { Connection } from 'jsforce';
import { upsertAccounts, useOrgs } from './helpers.js';
import type { SalesforceSimulator } from '../src/index.js';

const org = useOrgs();

/** An org whose Account has a unique Number(18,0) external id, Legacy_Number__c. */
function numberIdOrg(): Promise<SalesforceSimulator> {
  return org({ extraFields: { Account: [{ name: 'Legacy_Number__c', type: 'double', precision: 18, scale: 0, externalId: true, unique: true, idLookup: true }] } });
}

/** A jsforce connection to `sim`, with a token from its token endpoint. */
async function jsforceOf(sim: SalesforceSimulator): Promise<Connection> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: sim.clientId, client_secret: sim.clientSecret, refresh_token: sim.refreshToken });
  const token = (await (await fetch(`${sim.url}/services/oauth2/token`, { method: 'POST', body: form })).json()) as { access_token: string };
  return new Connection({ instanceUrl: sim.url, version: sim.version, accessToken: token.access_token });
}

const byNumber = (sim: SalesforceSimulator) => sim.records('Account').filter((r) => r.Legacy_Number__c != null).map((r) => [String(r.Legacy_Number__c), r.Name]);

describe('probe11: Number external ids in different decimal forms', () => {
  it('the simulator refuses both records of a request carrying one number twice, as Salesforce does', async () => {
    const sim = await numberIdOrg();
    const conn = await jsforceOf(sim);
    // JSON has one number 100 whatever its form: `1e2` and `100` arrive as the same external id.
    const body = '{"allOrNone":false,"records":[{"attributes":{"type":"Account"},"Legacy_Number__c":1e2,"Name":"a"},{"attributes":{"type":"Account"},"Legacy_Number__c":100.0,"Name":"b"}]}';
    const results = await conn.request<Array<{ success: boolean; errors: Array<{ statusCode: string }> }>>({
      method: 'PATCH',
      url: `/services/data/v${sim.version}/composite/sobjects/Account/Legacy_Number__c`,
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(results.map((r) => (r.success ? 'ok' : r.errors[0]?.statusCode))).toEqual(['DUPLICATE_VALUE', 'DUPLICATE_VALUE']);
    expect(byNumber(sim)).toEqual([]);
  });

  it('the writer applies records keyed 1, "1.0", "1.00" and "1e0" one after the other: one row, the last values', async () => {
    const sim = await numberIdOrg();
    const summary = await upsertAccounts(
      sim,
      [
        { Legacy_Number__c: 1, Name: 'first' },
        { Legacy_Number__c: '1.0', Name: 'second' },
        { Legacy_Number__c: '2', Name: 'other' },
        { Legacy_Number__c: '1.00', Name: 'third' },
        { Legacy_Number__c: '1e0', Name: 'last' },
      ],
      { idProperty: 'Legacy_Number__c' },
    );
    expect((summary.results ?? []).map((r) => [r.key, r.reason ?? r.status])).toEqual([
      ['1', 'created'],
      ['1.0', 'updated'],
      ['2', 'created'],
      ['1.00', 'updated'],
      ['1e0', 'updated'],
    ]);
    expect(byNumber(sim)).toEqual([
      ['1', 'last'],
      ['2', 'other'],
    ]);
  });

  it('keys 1e2 and 100 name one row; a dry run reports what the real run does', async () => {
    const sim = await numberIdOrg();
    const records = [
      { Legacy_Number__c: '1e2', Name: 'first' },
      { Legacy_Number__c: '100', Name: 'second' },
    ];
    const dry = await upsertAccounts(sim, records, { idProperty: 'Legacy_Number__c', dryRun: true });
    const real = await upsertAccounts(sim, records, { idProperty: 'Legacy_Number__c' });
    const statuses = (s: typeof real) => (s.results ?? []).map((r) => [r.key, r.reason ?? r.status]);
    expect(statuses(real)).toEqual([
      ['1e2', 'created'],
      ['100', 'updated'],
    ]);
    expect(statuses(dry)).toEqual(statuses(real));
    expect(byNumber(sim)).toEqual([['100', 'second']]);
  });

  it('text external ids keep matching as text: keys 1 and 1.0 are two rows', async () => {
    const sim = await org();
    const summary = await upsertAccounts(sim, [
      { External_Id__c: '1', Name: 'one' },
      { External_Id__c: '1.0', Name: 'one point zero' },
    ]);
    expect((summary.results ?? []).map((r) => [r.key, r.reason ?? r.status])).toEqual([
      ['1', 'created'],
      ['1.0', 'created'],
    ]);
    expect(sim.records('Account').map((r) => [r.External_Id__c, r.Name])).toEqual([
      ['1', 'one'],
      ['1.0', 'one point zero'],
    ]);
  });
});
