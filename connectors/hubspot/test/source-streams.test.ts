// The HubSpot source's streams beyond the incremental object read, against the simulator
// through the real @hubspot/api-client: association paging, property value conversion and
// the schemas discover builds.
import { afterEach, describe, expect, it } from 'vitest';
import {
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  type ConfiguredAirbyteCatalog,
  type RecordData,
  type SourceMessage,
  type SyncState,
} from '@tributary/core';
import { hubspotSource } from '../src/index.js';
import { startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';

const sims: HubspotSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function simulator(options: Parameters<typeof startHubspotSimulator>[0] = {}): Promise<HubspotSimulator> {
  const sim = await startHubspotSimulator(options);
  sims.push(sim);
  return sim;
}

function configOf(sim: HubspotSimulator, extra: Record<string, unknown> = {}): never {
  return parseConfig(hubspotSource.spec.connectionSpecification, {
    access_token: sim.token,
    base_url: sim.url,
    object_types: ['contacts'],
    associations: [],
    search_lag_seconds: 0,
    ...extra,
  }) as never;
}

async function readAll(config: never, streams: Array<[string, 'incremental' | 'full_refresh']>, state: SyncState = { streams: {} }): Promise<Array<{ stream: string; data: RecordData }>> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), config);
  const catalog: ConfiguredAirbyteCatalog = {
    streams: streams.map(([name, mode]) => ({ stream: discovered.streams.find((s) => s.name === name)!, sync_mode: mode, destination_sync_mode: 'append' as const })),
  };
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
  const out: Array<{ stream: string; data: RecordData }> = [];
  for await (const m of expandRecordPages(hubspotSource.read(ctx, config, catalog, state) as AsyncIterable<SourceMessage>)) {
    if (m.kind === 'record') out.push({ stream: m.stream, data: m.data });
  }
  return out;
}

describe('hubspot source streams', () => {
  it('associations: an object with more associations than one batch-read page gets all of them (per-result paging)', async () => {
    const sim = await simulator({ searchLagMs: 0, limits: { associationsPageSize: 3 } });
    const companies = [0, 1, 2].map((i) => sim.create('companies', { name: `C${i}` }).id);
    const contacts = Array.from({ length: 8 }, (_, i) => sim.create('contacts', { email: `p${i}@example.com` }).id);
    // Company 0: 8 contacts (three pages of 3), company 1: 1 contact, company 2: none.
    for (const c of contacts) sim.associate('companies', companies[0]!, 'contacts', c);
    sim.associate('companies', companies[1]!, 'contacts', contacts[0]!);
    const config = configOf(sim, { object_types: ['companies', 'contacts'], associations: ['companies:contacts'] });
    const records = await readAll(config, [['companies_contacts_associations', 'full_refresh']]);
    const links = records.map((r) => `${String(r.data.from_id)}->${String(r.data.to_id)}`).sort();
    const expected = [...contacts.map((c) => `${companies[0]}->${c}`), `${companies[1]}->${contacts[0]}`].sort();
    expect(links).toEqual(expected);
  });
});
