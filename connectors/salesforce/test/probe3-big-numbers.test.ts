/**
 * Number(18,0) fields hold integers of up to 18 digits, past 2^53: Salesforce writes them into
 * JSON as numbers with every digit (and into Bulk CSV as text). A reader that parses JSON into
 * doubles changes them without a word (123456789012345678 → 123456789012345680); so does a
 * writer that turns a decimal string into a double before sending it, and one that compares
 * values as doubles judges a changed value `unchanged` and never sends it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { salesforceSource, startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, readAll, upsertAccounts } from './helpers.js';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

/** An org whose Account has a Number(18,0) custom field, Big__c, and a Number(18,0) external id, Legacy_Number__c. */
async function org(): Promise<SalesforceSimulator> {
  const sim = await startSalesforceSimulator({
    extraFields: {
      Account: [
        { name: 'Big__c', type: 'double', precision: 18, scale: 0 },
        { name: 'Legacy_Number__c', type: 'double', precision: 18, scale: 0, externalId: true, unique: true, idLookup: true },
      ],
    },
  });
  running.push(sim);
  return sim;
}

/** Values and what a record must carry for them: integers past ±(2^53 − 1) as exact decimal strings. */
const VALUES: Array<[string, bigint, number | string]> = [
  ['big', 123456789012345678n, '123456789012345678'],
  ['negative', -9007199254740993n, '-9007199254740993'],
  // A double holds 2^53 itself, but past the safe range a number is never trusted: a string.
  ['two-to-53', 9007199254740992n, '9007199254740992'],
  ['largest', 999999999999999999n, '999999999999999999'],
  ['safe', 9007199254740991n, 9007199254740991],
  ['small', 42n, 42],
];

describe('Number(18,0) values past 2^53', () => {
  it('are read digit for digit through the REST API and Bulk API 2.0 alike, and the schema allows the decimal strings', async () => {
    const sim = await org();
    sim.insert(
      'Account',
      VALUES.map(([name, value]) => ({ Name: name, Big__c: value })),
    );
    const expected = Object.fromEntries(VALUES.map(([name, , value]) => [name, value]));
    for (const bulk of ['never', 'always']) {
      const config = { ...credentials(sim), bulk, bulk_poll_interval_ms: 0, hard_deletes: false };
      const catalog = await catalogOf(config, ['Account']);
      const { records } = await readAll(config, catalog);
      expect({ bulk, values: Object.fromEntries(records.map((r) => [r.Name, r.Big__c])) }).toEqual({ bulk, values: expected });
    }
    const discovered = await salesforceSource.discover(createConnectorContext({}), parseConfig(salesforceSource.spec.connectionSpecification, credentials(sim)));
    const properties = discovered.streams.find((s) => s.name === 'Account')!.json_schema.properties as Record<string, { type: unknown }>;
    expect(properties.Big__c!.type).toEqual(['integer', 'string', 'null']);
    // Fields with fractions, or with few enough digits for a double, stay plain numbers.
    expect(properties.AnnualRevenue!.type).toEqual(['number', 'null']);
  });

  it('are written digit for digit, and a change in the last digit is sent, not judged unchanged', async () => {
    const sim = await org();
    sim.insert('Account', [{ Name: 'stored', External_Id__c: 'k-1', Big__c: 123456789012345678n }]);
    const write = (records: Array<Record<string, unknown>>) => upsertAccounts(sim, records, { idProperty: 'External_Id__c' });
    const records = [
      { External_Id__c: 'k-1', Big__c: '123456789012345679' },
      { External_Id__c: 'k-2', Name: 'new', Big__c: '-9007199254740993' },
    ];
    const first = await write(records);
    expect(first.results?.map((r) => [r.key, r.status])).toEqual([
      ['k-1', 'updated'],
      ['k-2', 'created'],
    ]);
    const stored = Object.fromEntries(sim.records('Account').map((r) => [r.External_Id__c, r.Big__c]));
    expect(stored).toEqual({ 'k-1': 123456789012345679n, 'k-2': -9007199254740993n });
    // Replayed: the values stored are the values asked for.
    const replay = await write(records);
    expect(replay.counts).toMatchObject({ unchanged: 2, updated: 0, created: 0 });
  });

  it('upserts by a Number(18,0) external id past 2^53: each record reaches the row of its own key', async () => {
    const sim = await org();
    sim.insert('Account', [{ Name: 'old', Legacy_Number__c: 123456789012345678n }]);
    const write = (records: Array<Record<string, unknown>>) => upsertAccounts(sim, records, { idProperty: 'Legacy_Number__c' });
    const first = await write([
      { Legacy_Number__c: '123456789012345678', Name: 'old, renamed' },
      { Legacy_Number__c: '123456789012345679', Name: 'neighbour' },
    ]);
    expect(first.results?.map((r) => [r.key, r.status])).toEqual([
      ['123456789012345678', 'updated'],
      ['123456789012345679', 'created'],
    ]);
    const byKey = Object.fromEntries(sim.records('Account').map((r) => [String(r.Legacy_Number__c), r.Name]));
    expect(byKey).toEqual({ '123456789012345678': 'old, renamed', '123456789012345679': 'neighbour' });
  });
});
