// The Salesforce writer's listKeys against the simulator, through the real jsforce client:
// every stored external id, across query pages; rows without one are not listed.
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { salesforceWriter } from '../src/index.js';
import { credentials, upsertAccounts, useOrgs } from './helpers.js';

const org = useOrgs();

describe('salesforce writer: listKeys', () => {
  it('lists the external id of every row that has one, across query pages', async () => {
    const sim = await org({ records: { Account: 0 }, queryPageSize: 40 });
    const config = parseConfig(salesforceWriter.spec.connectionSpecification, { ...credentials(sim) });
    const records = Array.from({ length: 130 }, (_, i) => ({ External_Id__c: `ext-${i}`, Name: `Account ${i}` }));
    const written = await upsertAccounts(sim, records);
    expect(written.results?.every((r) => r.status === 'created')).toBe(true);
    // Made in Salesforce directly, without an external id: no key.
    sim.insert('Account', [{ Name: 'No external id' }]);

    const session = await salesforceWriter.open(createConnectorContext(), config);
    const listed: string[] = [];
    try {
      for await (const key of session.listKeys!('Account', 'external_id__c')) listed.push(key);
    } finally {
      await session.close();
    }
    expect(listed.sort()).toEqual(records.map((r) => r.External_Id__c).sort());
  });
});
