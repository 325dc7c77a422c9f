import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '@tributary/core';
import { lakeConfigSchema, loadLakeState, openStore } from '../src/index.js';
import { duckQuery, runCli } from './helpers.js';

// Deterministic crash in the one window where a replay re-delivers rows already published:
// after the lake committed (log entry written) and before the runtime stored the checkpoint.
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-lake-window-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

it('SIGKILL between the lake commit and the checkpoint: the rerun skips the replayed rows, every key once', async () => {
  const sync = join(dir, 'window.json');
  await writeFile(
    sync,
    JSON.stringify({
      connection: 'window',
      source: { connector: 'sample', config: { seed: 9, tenants: 2, counts: { companies: 0, contacts: 12_000, deals: 0, activities: 0 }, checkpoint_every: 5_000, page_size: 500 } },
      destination: { connector: join(__dirname, 'fixtures', 'lake-killer.mjs'), config: { path: './lake' } },
      streams: [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_records: 500, commit_interval_ms: 5 },
    }),
  );
  const killed = await runCli(['sync', sync, '--json'], dir, { LAKE_KILL_AFTER_COMMITS: '3' });
  expect(killed.code, killed.stderr).toBeNull();
  const store = openStore(parseConfig(lakeConfigSchema, { path: join(dir, 'lake') }));
  const state = await loadLakeState(store).finally(() => store.close());
  const committedRows = [...state.files.values()].reduce((n, f) => n + f.rows, 0);
  expect(committedRows).toBeGreaterThan(0);

  const rerun = await runCli(['sync', sync, '--json'], dir);
  expect(rerun.code, rerun.stderr).toBe(0);
  const [counts] = await duckQuery(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('${join(dir, 'lake', 'data', 'contacts', '*', '*', '*.parquet')}')`);
  expect(counts).toEqual({ n: 12_000, ids: 12_000 });
  const skipped = Number(/(\d+) replayed row\(s\) already in the lake skipped/.exec(rerun.stdout)?.[1] ?? '0');
  // The crash landed in the window: rows committed past the last stored checkpoint came again.
  expect(skipped).toBeGreaterThan(0);

});
