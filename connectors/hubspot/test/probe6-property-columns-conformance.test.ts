// The shared source conformance suite with `property_columns` on: records (property fields
// included) validate against the discovered schemas, resume, checkpoints and the expected
// keys hold as they do without the option (conformance.test.ts).
import { afterAll, beforeAll } from 'vitest';
import { sourceConformance } from '@tributary/conformance';
import { hubspotSource } from '../src/index.js';
import { seedHubspot, startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';

let crm: HubspotSimulator;
let emptyCrm: HubspotSimulator;

beforeAll(async () => {
  crm = await startHubspotSimulator({ searchLagMs: 0 });
  // 450 contacts, 300 of them sharing one modification millisecond: ties straddle pages.
  seedHubspot(crm, { contacts: 450, tie: 300, companies: 40, deals: 30 });
  emptyCrm = await startHubspotSimulator({ searchLagMs: 0 });
});
afterAll(() => Promise.all([crm.close(), emptyCrm.close()]));

const config = (sim: HubspotSimulator) => ({ access_token: sim.token, base_url: sim.url, search_lag_seconds: 0, property_columns: true });

sourceConformance({
  source: hubspotSource,
  config: () => config(crm),
  badConfig: () => ({ ...config(crm), access_token: 'pat-na1-not-the-token' }),
  emptyConfig: () => config(emptyCrm),
  futureState: () => ({ position: { ts: 253402300799000, id: '1' }, archived: { since: 253402300799000 } }),
  maxResumeCheckpoints: 12,
  expectedKeys: (stream, mode) => {
    if (!['contacts', 'companies', 'deals'].includes(stream.name)) return undefined;
    return crm
      .objects(stream.name)
      .filter((o) => mode === 'incremental' || !o.archived)
      .map((o) => [String(o.id)]);
  },
});
