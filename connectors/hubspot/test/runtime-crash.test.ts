// Crash and resume: a real `tributary sync` child process (hubspot -> local files) is
// SIGKILLed at random points and restarted, with the HubSpot simulator in this process.
// The destination must end with every contact and company exactly once.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runtimeCrashConformance } from '@tributary/conformance';
import { seedHubspot, startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';

let sim: HubspotSimulator;
beforeAll(async () => {
  // A little latency per answer, so that a sync lasts long enough to be killed mid-way.
  sim = await startHubspotSimulator({ searchLagMs: 0, latencyMs: 10 });
  seedHubspot(sim, { contacts: 2_400, tie: 300, companies: 600 });
});
afterAll(() => sim.close());

const streams = [
  { name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' },
  { name: 'companies', sync_mode: 'full_refresh', destination_sync_mode: 'overwrite' },
] as const;

runtimeCrashConformance({
  name: 'hubspot → local',
  kills: 5,
  syncFile: async (workDir) => {
    const path = join(workDir, 'crash.yaml');
    await writeFile(
      path,
      JSON.stringify({
        connection: 'hubspot-crash',
        source: {
          connector: 'hubspot',
          config: { access_token: sim.token, base_url: sim.url, object_types: ['contacts', 'companies'], associations: [], search_lag_seconds: 0 },
        },
        destination: { connector: 'local', config: { directory: './out' } },
        streams,
        batching: { max_records: 200, commit_interval_ms: 20 },
      }),
    );
    return path;
  },
  expectedKeys: async () => ({
    contacts: sim.objects('contacts').map((c) => String(c.id)),
    companies: sim.objects('companies').map((c) => String(c.id)),
  }),
  readBack: async (workDir) => {
    const keys: Record<string, string[]> = {};
    for (const { name } of streams) {
      const text = await readFile(join(workDir, 'out', `${name}.jsonl`), 'utf8').catch(() => '');
      keys[name] = text
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => String((JSON.parse(line) as { id: string }).id));
    }
    return keys;
  },
  timeoutMs: 120_000,
});
