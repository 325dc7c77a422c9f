// The HubSpot writer against the simulator, through the real @hubspot/api-client: results
// from 207 answers, idempotent replays, dry runs, a 429 storm, and the circuit breaker on
// repeated 5xx.
import { describe, expect, it } from 'vitest';
import { parseConfig, runWriter, type WriteResult } from '@tributary/core';
import { hubspotWriter } from '../src/index.js';
import { type HubspotSimulator, type ServedRequest } from '../src/simulator/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

async function setup(): Promise<{ sim: HubspotSimulator; served: ServedRequest[]; config: Record<string, unknown> }> {
  const sim = await simulator({ searchLagMs: 0 });
  const served: ServedRequest[] = [];
  sim.onServed((r) => served.push(r));
  const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
  return { sim, served, config };
}

function people(n: number, from = 0): Array<Record<string, unknown>> {
  return Array.from({ length: n }, (_, i) => ({ email: `p${from + i}@example.com`, firstname: 'P', lastname: `No ${from + i}`, num_notes: i % 5 }));
}

function count(results: readonly WriteResult[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results ?? []) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
}

const run = (config: Record<string, unknown>, records: Array<Record<string, unknown>>, extra: Partial<Parameters<typeof runWriter>[0]> = {}) =>
  runWriter({ writer: hubspotWriter, config, object: 'contacts', mode: 'upsert', idProperty: 'email', records, ...extra });

