/**
 * A dry run reports what a real run would do. When the input holds one key twice, a real run
 * sends the two records in two requests (never two records of a key in one request), and the
 * second is judged against the row the first created or changed: `updated`, or `unchanged`
 * when it changes nothing. A dry run changes nothing at the target, so the writer judges the
 * second record against the row as it was before the run: before, the dry run reported
 * `created` twice. Checked against the http-crm example's HTTP API simulator through its
 * real writer (undici client).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, runWriter } from '@tributary/core';
import { httpCrmWriter, startSimulator, type CrmSimulator } from '@tributary/example-http-crm';
import { dryRunSyncOf, useTempStateStore } from './support/sync-fixtures.js';

const running: CrmSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function crm(): Promise<CrmSimulator> {
  const sim = await startSimulator();
  running.push(sim);
  return sim;
}

const configOf = (sim: CrmSimulator) => parseConfig(httpCrmWriter.spec.connectionSpecification, { base_url: sim.url, api_token: sim.token });

const upsert = (sim: CrmSimulator, records: Record<string, unknown>[], dryRun: boolean) =>
  runWriter({ writer: httpCrmWriter, config: configOf(sim), object: 'contacts', mode: 'upsert', idProperty: 'email', records, dryRun });

/** Per input record (in input order of their keys' first appearance), the statuses of a run. */
const statuses = (summary: Awaited<ReturnType<typeof upsert>>): Record<string, string[]> => {
  const byKey: Record<string, string[]> = {};
  for (const r of summary.results ?? []) (byKey[r.key] ??= []).push(r.status);
  return byKey;
};

const INPUT = [
  { email: 'ada@example.com', first_name: 'Ada' },
  { email: 'alan@example.com', first_name: 'Alan' },
  // The same change again: a real run answers unchanged.
  { email: 'ada@example.com', first_name: 'Ada' },
  // Another change of a row created earlier in the run: a real run answers updated.
  { email: 'alan@example.com', first_name: 'Alan M.' },
  // Back to the value the row had before the run: a real run answers updated (the first record changed it).
  { email: 'grace@example.com', first_name: 'Grace H.' },
  { email: 'grace@example.com', first_name: 'Grace' },
  // Again the value the row already has: unchanged both times.
  { email: 'linus@example.com', first_name: 'Linus' },
  { email: 'linus@example.com', first_name: 'Linus' },
];

async function seeded(): Promise<CrmSimulator> {
  const sim = await crm();
  sim.upsert([
    { email: 'grace@example.com', properties: { first_name: 'Grace' } },
    { email: 'linus@example.com', properties: { first_name: 'Linus' } },
  ]);
  return sim;
}

describe('a dry run with a key twice in its input reports what a real run would', () => {
  it('runWriter: the dry run reports the real run\'s statuses, and changes nothing', async () => {
    const drySim = await seeded();
    const before = drySim.contacts();
    const dry = await upsert(drySim, INPUT, true);
    expect(drySim.contacts()).toEqual(before);

    const real = await upsert(await seeded(), INPUT, false);
    expect(statuses(real)).toEqual({
      'ada@example.com': ['created', 'unchanged'],
      'alan@example.com': ['created', 'updated'],
      'grace@example.com': ['updated', 'updated'],
      'linus@example.com': ['unchanged', 'unchanged'],
    });
    expect(statuses(dry)).toEqual(statuses(real));
    expect(dry.counts).toEqual(real.counts);
  });

  it('a dry-run sync reports the real statuses in its audit trail when the key comes back in a later batch', async () => {
    const sim = await seeded();
    const before = sim.contacts();
    // Three records per batch: each key's second record is in a later `write` than its first, or in the same.
    const { outcome, audit } = await dryRunSyncOf({ writer: httpCrmWriter, writerConfig: { base_url: sim.url, api_token: sim.token }, object: 'contacts', idProperty: 'email', records: INPUT, store: temp.store, recordsPerBatch: 3 });
    expect(outcome).toBe('completed');
    expect(sim.contacts()).toEqual(before);
    const byKey: Record<string, string[]> = {};
    for (const e of audit) (byKey[e.key] ??= []).push(e.status);
    expect(byKey).toEqual({
      'ada@example.com': ['created', 'unchanged'],
      'alan@example.com': ['created', 'updated'],
      'grace@example.com': ['updated', 'updated'],
      'linus@example.com': ['unchanged', 'unchanged'],
    });
  });
});

const temp = useTempStateStore('tributary-probe3-dry-');
