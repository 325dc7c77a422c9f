import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runtimeCrashConformance } from '@tributary/conformance';
import { startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { credentials } from './helpers.js';

/**
 * Crash and resume: a real `tributary sync` child process (the built CLI, which loads this
 * package's dist/) reads Accounts from the simulator running here in the parent process,
 * into the local-files destination, and is SIGKILLed at random points, then SIGTERMed:
 * every Account must end up in the destination exactly once.
 */
let sim: SalesforceSimulator;
beforeAll(async () => {
  sim = await startSalesforceSimulator({ records: { Account: 12_000 }, tieGroup: 13, queryPageSize: 400 });
});
afterAll(() => sim?.close());

runtimeCrashConformance({
  name: 'salesforce (simulator) → local',
  kills: 4,
  maxDelayMs: 300,
  syncFile: async (workDir) => {
    const path = join(workDir, 'crash.json');
    await writeFile(
      path,
      JSON.stringify({
        connection: 'salesforce-crash',
        source: { connector: 'salesforce', config: { ...credentials(sim), bulk: 'never', streams: ['Account'] } },
        destination: { connector: 'local', config: { directory: './out' } },
        streams: [{ name: 'Account', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
        batching: { max_records: 400, commit_interval_ms: 20 },
      }),
    );
    return path;
  },
  expectedKeys: async () => ({ Account: sim.records('Account').map((r) => String(r.Id)) }),
  readBack: async (workDir) => {
    const text = await readFile(join(workDir, 'out', 'Account.jsonl'), 'utf8').catch(() => '');
    return {
      Account: text
        .split('\n')
        .filter(Boolean)
        .map((line) => String((JSON.parse(line) as { Id: unknown }).Id)),
    };
  },
});
