import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '@tributary/core';
import { runtimeCrashConformance } from '@tributary/conformance';
import { forEachSampleRecord } from '@tributary/source-sample';
import { duckQuery } from './helpers.js';

// The runtime case of the conformance suite against the lake: real `tributary sync` child
// processes SIGKILLed mid-sync and resumed; the keys are then counted by a separate DuckDB
// over the files the commit log names (files of uncommitted commits must not count).
const sourceConfig = { seed: 7, tenants: 3, counts: { companies: 0, contacts: 40_000, deals: 0, activities: 120_000 }, checkpoint_every: 2_000 };
const streams = [
  { name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' },
  { name: 'activities', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' },
] as const;
const keyField: Record<string, string> = { contacts: 'id', activities: 'event_id' };
// The payload's own event_id collides with the envelope column, so the file stores it as payload_event_id.
const keyColumn: Record<string, string> = { contacts: 'id', activities: 'payload_event_id' };

runtimeCrashConformance({
  name: 'sample → lake',
  kills: 4,
  syncFile: async (workDir) => {
    const path = join(workDir, 'crash.yaml');
    await writeFile(
      path,
      JSON.stringify({
        connection: 'crash',
        source: { connector: 'sample', config: sourceConfig },
        destination: { connector: 'lake', config: { path: './lake' } },
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
    const { lakeConfigSchema, loadLakeState, openStore } = await import('../src/index.js');
    const store = openStore(parseConfig(lakeConfigSchema, { path: join(workDir, 'lake') }));
    const state = await loadLakeState(store).finally(() => store.close());
    const keys: Record<string, string[]> = {};
    for (const { name } of streams) {
      const files = [...state.files.values()].filter((f) => f.stream === name).map((f) => `'${join(workDir, 'lake', f.path)}'`);
      keys[name] = files.length === 0 ? [] : (await duckQuery(`SELECT ${keyColumn[name]} AS k FROM read_parquet([${files.join(', ')}], union_by_name = true)`)).map((r) => String(r.k));
    }
    return keys;
  },
});
