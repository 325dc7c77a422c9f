/**
 * `anyType` fields (history objects' OldValue and NewValue) hold a string, number, boolean,
 * date or date-time. The REST API writes them into JSON with their type (`42`, `true`), Bulk
 * API 2.0's CSV as text (`42`, `true`): a record read through REST carried the number 42,
 * the same record read through Bulk the string "42". Both carry the text now, and the schema
 * says `string`: the CSV cannot tell the number 42 from the text "42" (nor "0042" from 42 if
 * it were parsed), so text is the one value both paths can give without loss.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { compileSchema, createConnectorContext, parseConfig } from '@tributary/core';
import { salesforceSource, startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, readAll } from './helpers.js';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

/** Stored anyType values (as the simulator's test API takes them) and the text a record must carry. */
const VALUES: Array<[string, unknown, string | null]> = [
  ['integer', 42, '42'],
  ['fraction', 1234.5, '1234.5'],
  ['negative', -0.25, '-0.25'],
  ['boolean true', true, 'true'],
  ['boolean false', false, 'false'],
  ['text', 'hello, "world"', 'hello, "world"'],
  ['text of digits', '0042', '0042'],
  ['date', '2024-01-02', '2024-01-02'],
  ['date-time', '2024-01-02T03:04:05.000+0000', '2024-01-02T03:04:05.000+0000'],
  ['past 2^53', 123456789012345678n, '123456789012345678'],
  ['null', null, null],
];

describe('anyType fields', () => {
  it('carry the same text through the REST API and Bulk API 2.0, matching the declared schema', async () => {
    const sim = await startSalesforceSimulator({ extraFields: { Account: [{ name: 'Any_Value__c', type: 'anyType' }] } });
    running.push(sim);
    sim.insert(
      'Account',
      VALUES.map(([name, value]) => ({ Name: name, Any_Value__c: value })),
    );
    const expected = Object.fromEntries(VALUES.map(([name, , text]) => [name, text]));

    const read: Record<string, Array<Record<string, unknown>>> = {};
    for (const bulk of ['never', 'always']) {
      const config = { ...credentials(sim), bulk, bulk_poll_interval_ms: 0, hard_deletes: false };
      read[bulk] = (await readAll(config, await catalogOf(config, ['Account']))).records;
      expect({ bulk, values: Object.fromEntries(read[bulk].map((r) => [r.Name, r.Any_Value__c])) }).toEqual({ bulk, values: expected });
    }

    const discovered = await salesforceSource.discover(createConnectorContext({}), parseConfig(salesforceSource.spec.connectionSpecification, credentials(sim)));
    const schema = discovered.streams.find((s) => s.name === 'Account')!.json_schema;
    expect((schema.properties as Record<string, unknown>).Any_Value__c).toEqual({ type: ['string', 'null'] });
    const validate = compileSchema(schema);
    for (const [bulk, records] of Object.entries(read)) {
      for (const record of records) expect({ bulk, name: record.Name, valid: validate(record), errors: validate.errors ?? null }).toEqual({ bulk, name: record.Name, valid: true, errors: null });
    }
  });
});
