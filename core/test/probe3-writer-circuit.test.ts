/**
 * The circuit breaker of reverse ETL, against the http-crm example's HTTP API simulator
 * through its real writer (undici client):
 * - a 429 storm is the peer pacing its clients, not an outage: it must not open the circuit
 *   while the requests still have attempts left (before, five 429s in a row opened it and
 *   every record of the run failed, none written);
 * - once a circuit's reset time has passed, the requests sent while its half-open trial is
 *   out wait for the trial's answer (before, they were turned away and failed although the
 *   trial then found the peer up).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCircuitBreaker, parseConfig, runWriter, type CircuitState, type WriteResult } from '@tributary/core';
import { httpCrmWriter, startSimulator, type CrmSimulator } from '@tributary/example-http-crm';

const running: CrmSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function crm(options: Parameters<typeof startSimulator>[0] = {}): Promise<CrmSimulator> {
  const sim = await startSimulator(options);
  running.push(sim);
  return sim;
}

const configOf = (sim: CrmSimulator) => parseConfig(httpCrmWriter.spec.connectionSpecification, { base_url: sim.url, api_token: sim.token });

const people = (n: number): Record<string, unknown>[] => Array.from({ length: n }, (_, i) => ({ email: `p${i}@example.com`, first_name: `P${i}` }));

function countOf(results: readonly WriteResult[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results ?? []) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
}

describe('reverse ETL circuit breaker', () => {
  it('rides out a 429 storm longer than the failure threshold: every record written once', async () => {
    // Retry-After 0: the storm costs the writer's backoff only.
    const sim = await crm({ retryAfterSeconds: 0 });
    sim.throttle(7);
    const summary = await runWriter({
      writer: httpCrmWriter,
      config: configOf(sim),
      object: 'contacts',
      mode: 'upsert',
      idProperty: 'email',
      records: people(200),
      breaker: { failureThreshold: 5, resetAfterMs: 60_000 },
    });
    expect(countOf(summary.results)).toEqual({ created: 200 });
    expect(sim.stats.byStatus[429]).toBe(7);
    expect(sim.contacts()).toHaveLength(200);
  });

  it('requests sent while the half-open trial is out wait for its answer instead of failing', async () => {
    // The peer is down (nothing listens at its address): one refused connection opens the circuit.
    const down = await startSimulator();
    const deadConfig = configOf(down);
    await down.close();
    const writer = { ...httpCrmWriter, retry: { maxAttempts: 1 } };
    const breaker = createCircuitBreaker({ failureThreshold: 1, resetAfterMs: 0 });
    const outage = await runWriter({ writer, config: deadConfig, object: 'contacts', mode: 'upsert', idProperty: 'email', records: people(10), breaker });
    expect(countOf(outage.results)).toEqual({ failed: 10 });
    expect(breaker.state).toBe('open');

    // The peer is back. The run's first request is the trial; the others (six requests of
    // 50, two in flight) are sent while it is out.
    const sim = await crm();
    const transitions: CircuitState[] = [];
    breaker.onStateChange((state) => transitions.push(state));
    const summary = await runWriter({ writer, config: configOf(sim), object: 'contacts', mode: 'upsert', idProperty: 'email', records: people(300), breaker });
    expect(countOf(summary.results)).toEqual({ created: 300 });
    expect(transitions).toEqual(['half-open', 'closed']);
    expect(sim.contacts()).toHaveLength(300);
  });
});
