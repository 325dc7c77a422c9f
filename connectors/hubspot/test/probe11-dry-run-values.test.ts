/**
 * A dry run reports what the real run of the same input does, also when one contact's
 * records give a property the same value in another form: HubSpot takes every value as text,
 * so `1` and `"1"`, `true` and `"true"` are one stored value, and the writer's
 * compare-before-write finds the later record `unchanged`. The dry run's ledger compared the
 * records' fields as JSON and reported it `updated`. Through the runtime and the writer,
 * against the simulator over HTTP with the real @hubspot/api-client.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, runWriter, type WriterRunSummary } from '@tributary/core';
import { hubspotWriter } from '../src/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

/** Per input record, in input order of results: [key, status or failure reason]. */
const outcomes = (summary: WriterRunSummary): Array<[string, string]> => (summary.results ?? []).map((r) => [r.key, r.reason ?? r.status]);

const RECORDS = [
  // A new contact, then its values again in other forms (and its email in other case): unchanged.
  { email: 'ada@example.com', firstname: 'Ada', num_notes: 1, hs_email_optout: true },
  { email: 'ada@example.com', num_notes: '1', hs_email_optout: 'true' },
  { email: 'Ada@Example.com', firstname: 'Ada', num_notes: 1 },
  // A change after all: updated.
  { email: 'ada@example.com', num_notes: 2 },
  // A contact that existed: the first record changes it, the second repeats the change as text.
  { email: 'linus@example.com', num_notes: 7, hs_email_optout: false },
  { email: 'linus@example.com', num_notes: '7', hs_email_optout: 'false' },
];

describe('probe11: a dry run judges values of one contact in different forms as the real run does', () => {
  it('number and boolean properties as values and as text', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
    const run = (records: Array<Record<string, unknown>>, dryRun: boolean) =>
      runWriter({ writer: hubspotWriter, config, object: 'contacts', mode: 'upsert', idProperty: 'email', records, dryRun });
    await run([{ email: 'linus@example.com', firstname: 'Linus', num_notes: 5, hs_email_optout: true }], false);
    const before = JSON.stringify(sim.objects('contacts'));
    const dry = await run(RECORDS, true);
    expect(JSON.stringify(sim.objects('contacts'))).toBe(before);
    const real = await run(RECORDS, false);
    expect(outcomes(real)).toEqual([
      ['ada@example.com', 'created'],
      ['ada@example.com', 'unchanged'],
      ['Ada@Example.com', 'unchanged'],
      ['ada@example.com', 'updated'],
      ['linus@example.com', 'updated'],
      ['linus@example.com', 'unchanged'],
    ]);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
  });
});