describe('hubspot writer', () => {
  it('one result per record from 207 answers; the same batch again is all unchanged; changes are updates', async () => {
    const { sim, served, config } = await setup();
    const records = people(250);
    records[17] = { email: 'broken-email', firstname: 'X' };
    records[120] = { email: 'p120@example.com', num_notes: 'many' };
    records[201] = { email: 'p201@example.com', no_such_property: 'x' };
    const first = await run(config, records);
    expect(first.halted).toBeUndefined();
    expect(count(first.results)).toEqual({ created: 247, failed: 3 });
    expect(served.filter((r) => r.path.endsWith('/batch/upsert')).map((r) => r.status).sort()).toEqual([207, 207, 207]);
    const failed = first.results!.filter((r) => r.status === 'failed');
    expect(failed.map((r) => r.key).sort()).toEqual(['broken-email', 'p120@example.com', 'p201@example.com']);
    expect(failed.find((r) => r.key === 'broken-email')?.reason).toMatch(/INVALID_EMAIL/);
    expect(failed.find((r) => r.key === 'p201@example.com')?.reason).toMatch(/does not exist/);
    expect(failed.every((r) => r.retryable === false)).toBe(true);
    expect(sim.objects('contacts').length).toBe(247);

    const valid = records.filter((_, i) => ![17, 120, 201].includes(i));
    const again = await run(config, valid);
    expect(count(again.results)).toEqual({ unchanged: 247 });
    const changed = valid.map((r, i) => (i % 10 === 0 ? { ...r, lastname: 'Changed' } : r));
    const third = await run(config, changed);
    expect(count(third.results)).toEqual({ updated: 25, unchanged: 222 });
    expect(sim.objects('contacts').filter((c) => c.properties.lastname === 'Changed').length).toBe(25);
  });

  it('dry run reports creates, updates and unchanged without writing anything', async () => {
    const { sim, served, config } = await setup();
    await run(config, people(100));
    const before = JSON.stringify(sim.objects('contacts'));
    served.length = 0;
    const mix = [...people(40).map((r, i) => (i < 15 ? { ...r, firstname: 'Renamed' } : r)), ...people(30, 500), { email: 'bad', firstname: 'x' }];
    const dry = await run(config, mix, { dryRun: true });
    expect(count(dry.results)).toEqual({ updated: 15, unchanged: 25, created: 30, failed: 1 });
    expect(served.filter((r) => !r.path.endsWith('/batch/read') && !r.path.includes('/properties/'))).toEqual([]);
    expect(JSON.stringify(sim.objects('contacts'))).toBe(before);
    const real = await run(config, mix);
    expect(count(real.results)).toEqual(count(dry.results));
  });

  it('a key written twice in one run ends with its last value, in one request or in two concurrent ones', async () => {
    // The writer compares each record with the contact as read before its request: two
    // records of one email in a request, or in two requests in flight at once, must not be
    // judged against the same old value (the later one would come back `unchanged` and the
    // older value would stay).
    const sim = await simulator({ searchLagMs: 0, latencyMs: 50 });
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
    const firstname = (email: string) => sim.objects('contacts').find((o) => o.properties.email === email)?.properties.firstname;
    await run(config, [{ email: 'one@example.com', firstname: 'A' }, { email: 'two@example.com', firstname: 'A' }]);

    const sameRequest = await run(config, [{ email: 'one@example.com', firstname: 'B' }, { email: 'one@example.com', firstname: 'A' }]);
    expect(firstname('one@example.com')).toBe('A');
    expect(sameRequest.results!.map((r) => r.status)).toEqual(['updated', 'updated']);

    // 101 records: two requests of the writer's concurrency 2, the key at both ends.
    const twoRequests = await run(config, [{ email: 'two@example.com', firstname: 'B' }, ...people(99), { email: 'two@example.com', firstname: 'A' }]);
    expect(firstname('two@example.com')).toBe('A');
    expect(count(twoRequests.results)).toEqual({ created: 99, updated: 2 });
  });

  it('emails differing only in case are one contact: its last record in input order wins, in one request or in two concurrent ones', async () => {
    // HubSpot (and the simulator) match emails without regard to case. The runtime's
    // per-key ordering must see `One@Example.com` and `one@example.com` as one key, or the
    // two land in one request (or two in flight) and the older value is left standing.
    const sim = await simulator({ searchLagMs: 0, latencyMs: 50 });
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
    const contact = (email: string) => sim.objects('contacts').filter((o) => o.properties.email?.toLowerCase() === email);
    await run(config, [{ email: 'one@example.com', firstname: 'A' }, { email: 'two@example.com', firstname: 'A' }]);

    const sameRequest = await run(config, [{ email: 'One@Example.com', firstname: 'B' }, { email: 'one@example.com', firstname: 'A' }]);
    expect(contact('one@example.com').map((o) => o.properties.firstname)).toEqual(['A']);
    expect(sameRequest.results!.map((r) => r.status)).toEqual(['updated', 'updated']);

    // 101 records: two requests of the writer's concurrency 2, the contact at both ends.
    const twoRequests = await run(config, [{ email: 'TWO@example.com', firstname: 'B' }, ...people(99), { email: 'two@example.com', firstname: 'A' }]);
    expect(contact('two@example.com').map((o) => o.properties.firstname)).toEqual(['A']);
    expect(count(twoRequests.results)).toEqual({ created: 99, updated: 2 });
    expect(sim.objects('contacts').length).toBe(101);
  });

  it('a 207 whose errors do not name their records: each refused record gets its own reason, or an unknown one, never another record\'s', async () => {
    // HubSpot's errors about a property value name the property, not the input.
    const { config } = await setup();
    const records = [
      ...people(5),
      { email: 'n1@example.com', num_notes: 'many' },
      { email: 'n2@example.com', no_such_property: 'x' },
      ...people(5, 10),
      // Refused by HubSpot for a reason the writer's local check does not know (enumeration options).
      { email: 'n3@example.com', lifecyclestage: 'alien' },
      { email: 'n4@example.com', lifecyclestage: 'martian' },
    ];
    const result = await run(config, records);
    expect(count(result.results)).toEqual({ created: 10, failed: 4 });
    const reason = (key: string) => result.results!.find((r) => r.key === key)?.reason;
    expect(reason('n1@example.com')).toMatch(/^VALIDATION_ERROR: .*many is not a valid number for "num_notes"/);
    expect(reason('n2@example.com')).toMatch(/^VALIDATION_ERROR: Property "no_such_property" does not exist/);
    // Two records left and two unattributed errors: which is which is unknown.
    expect(reason('n3@example.com')).toMatch(/^unknown: /);
    expect(reason('n4@example.com')).toMatch(/^unknown: /);
    expect(reason('n3@example.com')).not.toMatch(/num_notes|no_such_property/);
    expect(result.results!.filter((r) => r.status === 'failed').every((r) => r.retryable === false)).toBe(true);

    // One record left with one unattributed error: that error is its own.
    const single = await run(config, [...people(3, 20), { email: 'n5@example.com', num_notes: 'lots' }, { email: 'n6@example.com', lifecyclestage: 'alien' }]);
    expect(single.results!.find((r) => r.key === 'n5@example.com')?.reason).toMatch(/lots is not a valid number/);
    expect(single.results!.find((r) => r.key === 'n6@example.com')?.reason).toMatch(/^VALIDATION_ERROR: .*alien was not one of the allowed options for "lifecyclestage"/);
  });

  it('a 429 storm is ridden out: every record written once', async () => {
    const { sim, config } = await setup();
    sim.throttle(4);
    const result = await run(config, people(300));
    expect(count(result.results)).toEqual({ created: 300 });
    expect(sim.stats.byStatus[429]).toBe(4);
    expect(sim.objects('contacts').length).toBe(300);
  }, 60_000);

  it('a DAILY 429 halts the run: nothing more is sent, every record fails with the reason', async () => {
    const { sim, served, config } = await setup();
    let definitions = 0;
    sim.onServed((r) => {
      if (r.path.includes('/properties/') && ++definitions === 3) sim.exhaustDaily();
    });
    const result = await run(config, people(500));
    expect(result.halted?.message).toMatch(/daily/i);
    expect(count(result.results)).toEqual({ failed: 500 });
    // At most the writes already in flight (concurrency 2) met the 429; none was retried.
    expect(served.filter((r) => r.status === 429).length).toBeLessThanOrEqual(hubspotWriter.rateLimit.concurrency!);
  });

  it('repeated 5xx open the circuit: HubSpot stops being called, records fail retryable, a later run writes them', async () => {
    const { sim, served, config } = await setup();
    // HubSpot breaks once the session is open (it read the property definitions).
    let definitions = 0;
    sim.onServed((r) => {
      if (r.path.includes('/properties/') && ++definitions === 3) sim.failNext(1_000, 503);
    });
    const records = people(1_000);
    const broken = await run(config, records, { breaker: { failureThreshold: 3, resetAfterMs: 60_000 } });
    expect(count(broken.results)).toEqual({ failed: 1_000 });
    expect(broken.results!.every((r) => r.retryable === true)).toBe(true);
    // Ten batches with six attempts each would be 60 requests; the open circuit turned most away.
    const failedCalls = served.filter((r) => r.status === 503).length;
    expect(failedCalls).toBeGreaterThanOrEqual(3);
    expect(failedCalls).toBeLessThanOrEqual(5);
    sim.failNext(0);
    definitions = -1_000;
    const healed = await run(config, records);
    expect(count(healed.results)).toEqual({ created: 1_000 });
  }, 60_000);
});
