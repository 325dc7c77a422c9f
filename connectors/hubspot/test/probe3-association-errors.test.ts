// Associations v4 batch reads answer 207 with per-input errors. Only OBJECT_NOT_FOUND
// (NO_ASSOCIATIONS_FOUND) means "this object has no associations"; any other per-input error
// (e.g. RATE_LIMITS) must be retried, and fail the read once the retries are spent — never
// read as "no associations", which dropped links silently. Against the simulator, through
// the real @hubspot/api-client.
import { describe, expect, it } from 'vitest';
import {
  TributaryError,
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  streamKey,
  type ConfiguredAirbyteCatalog,
  type SourceMessage,
  type SyncState,
} from '@tributary/core';
import { hubspotSource } from '../src/index.js';
import { type HubspotSimulator } from '../src/simulator/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

const STREAM = 'contacts_companies_associations';

interface Outcome {
  links: string[];
  state: SyncState;
  error?: unknown;
}

/** A simulator with `contacts` contacts; every one but the last is linked to one of two companies. */
async function linkedSimulator(contacts: number): Promise<{ sim: HubspotSimulator; expected: string[] }> {
  const sim = await simulator({ searchLagMs: 0 });
  const companies = [sim.create('companies', { name: 'A' }).id, sim.create('companies', { name: 'B' }).id];
  const expected: string[] = [];
  for (let i = 0; i < contacts; i++) {
    const contact = sim.create('contacts', { email: `p${i}@example.com` }).id;
    if (i === contacts - 1) continue; // no associations: an OBJECT_NOT_FOUND error, no link
    const company = companies[i % 2]!;
    sim.associate('contacts', contact, 'companies', company);
    expected.push(`${contact}->${company}`);
  }
  return { sim, expected: expected.sort() };
}

function configOf(sim: HubspotSimulator, extra: Record<string, unknown> = {}): never {
  return parseConfig(hubspotSource.spec.connectionSpecification, {
    access_token: sim.token,
    base_url: sim.url,
    object_types: ['contacts', 'companies'],
    associations: ['contacts:companies'],
    ...extra,
  }) as never;
}

async function catalogOf(config: never): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), config);
  const stream = discovered.streams.find((s) => s.name === STREAM)!;
  return { streams: [{ stream, sync_mode: 'full_refresh', destination_sync_mode: 'append' }] };
}

/** Reads to the end or the first error, folding checkpoints into a state as the runtime commits them. */
async function read(config: never, state: SyncState, onCheckpoint?: (n: number) => void): Promise<Outcome> {
  // The source's own retry policy, with short backoffs: a retried 429 still waits its 1 s pause.
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: { ...hubspotSource.retry, maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
  const out: Outcome = { links: [], state: structuredClone(state) };
  let checkpoints = 0;
  try {
    for await (const m of expandRecordPages(hubspotSource.read(ctx, config, await catalogOf(config), structuredClone(state)) as AsyncIterable<SourceMessage>)) {
      if (m.kind === 'record') out.links.push(`${String(m.data.from_id)}->${String(m.data.to_id)}`);
      else if (m.kind === 'checkpoint') {
        out.state.streams[streamKey(m.stream, m.namespace)] = m.state;
        onCheckpoint?.(++checkpoints);
      }
    }
  } catch (error) {
    out.error = error;
  }
  return out;
}

/** Counts the associations v4 batch reads the simulator answers until `stop()`. */
function batchReads(sim: HubspotSimulator): { count: number; stop: () => void } {
  const counter = { count: 0, stop: (): void => undefined };
  counter.stop = sim.onServed((r) => {
    if (r.path.startsWith('/crm/v4/associations/') && r.path.endsWith('/batch/read')) counter.count++;
  });
  return counter;
}

describe('associations v4 batch read: per-input errors of a 207', () => {
  it('a transient per-input RATE_LIMITS error is retried: every link arrives; objects without associations cost no retry', async () => {
    const { sim, expected } = await linkedSimulator(30);
    const config = configOf(sim);
    const reads = batchReads(sim);
    sim.failAssociationInputs(1, 'RATE_LIMITS');
    const out = await read(config, { streams: {} });
    reads.stop();
    expect(out.error).toBeUndefined();
    expect(out.links.sort()).toEqual(expected);
    // One page of 30 contacts: the refused batch and its retry. The contact without
    // associations (OBJECT_NOT_FOUND) is answered "no links" in both, with no further retry.
    expect(reads.count).toBe(2);
  });

  it('a per-input error that persists fails the read after the retries, keeping the last checkpoint; the next read completes', async () => {
    // 150 contacts: two list pages (100 + 50), a checkpoint after the first.
    const { sim, expected } = await linkedSimulator(150);
    const config = configOf(sim, { rate_limit_wait_seconds: 0 });
    const first = await read(config, { streams: {} }, (n) => {
      if (n === 1) sim.failAssociationInputs(1_000, 'INTERNAL_ERROR');
    });
    expect(TributaryError.is(first.error)).toBe(true);
    expect((first.error as TributaryError).userMessage).toMatch(/INTERNAL_ERROR/);
    // Only the first page's links were handed on, and the saved state resumes after that page.
    expect(first.links).toHaveLength(100);
    expect(first.state.streams[STREAM]).toMatchObject({ full_refresh: true, after: expect.any(String) });
    sim.failAssociationInputs(0);
    const second = await read(config, first.state);
    expect(second.error).toBeUndefined();
    expect([...first.links, ...second.links].sort()).toEqual(expected);
  });
});
