import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, loadLakeState, openLakeReader, openStore, type CompactionResult, type LakeStore } from '../src/index.js';
import { retireExpired } from '../src/maintenance.js';
import { runCli } from './helpers.js';

// Retention and compaction committing at the same time: the compaction wins the race for
// the next log entry after merging files that retention was about to drop.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-race-'));
  await writeFile(
    join(dir, 'sync.json'),
    JSON.stringify({
      connection: 'race',
      source: { connector: 'sample', config: { seed: 6, tenants: 2, counts: { companies: 0, contacts: 2_000, deals: 0, activities: 0 }, checkpoint_every: 250, page_size: 250 } },
      destination: { connector: 'lake', config: { path: './lake', partitioning: 'tenant_month' } },
      streams: [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_records: 250, commit_interval_ms: 1 },
    }),
  );
  const sync = await runCli(['sync', 'sync.json'], dir);
  expect(sync.code, sync.stderr).toBe(0);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

it('retention that loses the commit race to a compaction drops the merged file too: no expired row stays', async () => {
  const config = parseConfig(lakeConfigSchema, { path: join(dir, 'lake') });
  const store = openStore(config);
  try {
    const files = [...(await loadLakeState(store)).files.values()];
    const tenant = files[0]!.tenant;
    const mine = files.filter((f) => f.tenant === tenant);
    // Several small files per partition, so the compaction has something to merge.
    expect(mine.length).toBeGreaterThan(new Set(mine.map((f) => f.partition)).size);
    const cutoff = Math.max(...mine.map((f) => f.maxEventTime)) + 1;
    const tenantRows = mine.reduce((n, f) => n + f.rows, 0);
    const otherRows = files.filter((f) => f.tenant !== tenant).reduce((n, f) => n + f.rows, 0);

    // Retention has read the log; before its entry is written, a compaction commits first.
    let compaction: CompactionResult | undefined;
    const racing: LakeStore = {
      ...store,
      async createIfAbsent(key, body) {
        compaction ??= await compactLake(config, { minFiles: 2, tenant });
        return store.createIfAbsent(key, body);
      },
    };
    const result = await retireExpired(racing, cutoff, { tenant, stream: 'contacts' });
    expect(compaction?.partitions).toBeGreaterThan(0);
    expect(result.rowsRemoved).toBe(tenantRows);

    const after = [...(await loadLakeState(store)).files.values()];
    expect(after.filter((f) => f.tenant === tenant)).toEqual([]);
    const reader = await openLakeReader(config);
    try {
      expect(await reader.query('SELECT tenant_id, count(*) AS n FROM contacts GROUP BY 1')).toEqual([{ tenant_id: files.find((f) => f.tenant !== tenant)!.tenant, n: otherRows }]);
    } finally {
      await reader.close();
    }
  } finally {
    store.close();
  }
});
