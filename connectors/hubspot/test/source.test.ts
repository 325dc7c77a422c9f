// The HubSpot source against the simulator, through the real @hubspot/api-client: ties and
// the 10,000-result search cap, writes while a sync runs with a lagging index, deletions,
// a 429 storm, and a DAILY 429 that stops with a resumable state.
import { describe, expect, it } from 'vitest';
import {
  TributaryError,
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
import { seedHubspot, type HubspotSimulator } from '../src/simulator/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();


type Mode = 'incremental' | 'full_refresh';

async function catalogFor(config: Record<string, unknown>, streams: Array<[string, Mode]>): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), config as never);
  return {
    streams: streams.map(([name, mode]) => {
      const stream = discovered.streams.find((s) => s.name === name)!;
      return { stream, sync_mode: mode, destination_sync_mode: 'append' as const, cursor_field: ['updatedAt'], primary_key: [['id']] };
    }),
  };
}

interface ReadOutcome {
  records: Array<{ stream: string; id: string; updatedAt: string; archived: boolean; data: RecordData }>;
  state: SyncState;
  checkpoints: number;
  error?: unknown;
}

/** Reads to the end (or the first error), folding checkpoints into a state as the runtime commits them. */
async function read(config: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog, state: SyncState, onCheckpoint?: (n: number) => void): Promise<ReadOutcome> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
  const out: ReadOutcome = { records: [], state: structuredClone(state), checkpoints: 0 };
  const parsed = parseConfig(hubspotSource.spec.connectionSpecification, config) as never;
  try {
    for await (const m of expandRecordPages(hubspotSource.read(ctx, parsed, catalog, structuredClone(state)) as AsyncIterable<SourceMessage>)) {
      if (m.kind === 'record') {
        const d = m.data as { id: string; updatedAt: string; archived: boolean };
        out.records.push({ stream: m.stream, id: d.id, updatedAt: d.updatedAt, archived: d.archived, data: m.data });
      } else if (m.kind === 'checkpoint') {
        out.state.streams[streamKey(m.stream, m.namespace)] = m.state;
        out.checkpoints++;
        onCheckpoint?.(out.checkpoints);
      }
    }
  } catch (error) {
    out.error = error;
  }
  return out;
}

function configOf(sim: HubspotSimulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { access_token: sim.token, base_url: sim.url, object_types: ['contacts'], associations: [], search_lag_seconds: 0, ...extra };
}

