/**
 * The simulator's search index is eventually consistent, as HubSpot's: each write reaches it
 * after its own delay, but once every write is due it holds each object's LATEST version.
 *
 * Found by probe10-incremental-model: an archive indexed late used to overwrite a restore
 * indexed before it (an archived snapshot always won), so search never returned the restored
 * contact again and the source — correctly trusting search — never read it; and an update
 * indexed late used to overwrite the archive after it (archiving does not move `updatedAt`, so
 * the older snapshot looked as new), so search kept returning an archived contact as live.
 * Against the simulator over HTTP with the real @hubspot/api-client; exact index delays.
 */
import { Client } from '@hubspot/api-client';
import { describe, expect, it } from 'vitest';
import { createConnectorContext, expandRecordPages, parseConfig, streamKey, type ConfiguredAirbyteCatalog, type SourceMessage, type SyncState } from '@tributary/core';
import { hubspotSource } from '../src/index.js';
import { seedHubspot, type HubspotSimulator } from '../src/simulator/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What search returns for one contact id, through the real client: its updatedAt, or undefined. */
async function searchById(sim: HubspotSimulator, id: number): Promise<string | undefined> {
  const client = new Client({ accessToken: sim.token, basePath: sim.url, numberOfApiCallRetries: 0 });
  const page = await client.crm.contacts.searchApi.doSearch({
    filterGroups: [{ filters: [{ propertyName: 'hs_object_id', operator: 'EQ' as never, value: String(id) }] }],
    limit: 1,
  });
  return page.results[0]?.updatedAt.toISOString();
}

describe('simulator search index: the latest write wins, whatever order the writes are indexed in', () => {
  it('a restore indexed before the archive it undoes: search returns the restored contact', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const x = sim.create('contacts', { email: 'x@example.com' }, Date.now() - 10_000, 0);
    sim.archive('contacts', x.id, undefined, 200);
    await sleep(2);
    const restored = sim.restore('contacts', x.id, undefined, 0);
    await sleep(300);
    expect(await searchById(sim, x.id)).toBe(new Date(restored.updatedAt).toISOString());
  });

  it('an update indexed after the archive that followed it: search does not return the archived contact', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const x = sim.create('contacts', { email: 'x@example.com' }, Date.now() - 10_000, 0);
    sim.update('contacts', x.id, { firstname: 'edited' }, undefined, 200);
    sim.archive('contacts', x.id, undefined, 0);
    await sleep(300);
    expect(await searchById(sim, x.id)).toBeUndefined();
  });

  it('the source reads a contact archived and restored between two syncs (restore indexed first)', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 20 });
    const config = parseConfig(hubspotSource.spec.connectionSpecification, {
      access_token: sim.token,
      base_url: sim.url,
      object_types: ['contacts'],
      associations: [],
      search_lag_seconds: 1,
    }) as never;
    const stream = (await hubspotSource.discover(createConnectorContext({}), config)).streams.find((s) => s.name === 'contacts')!;
    const catalog: ConfiguredAirbyteCatalog = { streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append', cursor_field: ['updatedAt'], primary_key: [['id']] }] };
    const read = async (state: SyncState): Promise<{ records: Array<{ id: string; updatedAt: string; archived: boolean }>; state: SyncState }> => {
      const out = { records: [] as Array<{ id: string; updatedAt: string; archived: boolean }>, state: structuredClone(state) };
      const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
      for await (const m of expandRecordPages(hubspotSource.read(ctx, config, catalog, structuredClone(state)) as AsyncIterable<SourceMessage>)) {
        if (m.kind === 'record') out.records.push(m.data as { id: string; updatedAt: string; archived: boolean });
        else if (m.kind === 'checkpoint') out.state.streams[streamKey(m.stream, m.namespace)] = m.state;
      }
      return out;
    };
    const first = await read({ streams: {} });
    expect(first.records).toHaveLength(20);
    const x = sim.objects('contacts')[7]!;
    // Within the 1 s look-back: both writes are indexed (300 ms) long before the next horizon passes them.
    sim.archive('contacts', x.id, undefined, 300);
    await sleep(2);
    const restored = sim.restore('contacts', x.id, undefined, 0);
    await sleep(1_400);
    const second = await read(first.state);
    expect(second.records.map((r) => [r.id, r.updatedAt, r.archived])).toEqual([[String(x.id), new Date(restored.updatedAt).toISOString(), false]]);
  });
});
