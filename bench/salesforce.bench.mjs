// salesforce: the Salesforce source reading Accounts from the Salesforce simulator (started
// here, in this process; the source runs in a child process per phase) through the REST API
// (query pages of 2,000 rows) and through Bulk API 2.0 (CSV result pages of 50,000 rows by
// Sforce-Locator): records/s end to end through the runtime, and API calls per 10k records
// counted by the simulator (every request counted against the daily limit).
// Targets (salesforce issue): API calls per 10k records = the minimum the page sizes allow
// (REST: 5 query pages per 10k; Bulk: 0.2 result pages per 10k, plus the job's fixed calls).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SALESFORCE_LIMITS, startSalesforceSimulator } from '@tributary/connector-salesforce';
import { print, runPhase } from './measure.mjs';

export async function run(args) {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: 'string', default: '200000' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const records = Number(values.records);
  const rounds = Number(values.rounds);
  const seedStarted = Date.now();
  const sim = await startSalesforceSimulator({ records: { Account: records }, tieGroup: 20 });
  print({ bench: 'salesforce', seeded: records, seed_ms: Date.now() - seedStarted });
  const script = fileURLToPath(new URL('./salesforce-phase.mjs', import.meta.url));
  const results = { rest: [], bulk: [] };
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const phase of ['rest', 'bulk']) {
        const before = sim.stats.apiCalls;
        const log = [];
        const stop = sim.onRequest((r) => log.push(r));
        const result = await runPhase(script, [phase, sim.url, sim.clientId, sim.clientSecret, sim.refreshToken]);
        stop();
        const apiCalls = sim.stats.apiCalls - before;
        const dataPages = log.filter((r) => r.rows !== undefined && r.rows > 0).length;
        const line = {
          bench: 'salesforce',
          round,
          ...result,
          api_calls: apiCalls,
          data_pages: dataPages,
          other_calls: apiCalls - dataPages,
          api_calls_per_10k: Math.round((apiCalls / result.records) * 10_000 * 100) / 100,
        };
        print(line);
        results[phase].push(line);
      }
    }
  } finally {
    await sim.close();
  }
  const best = (list) => list.reduce((a, b) => (b.records_per_s > a.records_per_s ? b : a));
  const rest = best(results.rest);
  const bulk = best(results.bulk);
  const restFloor = Math.ceil(records / SALESFORCE_LIMITS.queryPageSize);
  const bulkFloor = Math.ceil(records / SALESFORCE_LIMITS.bulkPageSize);
  const per10k = (n) => Math.round((n / records) * 10_000 * 100) / 100;
  print({
    bench: 'salesforce',
    summary: true,
    records,
    rest_records_per_s: rest.records_per_s,
    bulk_records_per_s: bulk.records_per_s,
    rest_api_calls: rest.api_calls,
    rest_api_calls_per_10k: rest.api_calls_per_10k,
    rest_page_floor_per_10k: per10k(restFloor),
    bulk_api_calls: bulk.api_calls,
    bulk_api_calls_per_10k: bulk.api_calls_per_10k,
    bulk_page_floor_per_10k: per10k(bulkFloor),
    // Calls that are not data pages: discover (describeGlobal + describe) in the phase, the
    // read's own describe, and for Bulk the job creation and its status polls.
    rest_other_calls: rest.other_calls,
    bulk_other_calls: bulk.other_calls,
    meets: {
      rest_pages_at_floor: rest.data_pages === restFloor,
      bulk_pages_at_floor: bulk.data_pages === bulkFloor,
    },
    peak_rss_mb: Math.max(rest.peak_rss_mb, bulk.peak_rss_mb),
  });
}
