/**
 * A dry run reports what the real run of the same input does, also when one row's records
 * give a field the same value in another form: `1000` and `"1000.0"` of a currency field,
 * `true` and `"true"` of a checkbox, `Gold;Silver` and `Silver;Gold` of a multi-select
 * picklist, `Name` and `name` (API names are case-insensitive). The real run compares each
 * later record with the row the earlier ones wrote, by field type (the writer's
 * compare-before-write), and reports it `unchanged`. The dry run's ledger compared the
 * records' fields as JSON, by exact name, and reported those records `updated`. And a later
 * record of a row the dry run created was judged against no row: failed for lacking a field
 * required on create, which the real run (updating the row) does not ask for. Driven
 * through the runtime and the writer, against the simulator over HTTP with jsforce.
 */
import { describe, expect, it } from 'vitest';
import { dryRunThenReal, outcomes, upsertAccounts, useOrgs } from './helpers.js';

const org = useOrgs();


const RECORDS = [
  // A new row, then its values again in other forms: unchanged in the real run.
  { External_Id__c: 'new-1', Name: 'k', AnnualRevenue: 1000, Active__c: true, Tier__c: 'Gold;Silver' },
  { External_Id__c: 'new-1', Name: 'k', AnnualRevenue: '1000.0', Active__c: 'true' },
  { External_Id__c: 'new-1', name: 'k', annualrevenue: '1e3', Tier__c: 'Silver;Gold' },
  // A change after all: updated.
  { External_Id__c: 'new-1', Name: 'k', AnnualRevenue: '1000.5' },
  // A row that existed: the first record changes it, the second repeats the change in another form.
  { External_Id__c: 'old-1', AnnualRevenue: 7, Active__c: 'false' },
  { External_Id__c: 'old-1', annualRevenue: '7.00', Active__c: false },
];

describe('probe11: a dry run judges values of one row in different forms as the real run does', () => {
  it('currency, checkbox, multi-select picklist values and field names in other forms', async () => {
    const sim = await org();
    await upsertAccounts(sim, [{ External_Id__c: 'old-1', Name: 'before', AnnualRevenue: 5, Active__c: true }]);
    const { dry, real } = await dryRunThenReal(sim, RECORDS);
    expect(outcomes(real)).toEqual([
      ['new-1', 'created'],
      ['new-1', 'unchanged'],
      ['new-1', 'unchanged'],
      ['new-1', 'updated'],
      ['old-1', 'updated'],
      ['old-1', 'unchanged'],
    ]);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
  });

  it('a later record of a row the dry run created is not asked for the fields required on create', async () => {
    // Name is required on create. The real run creates the row with the first record; the
    // later ones update it and need no Name. The dry run judged them against no row, and
    // failed them REQUIRED_FIELD_MISSING.
    const sim = await org();
    const records = [
      { External_Id__c: 'new-2', Name: 'n', AnnualRevenue: 1 },
      { External_Id__c: 'new-2', AnnualRevenue: 1 },
      { External_Id__c: 'new-2', AnnualRevenue: 2 },
      { External_Id__c: 'new-3', AnnualRevenue: 3 },
    ];
    const { dry, real } = await dryRunThenReal(sim, records);
    expect(outcomes(real)).toEqual([
      ['new-2', 'created'],
      ['new-2', 'unchanged'],
      ['new-2', 'updated'],
      ['new-3', 'REQUIRED_FIELD_MISSING: Required fields are missing: [Name]'],
    ]);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
  });
});
