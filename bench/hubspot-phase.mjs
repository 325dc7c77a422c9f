// One phase of the hubspot benchmark, in its own process: a full sync of the simulator's
// contacts (hubspot source -> local-files destination) through the runtime. Prints one JSON line.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureCatalog, createConnectorContext, createFileStateStore, parseConfig, runSync } from '../core/dist/index.js';
import { hubspotSource } from '../connectors/hubspot/dist/index.js';
import { localFilesDestination } from '../destinations/local-files/dist/index.js';
import { peakRssMb } from './measure.mjs';

const [url, token, mode = 'full_refresh'] = process.argv.slice(2);
const dir = await mkdtemp(join(tmpdir(), 'hubspot-bench-'));
try {
  const sourceConfig = { access_token: token, base_url: url, object_types: ['contacts'], associations: [], search_lag_seconds: 0 };
  const discovered = await hubspotSource.discover(createConnectorContext({}), parseConfig(hubspotSource.spec.connectionSpecification, sourceConfig));
  const catalog = configureCatalog(discovered, [{ name: 'contacts', sync_mode: mode, destination_sync_mode: 'append' }], ['append']);
  // The catalog is discovered ahead of the sync (as a scheduler caches it): let that request
  // leave HubSpot's rolling window, so the sync starts with the account's whole budget.
  await new Promise((r) => setTimeout(r, 10_500));
  let rateLimited = 0;
  const started = Date.now();
  const result = await runSync({
    connection: 'hubspot-bench',
    source: hubspotSource,
    sourceConfig,
    destination: localFilesDestination,
    destinationConfig: { directory: join(dir, 'out') },
    catalog,
    stateStore: createFileStateStore(join(dir, 'state')),
    onEvent: (e) => {
      if (e.type === 'status' && e.reasons?.length) rateLimited++;
    },
  });
  const seconds = (Date.now() - started) / 1000;
  const records = result.streams.reduce((n, s) => n + s.committed, 0);
  process.stdout.write(
    JSON.stringify({ started_at: started, outcome: result.outcome, error: result.error?.userMessage, seconds, records, records_per_s: Math.round(records / seconds), rate_limited_statuses: rateLimited, peak_rss_mb: peakRssMb() }) + '\n',
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
