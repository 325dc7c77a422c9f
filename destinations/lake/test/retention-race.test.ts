import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, loadLakeState, openLakeReader, openStore, type CompactionResult, type LakeStore } from '../src/index.js';
import { retireExpired } from '../src/maintenance.js';
import { syncSmallCommitsLake } from './helpers.js';

// Retention and compaction committing at the same time: the compaction wins the race for
// the next log entry after merging files that retention was about to drop.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-race-'));
  await syncSmallCommitsLake(dir, { connection: 'race', seed: 6, contacts: 2_000 });
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