function duplicates(ids: string[]): string[] {
  const seen = new Set<string>();
  return ids.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

describe('hubspot source', () => {
  it('300 records sharing one timestamp across pages, and more than 10,000 matching records: zero missed, zero duplicated', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    // 10,400 contacts: 300 share one millisecond, and later a second tie of 250 sits at a
    // page boundary; the rest are one second apart. Every one matches the first query.
    seedHubspot(sim, { contacts: 10_400, tie: 300 });
    const late = sim.objects('contacts').slice(5_000, 5_250);
    const tieAt = Date.parse('2024-06-01T00:00:00Z');
    for (const c of late) sim.update('contacts', c.id, { num_notes: '1' }, tieAt);
    let searches400 = 0;
    sim.onServed((r) => {
      if (r.search && r.status === 400) searches400++;
    });
    const config = configOf(sim);
    const catalog = await catalogFor(config, [['contacts', 'incremental']]);
    const first = await read(config, catalog, { streams: {} });
    expect(first.error).toBeUndefined();
    const ids = first.records.map((r) => r.id);
    const expected = sim.objects('contacts').map((c) => String(c.id));
    expect(expected.length).toBeGreaterThan(10_000);
    expect(duplicates(ids)).toEqual([]);
    expect(expected.filter((id) => !ids.includes(id))).toEqual([]);
    expect(searches400).toBe(0);
    expect(first.checkpoints).toBeGreaterThan(50);
    // And from the final state: nothing new.
    const again = await read(config, catalog, first.state);
    expect(again.records).toEqual([]);
  }, 120_000);

  it('writes while a sync runs, with a lagging search index: the next syncs read every change once', async () => {
    const sim = await simulator({ searchLagMs: 400 });
    seedHubspot(sim, { contacts: 900, tie: 300 });
    // A look-back longer than the index lag (it varies per write, up to 400 ms).
    const config = configOf(sim, { search_lag_seconds: 1 });
    const catalog = await catalogFor(config, [['contacts', 'incremental']]);
    await new Promise((r) => setTimeout(r, 1_100));
    const all: ReadOutcome['records'] = [];
    let state: SyncState = { streams: {} };
    const contacts = sim.objects('contacts');
    // A writer busy during the first two syncs: updates and creates every few milliseconds.
    let written = 0;
    const writer = setInterval(() => {
      written++;
      if (written % 3 === 0) sim.create('contacts', { email: `new${written}@example.com`, firstname: 'New' });
      else sim.update('contacts', contacts[(written * 37) % contacts.length]!.id, { firstname: `changed ${written}` });
    }, 5);
    try {
      for (let round = 0; round < 2; round++) {
        const next = await read(config, catalog, state);
        expect(next.error).toBeUndefined();
        all.push(...next.records);
        state = next.state;
      }
    } finally {
      clearInterval(writer);
    }
    expect(written).toBeGreaterThan(20);
    // Then syncs until the horizon passed every write.
    for (let round = 0; round < 2; round++) {
      await new Promise((r) => setTimeout(r, 1_100));
      const next = await read(config, catalog, state);
      expect(next.error).toBeUndefined();
      all.push(...next.records);
      state = next.state;
    }
    // Zero duplicated: no version (id, updatedAt) read twice.
    expect(duplicates(all.map((r) => `${r.id}@${r.updatedAt}`))).toEqual([]);
    // Zero missed: the last version read of every contact is its current one.
    const lastRead = new Map(all.map((r) => [r.id, r.updatedAt]));
    const stale = sim.objects('contacts').filter((c) => lastRead.get(String(c.id)) !== new Date(c.updatedAt).toISOString());
    expect(stale.map((c) => c.id)).toEqual([]);
  }, 60_000);

  it('look-back: a write indexed after a later write is not skipped', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 50 });
    const config = configOf(sim, { search_lag_seconds: 1 });
    const catalog = await catalogFor(config, [['contacts', 'incremental']]);
    const first = await read(config, catalog, { streams: {} });
    expect(first.records.length).toBe(50);
    // A is written first but reaches the search index 300 ms later; B, written after it, at once.
    const a = sim.update('contacts', sim.objects('contacts')[3]!.id, { firstname: 'A' }, undefined, 300);
    await new Promise((r) => setTimeout(r, 5));
    const b = sim.create('contacts', { email: 'b@example.com', firstname: 'B' }, undefined, 0);
    const second = await read(config, catalog, first.state);
    await new Promise((r) => setTimeout(r, 1_100));
    const third = await read(config, catalog, second.state);
    const read2 = [...second.records, ...third.records].map((r) => r.id).sort();
    expect(read2).toEqual([String(a.id), String(b.id)].sort());
  });

  it('deletions: objects archived since the last sync come once, with archived: true', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 120 });
    const config = configOf(sim);
    const catalog = await catalogFor(config, [['contacts', 'incremental']]);
    const first = await read(config, catalog, { streams: {} });
    expect(first.records.filter((r) => r.archived)).toEqual([]);
    const gone = sim.objects('contacts').slice(10, 15).map((c) => c.id);
    for (const id of gone) sim.archive('contacts', id);
    const second = await read(config, catalog, first.state);
    expect(second.records.map((r) => [r.id, r.archived]).sort()).toEqual(gone.map((id) => [String(id), true]).sort());
    const third = await read(config, catalog, second.state);
    expect(third.records).toEqual([]);
  });

  it('a contact edited, then archived within the look-back, is not resurrected by a later sync', async () => {
    // Search trails an archive as it trails any write: until the index has it, search still
    // returns the object as live. The edit is read by the sync after its look-back passed; the
    // archive must not be emitted before that live version, or the last word is "live".
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 20 });
    const config = configOf(sim, { search_lag_seconds: 2 });
    const catalog = await catalogFor(config, [['contacts', 'incremental']]);
    const first = await read(config, catalog, { streams: {} });
    expect(first.records.length).toBe(20);
    const x = sim.objects('contacts')[5]!;
    sim.update('contacts', x.id, { firstname: 'edited' }, undefined, 0);
    await new Promise((r) => setTimeout(r, 1_000));
    // Indexed 1.9 s later: within the 2 s look-back.
    sim.archive('contacts', x.id, undefined, 1_900);
    const archivedAt = Date.now();
    const syncs = [await read(config, catalog, first.state)];
    // The edit is now older than the look-back; the archive is not yet in the index.
    await new Promise((r) => setTimeout(r, Math.max(0, archivedAt + 1_200 - Date.now())));
    syncs.push(await read(config, catalog, syncs[0]!.state));
    await new Promise((r) => setTimeout(r, 2_100));
    syncs.push(await read(config, catalog, syncs[1]!.state));
    const versions = syncs.flatMap((s) => s.records).filter((r) => r.id === String(x.id)).map((r) => (r.archived ? 'archived' : 'live'));
    expect(versions).toEqual(['live', 'archived']);
    expect(syncs.every((s) => s.error === undefined)).toBe(true);
  }, 30_000);

  it('a 429 storm (TEN_SECONDLY_ROLLING, then SECONDLY on search) is ridden out: every record once', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 700, tie: 300 });
    const config = configOf(sim);
    const catalog = await catalogFor(config, [['contacts', 'incremental']]);
    const out = await read(config, catalog, { streams: {} }, (n) => {
      if (n === 1) sim.throttle(3);
      if (n === 3) sim.throttle(2, 'SECONDLY');
    });
    expect(out.error).toBeUndefined();
    expect(sim.stats.byStatus[429]).toBe(5);
    const ids = out.records.map((r) => r.id);
    expect(duplicates(ids)).toEqual([]);
    expect(new Set(ids).size).toBe(700);
    // The connector never pushed the account past its budget.
    expect(sim.stats.maxInWindow).toBeLessThanOrEqual(sim.limits.burst);
  }, 60_000);

  it('an account with a lower limit: the limiter adapts to X-HubSpot-RateLimit-Max and never draws a 429', async () => {
    // 10 requests per rolling 2 s instead of 190 per 10 s.
    const sim = await simulator({ searchLagMs: 0, limits: { burst: 10, burstWindowMs: 2_000 } });
    seedHubspot(sim, { contacts: 2_500 });
    const config = configOf(sim);
    const catalog = await catalogFor(config, [['contacts', 'full_refresh']]);
    await new Promise((r) => setTimeout(r, 2_000));
    const out = await read(config, catalog, { streams: {} });
    expect(out.error).toBeUndefined();
    expect(new Set(out.records.map((r) => r.id)).size).toBe(2_500);
    expect(sim.stats.byStatus[429] ?? 0).toBe(0);
    expect(sim.stats.maxInWindow).toBeLessThanOrEqual(10);
  }, 60_000);

  it('a DAILY 429 stops the read at once with a rate_limited error; resuming from the committed state completes it', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 950, tie: 300 });
    const config = configOf(sim);
    const catalog = await catalogFor(config, [['contacts', 'full_refresh']]);
    // properties + 4 list pages, then the quota is gone.
    sim.setDailyRemaining(5);
    const first = await read(config, catalog, { streams: {} });
    expect(TributaryError.is(first.error, 'rate_limited')).toBe(true);
    expect((first.error as TributaryError).userMessage).toMatch(/daily/i);
    // Stopped cleanly: exactly one request was refused, none retried.
    expect(sim.stats.byStatus[429]).toBe(1);
    expect(first.records.length).toBe(400);
    sim.resetDaily();
    const second = await read(config, catalog, first.state);
    expect(second.error).toBeUndefined();
    const ids = [...first.records, ...second.records].map((r) => r.id);
    expect(duplicates(ids)).toEqual([]);
    expect(new Set(ids).size).toBe(950);
  });

  it('associations stream: every contact->company link once', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 250, companies: 7 });
    const config = { ...configOf(sim), associations: ['contacts:companies'] };
    const discovered = await hubspotSource.discover(createConnectorContext({}), parseConfig(hubspotSource.spec.connectionSpecification, config) as never);
    const stream = discovered.streams.find((s) => s.name === 'contacts_companies_associations')!;
    const catalog: ConfiguredAirbyteCatalog = { streams: [{ stream, sync_mode: 'full_refresh', destination_sync_mode: 'append' }] };
    const ctx = createConnectorContext({});
    const links: string[] = [];
    for await (const m of expandRecordPages(hubspotSource.read(ctx, parseConfig(hubspotSource.spec.connectionSpecification, config) as never, catalog, { streams: {} }))) {
      if (m.kind === 'record') links.push(`${String(m.data.from_id)}->${String(m.data.to_id)}`);
    }
    const expected = sim.objects('contacts').filter((_, i) => i % 3 === 0).length;
    expect(links.length).toBe(expected);
    expect(duplicates(links)).toEqual([]);
  });
});

