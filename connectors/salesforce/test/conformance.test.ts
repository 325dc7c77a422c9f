import { afterAll, beforeAll } from 'vitest';
import { sourceConformance, writerConformance } from '@tributary/conformance';
import { salesforceSource, salesforceWriter, startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';

// The suites run through the real jsforce against simulators started here. 300 Accounts,
// 7 per SystemModstamp, 200 per page: tie groups straddle page boundaries.
const simulators: SalesforceSimulator[] = [];
let org: SalesforceSimulator;
let emptyOrg: SalesforceSimulator;
beforeAll(async () => {
  org = await startSalesforceSimulator({ records: { Account: 300, Contact: 120, Opportunity: 45 }, tieGroup: 7, queryPageSize: 40 });
  emptyOrg = await startSalesforceSimulator({ records: { Account: 3 } });
  simulators.push(org, emptyOrg);
});
afterAll(() => Promise.all(simulators.map((s) => s.close())));

function credentials(sim: SalesforceSimulator): Record<string, unknown> {
  return { login_url: sim.url, client_id: sim.clientId, client_secret: sim.clientSecret, refresh_token: sim.refreshToken };
}

/** The writer suite wants a fresh target per case: one simulator each. */
async function freshOrg(): Promise<Record<string, unknown>> {
  const sim = await startSalesforceSimulator();
  simulators.push(sim);
  return credentials(sim);
}

sourceConformance({
  source: salesforceSource,
  config: () => ({ ...credentials(org), page_size: 200, bulk: 'never' }),
  badConfig: () => ({ ...credentials(org), refresh_token: 'not-a-refresh-token' }),
  emptyConfig: () => ({ ...credentials(emptyOrg), bulk: 'never' }),
  futureState: () => ({ cursor: '9999-12-31T23:59:59.000Z' }),
  // The truth from the simulator's org: every stored record (none is deleted here).
  expectedKeys: (stream) => org.records(stream.name, { all: true }).map((r) => [r.Id]),
});

writerConformance({
  writer: salesforceWriter,
  config: freshOrg,
  object: 'Account',
  idProperty: 'External_Id__c',
  records: (n) => Array.from({ length: n }, (_, i) => ({ External_Id__c: `ext-${i}`, Name: `Account ${i}`, Industry: 'Energy', NumberOfEmployees: i, Active__c: i % 2 === 0 })),
  invalidRecord: () => ({ External_Id__c: `bad-${Math.random().toString(36).slice(2)}`, Name: 'x'.repeat(300) }),
  // One full window of the rate limit plus one request: the limiter must hold one back.
  rateLimitRequests: 6,
});
