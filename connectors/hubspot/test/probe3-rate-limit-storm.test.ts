// A 429 storm of the rolling limit (another app spending the account's budget) that outlasts
// the retries of one `ctx.call`: those can all fall inside one 10-second window, so the read
// waits out whole windows, for up to rate_limit_wait_seconds, before it fails — with its
// checkpoint kept and a message naming the setting. Against the simulator, through the real
// @hubspot/api-client.
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
import { seedHubspot, type HubspotSimulator } from '../src/simulator/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

interface Outcome {
  ids: string[];
  state: SyncState;
  error?: unknown;
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

async function catalogOf(config: never): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), config);
  const stream = discovered.streams.find((s) => s.name === 'contacts')!;
  return { streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append', cursor_field: ['updatedAt'], primary_key: [['id']] }] };
}

/**
 * An incremental read; a storm of `storm` 429s starts after the first checkpoint. `ctx.call`
 * makes 3 attempts (the source declares 8, with backoffs of up to 15 s: the same give-up,
 * reached sooner); each retried 429 still waits its 1 s pause.
 */
async function readThroughStorm(sim: HubspotSimulator, config: never, storm: number): Promise<Outcome> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 } });
  const out: Outcome = { ids: [], state: { streams: {} } };
  let checkpoints = 0;
  try {
    for await (const m of expandRecordPages(hubspotSource.read(ctx, config, await catalogOf(config), { streams: {} }) as AsyncIterable<SourceMessage>)) {
      if (m.kind === 'record') out.ids.push(String(m.data.id));
      else if (m.kind === 'checkpoint') {
        out.state.streams[streamKey(m.stream, m.namespace)] = m.state;
        if (++checkpoints === 1) sim.throttle(storm);
      }
    }
  } catch (error) {
    out.error = error;
  }
  return out;
}

describe('hubspot source: a 429 storm longer than one call\'s retries', () => {
  it('is waited out window by window (TEN_SECONDLY_ROLLING): the read completes, every record once', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 500 });
    // 4 refusals: 3 attempts give up, a 10 s window is waited out, the 4th refusal is retried.
    const out = await readThroughStorm(sim, configOf(sim), 4);
    expect(out.error).toBeUndefined();
    expect(sim.stats.byStatus[429]).toBe(4);
    expect(out.ids).toHaveLength(500);
    expect(new Set(out.ids).size).toBe(500);
  }, 60_000);

  it('that outlasts rate_limit_wait_seconds fails the read with a message naming it; the checkpoint is kept', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seedHubspot(sim, { contacts: 500 });
    // 5 s is less than one 10 s window: the call fails once its own attempts are spent.
    const out = await readThroughStorm(sim, configOf(sim, { rate_limit_wait_seconds: 5 }), 1_000);
    expect(TributaryError.is(out.error, 'rate_limited')).toBe(true);
    expect((out.error as TributaryError).userMessage).toMatch(/kept rate limiting .*TEN_SECONDLY_ROLLING.*rate_limit_wait_seconds \(5\)/);
    expect(sim.stats.byStatus[429]).toBe(3);
    expect(out.ids.length).toBeGreaterThan(0);
    expect(out.state.streams.contacts).toBeDefined();
  }, 60_000);
});