describe('hubspot source streams', () => {
  it('associations: an object with more associations than one batch-read page gets all of them (per-result paging)', async () => {
    const sim = await simulator({ searchLagMs: 0, limits: { associationsPageSize: 3 } });
    const companies = [0, 1, 2].map((i) => sim.create('companies', { name: `C${i}` }).id);
    const contacts = Array.from({ length: 8 }, (_, i) => sim.create('contacts', { email: `p${i}@example.com` }).id);
    // Company 0: 8 contacts (three pages of 3), company 1: 1 contact, company 2: none.
    for (const c of contacts) sim.associate('companies', companies[0]!, 'contacts', c);
    sim.associate('companies', companies[1]!, 'contacts', contacts[0]!);
    const config = configOf(sim, { object_types: ['companies', 'contacts'], associations: ['companies:contacts'] });
    const outcome = await read(config, await catalogFor(config, [['companies_contacts_associations', 'full_refresh']]), { streams: {} });
    expect(outcome.error).toBeUndefined();
    const links = outcome.records.map((r) => `${String(r.data.from_id)}->${String(r.data.to_id)}`).sort();
    const expected = [...contacts.map((c) => `${companies[0]}->${c}`), `${companies[1]}->${contacts[0]}`].sort();
    expect(links).toEqual(expected);
  });
});
