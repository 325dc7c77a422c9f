import { afterAll, beforeAll } from 'vitest';
import { sourceConformance, writerConformance } from '@tributary/conformance';
import { hubspotSource, hubspotWriter } from '../src/index.js';
import { seedHubspot, startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';

const simulators: HubspotSimulator[] = [];
let crm: HubspotSimulator;
let emptyCrm: HubspotSimulator;

beforeAll(async () => {
  // Search indexes at once here; the look-back case has its own test.
  crm = await startHubspotSimulator({ searchLagMs: 0 });
  // 450 contacts, 300 of them sharing one modification millisecond: ties straddle pages.
  seedHubspot(crm, { contacts: 450, tie: 300, companies: 40, deals: 30 });
  emptyCrm = await startHubspotSimulator({ searchLagMs: 0 });
  simulators.push(crm, emptyCrm);
});
afterAll(() => Promise.all(simulators.map((s) => s.close())));

const config = (sim: HubspotSimulator) => ({ access_token: sim.token, base_url: sim.url, search_lag_seconds: 0 });

sourceConformance({
  source: hubspotSource,
  config: () => config(crm),
  badConfig: () => ({ ...config(crm), access_token: 'pat-na1-not-the-token' }),
  emptyConfig: () => config(emptyCrm),
  futureState: () => ({ position: { ts: 253402300799000, id: '1' }, archived: { since: 253402300799000 } }),
  maxResumeCheckpoints: 12,
  // The truth from the simulator's store: a listing returns the live objects; a first
  // incremental read also reports archived ones (as archived: true).
  expectedKeys: (stream, mode) => {
    if (!['contacts', 'companies', 'deals'].includes(stream.name)) return undefined;
    return crm
      .objects(stream.name)
      .filter((o) => mode === 'incremental' || !o.archived)
      .map((o) => [String(o.id)]);
  },
});

async function freshCrm(): Promise<Record<string, unknown>> {
  const sim = await startHubspotSimulator({ searchLagMs: 0 });
  simulators.push(sim);
  return { access_token: sim.token, base_url: sim.url };
}

writerConformance({
  writer: hubspotWriter,
  config: freshCrm,
  object: 'contacts',
  idProperty: 'email',
  records: (n) => Array.from({ length: n }, (_, i) => ({ email: `person${i}@example.com`, firstname: 'Person', lastname: `No. ${i}`, company: 'Acme' })),
  invalidRecord: () => ({ email: 'not-an-email', firstname: 'Nobody' }),
  // One full window of the writer's budget plus one: the limiter must hold one back.
  rateLimitRequests: hubspotWriter.rateLimit.requests! + 1,
});
