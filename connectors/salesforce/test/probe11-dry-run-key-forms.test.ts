/**
 * A dry run reports what the real run of the same input does, also when one row's records
 * carry its key in different forms: `1`, `"1.0"` and `"1e0"` of a Number external id, `ABC-1`
 * and `abc-1` of a unique case-insensitive text external id. The real run matches each later
 * record to the row (the writer's key identity) and compares the other fields only, so a
 * record repeating the values is `unchanged`. The dry run's ledger compared the id field's
 * text too, and reported those records `updated`. Driven through the runtime and the writer,
 * against the simulator over HTTP with jsforce.
 */
import { describe, expect, it } from 'vitest';
import { dryRunThenReal, outcomes, upsertAccounts, useOrgs } from './helpers.js';
import type { SalesforceSimulator } from '../src/index.js';

const org = useOrgs();

/** An org whose Account has a unique Number(18,0) external id, Legacy_Number__c. */
function numberIdOrg(): Promise<SalesforceSimulator> {
  return org({ extraFields: { Account: [{ name: 'Legacy_Number__c', type: 'double', precision: 18, scale: 0, externalId: true, unique: true, idLookup: true }] } });
}


describe('probe11: a dry run judges records of one row in different key forms as the real run does', () => {
  it('Number external id: 1, "1.0", "1e0" (and a row that existed, keyed 3.0 and 3e0)', async () => {
    const sim = await numberIdOrg();
    await upsertAccounts(sim, [{ Legacy_Number__c: 3, Name: 'three' }], { idProperty: 'Legacy_Number__c' });
    const records = [
      { Legacy_Number__c: 1, Name: 'one' },
      { Legacy_Number__c: '1.0', Name: 'one' },
      { Legacy_Number__c: '1e0', Name: 'one' },
      { Legacy_Number__c: '2', Name: 'two' },
      { Legacy_Number__c: '2.0', Name: 'deux' },
      { Legacy_Number__c: '3.0', Name: 'three' },
      { Legacy_Number__c: '3e0', Name: 'three' },
    ];
    const { dry, real } = await dryRunThenReal(sim, records, { idProperty: 'Legacy_Number__c' });
    expect(outcomes(real)).toEqual([
      ['1', 'created'],
      ['1.0', 'unchanged'],
      ['1e0', 'unchanged'],
      ['2', 'created'],
      ['2.0', 'updated'],
      ['3.0', 'unchanged'],
      ['3e0', 'unchanged'],
    ]);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
  });

  it('case-insensitive text external id: ABC-1 then abc-1 (and a row that existed, keyed xyz-9 and Xyz-9)', async () => {
    const sim = await org();
    await upsertAccounts(sim, [{ External_Id__c: 'XYZ-9', Name: 'x' }]);
    const records = [
      { External_Id__c: 'ABC-1', Name: 'a' },
      { External_Id__c: 'abc-1', Name: 'a' },
      { External_Id__c: 'xyz-9', Name: 'x' },
      { External_Id__c: 'Xyz-9', Name: 'x' },
      { External_Id__c: 'ABC-1', Name: 'a2' },
    ];
    const { dry, real } = await dryRunThenReal(sim, records);
    expect(outcomes(real)).toEqual([
      ['ABC-1', 'created'],
      ['abc-1', 'unchanged'],
      ['xyz-9', 'unchanged'],
      ['Xyz-9', 'unchanged'],
      ['ABC-1', 'updated'],
    ]);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
  });
});
