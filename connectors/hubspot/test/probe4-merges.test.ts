// Merged records: HubSpot merges two records into a NEW record with a new id (developer
// changelog "Updated merge functionality for contacts and companies"); both old ids leave
// the CRM without an archive — no modification date of theirs moves, the archived listing
// does not hold them — and are listed in the new record's `hs_merged_object_ids`. An
// incremental sync must delete them downstream, or a keyed destination keeps both old
// contacts live next to the merged one. The merge is made through the real
// @hubspot/api-client against the simulator.
import { Client } from '@hubspot/api-client';
import { describe, expect, it } from 'vitest';
import {
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  streamKey,
  type ConfiguredAirbyteCatalog,
  type RecordData,
  type SourceMessage,
  type SyncState,
} from '@tributary/core';
import { hubspotSource } from '../src/index.js';
import { type HubspotSimulator } from '../src/simulator/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

function configOf(sim: HubspotSimulator): never {
  return parseConfig(hubspotSource.spec.connectionSpecification, {
    access_token: sim.token,
    base_url: sim.url,
    object_types: ['contacts'],
    associations: [],
    search_lag_seconds: 0,
  }) as never;
}

async function catalogOf(config: never): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), config);
  const stream = discovered.streams.find((s) => s.name === 'contacts')!;
  return { streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', cursor_field: ['updatedAt'], primary_key: [['id']] }] };
}

/** One incremental sync; returns its records and the state it ends with. */
async function sync(config: never, catalog: ConfiguredAirbyteCatalog, state: SyncState): Promise<{ records: RecordData[]; state: SyncState }> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
  const out = { records: [] as RecordData[], state: structuredClone(state) };
  for await (const m of expandRecordPages(hubspotSource.read(ctx, config, catalog, structuredClone(state)) as AsyncIterable<SourceMessage>)) {
    if (m.kind === 'record') out.records.push(m.data);
    else if (m.kind === 'checkpoint') out.state.streams[streamKey(m.stream, m.namespace)] = m.state;
  }
  return out;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('hubspot source: merged records', () => {
  it('an incremental sync deletes both merged-away ids: the destination holds the merged contact only', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const a = sim.create('contacts', { email: 'ann@example.com', firstname: 'Ann' });
    const b = sim.create('contacts', { email: 'ann.smith@example.com', firstname: 'Ann', lastname: 'Smith' });
    const c = sim.create('contacts', { email: 'bob@example.com', firstname: 'Bob' });
    const config = configOf(sim);
    const catalog = await catalogOf(config);

    // The destination, keyed on id: the last record of an id wins, archived ones are deletions.
    const destination = new Map<string, RecordData>();
    const apply = (records: RecordData[]): void => {
      for (const r of records) destination.set(String(r.id), r);
    };
    await tick();
    const first = await sync(config, catalog, { streams: {} });
    apply(first.records);
    expect([...destination.keys()].sort()).toEqual([a.id, b.id, c.id].map(String).sort());

    await tick();
    const client = new Client({ accessToken: sim.token, basePath: sim.url, numberOfApiCallRetries: 0 });
    const merged = await client.crm.contacts.basicApi.merge({ primaryObjectId: String(a.id), objectIdToMerge: String(b.id) });
    expect(merged.id).not.toBe(String(a.id));
    expect(merged.id).not.toBe(String(b.id));
    await tick();

    const second = await sync(config, catalog, first.state);
    apply(second.records);
    const live = [...destination.values()].filter((r) => r.archived !== true).map((r) => String(r.id));
    expect(live.sort()).toEqual([String(c.id), merged.id].sort());
    expect(destination.get(String(a.id))).toMatchObject({ archived: true });
    expect(destination.get(String(b.id))).toMatchObject({ archived: true });
    const survivor = destination.get(merged.id) as { properties: Record<string, unknown> };
    expect(survivor.properties.email).toBe('ann@example.com');
    expect(String(survivor.properties.hs_merged_object_ids).split(';').sort()).toEqual([String(a.id), String(b.id)].sort());

    // Nothing new since: the next sync reads nothing (the tombstones are not re-read).
    await tick();
    const third = await sync(config, catalog, second.state);
    expect(third.records).toEqual([]);
  }, 30_000);
});
