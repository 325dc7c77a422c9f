import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runtimeCrashConformance } from '@tributary/conformance';
import { forEachSampleRecord } from '@tributary/source-sample';
import { fileName } from '../src/index.js';

// The runtime case of the conformance suite for the local destination, fed by the sample
// source in every sync mode the destination supports.
const sourceConfig = {
  seed: 11,
  tenants: 4,
  counts: { companies: 3_000, contacts: 60_000, deals: 20_000, activities: 250_000 },
  checkpoint_every: 2_000,
};
const streams = [
  { name: 'companies', sync_mode: 'full_refresh', destination_sync_mode: 'overwrite' },
  { name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' },
  { name: 'deals', sync_mode: 'full_refresh', destination_sync_mode: 'append' },
  { name: 'activities', sync_mode: 'incremental', destination_sync_mode: 'append' },
] as const;
const keyField: Record<string, string> = { companies: 'id', contacts: 'id', deals: 'id', activities: 'event_id' };

runtimeCrashConformance({
  name: 'sample → local',
  kills: 6,
  syncFile: async (workDir) => {
    const path = join(workDir, 'crash.yaml');
    await writeFile(
      path,
      JSON.stringify({
        connection: 'crash',
        source: { connector: 'sample', config: sourceConfig },
        destination: { connector: 'local', config: { directory: './out' } },
        streams,
        batching: { max_records: 2_000, commit_interval_ms: 50 },
      }),
    );
    return path;
  },
  expectedKeys: async () => {
    const keys: Record<string, string[]> = {};
    await forEachSampleRecord(sourceConfig, streams.map((s) => s.name), (stream, record) => (keys[stream] ??= []).push(String(record[keyField[stream]!])));
    return keys;
  },
  readBack: async (workDir) => {
    const keys: Record<string, string[]> = {};
    for (const { name } of streams) {
      const text = await readFile(join(workDir, 'out', fileName(name)), 'utf8').catch(() => '');
      keys[name] = text
        .split('\n')
        .filter(Boolean)
        .map((line) => String((JSON.parse(line) as Record<string, unknown>)[keyField[name]!]));
    }
    return keys;
  },
});
