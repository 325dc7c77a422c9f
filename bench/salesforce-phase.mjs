// One phase of the salesforce benchmark, in its own process (the simulator runs in the
// parent). Prints one JSON line.
//   rest|bulk <simulator url> <client id> <client secret> <refresh token>
// Reads every Account through the runtime (runSync) into a destination that drops records,
// with the state kept in memory: what is measured is the source, jsforce and the runtime.
import { configureCatalog, createConnectorContext, defineDestination, parseConfig, runSync } from '@tributary/core';
import { salesforceSource } from '@tributary/connector-salesforce';
import { peakRssMb } from './measure.mjs';

const [mode, url, clientId, clientSecret, refreshToken] = process.argv.slice(2);
const config = {
  login_url: url,
  client_id: clientId,
  client_secret: clientSecret,
  refresh_token: refreshToken,
  streams: ['Account'],
  bulk: mode === 'bulk' ? 'always' : 'never',
  bulk_poll_interval_ms: 250,
  hard_deletes: false,
};

let records = 0;
let pages = 0;
const nullDestination = defineDestination({
  name: 'null',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append', 'append_dedup', 'overwrite'] },
  delivery: 'upsert',
  async check() {},
  async open() {
    return {
      async write(batch) {
        records += batch.records.length;
        pages++;
      },
      async commit() {},
      async close() {},
    };
  },
});
let saved;
const stateStore = {
  location: 'memory:',
  load: async () => saved,
  save: async (_c, s) => void (saved = s),
  reset: async () => void (saved = undefined),
  list: async () => [],
  close: async () => {},
};

const parsed = parseConfig(salesforceSource.spec.connectionSpecification, config);
const catalog = configureCatalog(await salesforceSource.discover(createConnectorContext({}), parsed), [{ name: 'Account', sync_mode: 'incremental' }], ['append_dedup']);
const started = process.hrtime.bigint();
const result = await runSync({
  connection: 'bench',
  source: salesforceSource,
  sourceConfig: config,
  destination: nullDestination,
  destinationConfig: {},
  catalog,
  stateStore,
  batching: { maxRecords: 2000, commitIntervalMs: 1000 },
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (result.outcome !== 'completed') throw new Error(`sync ${result.outcome}: ${result.error?.userMessage}`);
process.stdout.write(
  JSON.stringify({ phase: mode, records, seconds: Math.round(seconds * 1000) / 1000, records_per_s: Math.round(records / seconds), batches: pages, peak_rss_mb: peakRssMb() }) + '\n',
);
