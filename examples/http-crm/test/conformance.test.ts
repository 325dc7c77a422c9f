import { afterAll, beforeAll } from 'vitest';
import { sourceConformance, writerConformance } from '@tributary/conformance';
import { startSimulator, type CrmSimulator } from '../src/simulator.js';
import { httpCrmSource } from '../src/source.js';
import { httpCrmWriter } from '../src/writer.js';

// The suites take config factories: they run after beforeAll has started the simulators.
const simulators: CrmSimulator[] = [];
let crm: CrmSimulator;
let emptyCrm: CrmSimulator;
beforeAll(async () => {
  // 40 contacts, 6 per updated_at, 7 per page: tie groups straddle every page boundary.
  crm = await startSimulator({ contacts: 40, sameUpdatedAt: 6 });
  emptyCrm = await startSimulator();
  simulators.push(crm, emptyCrm);
});
afterAll(() => Promise.all(simulators.map((s) => s.close())));

/** The writer suite wants a fresh target per case: one simulator each. */
async function freshCrm(): Promise<Record<string, unknown>> {
  const simulator = await startSimulator();
  simulators.push(simulator);
  return { base_url: simulator.url, api_token: simulator.token };
}

sourceConformance({
  source: httpCrmSource,
  config: () => ({ base_url: crm.url, api_token: crm.token, page_size: 7 }),
  badConfig: () => ({ base_url: crm.url, api_token: 'not-the-token' }),
  emptyConfig: () => ({ base_url: emptyCrm.url, api_token: emptyCrm.token }),
});

writerConformance({
  writer: httpCrmWriter,
  config: freshCrm,
  object: 'contacts',
  idProperty: 'email',
  records: (n) => Array.from({ length: n }, (_, i) => ({ email: `person${i}@example.com`, first_name: 'Person', last_name: `No. ${i}`, company: 'Acme' })),
  invalidRecord: () => ({ email: 'not-an-email', first_name: 'Nobody' }),
  // One full window of the rate limit plus one request: the limiter must hold one back.
  rateLimitRequests: 21,
});
