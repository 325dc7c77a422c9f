import { mkdtemp, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { parseConfig, TributaryError } from '@tributary/core';
import { lakeConfigSchema, loadLakeState, openLakeReader, openStore, type LakeStore } from '../src/index.js';
import { compactStore } from '../src/maintenance.js';
import { syncSmallCommitsLake } from './helpers.js';

// A compaction whose log entry could not be written (on S3: a SlowDown storm outlasting the
// SDK's retries) keeps its trash record, since the entry may have been stored unseen. That
// record names files the log still has. When a later compaction really removes those files,
// the old record must not cut their grace period short: counted from the old record, a
// sweep deleted them at once, under a reader still on the snapshot before that removal.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-stale-trash-'));
  await syncSmallCommitsLake(dir, { connection: 'stale-trash', seed: 9, contacts: 2_000 });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const config = () => parseConfig(lakeConfigSchema, { path: join(dir, 'lake') });
const trashDir = () => join(dir, 'lake', '_tributary', 'trash');

/** Lets `ms` pass for every trash record: both clocks it is judged by (its name, the writer's; its mtime, the store's) move back. */
async function age(ms: number): Promise<void> {
  for (const name of await readdir(trashDir())) {
    if (name.startsWith('.')) continue;
    const [at, ...rest] = name.split('-');
    const path = join(trashDir(), name);
    const older = join(trashDir(), `${String(Number(at) - ms).padStart(15, '0')}-${rest.join('-')}`);
    const { mtimeMs } = await stat(path);
    await rename(path, older);
    await utimes(older, new Date(mtimeMs - ms), new Date(mtimeMs - ms));
  }
}

it('a trash record left by a failed compaction does not shorten the grace period of the files a later compaction removes', async () => {
  const store = openStore(config());
  try {
    const before = [...(await loadLakeState(store)).files.values()];
    const rows = before.reduce((n, f) => n + f.rows, 0);

    // 1. A compaction whose log entry fails (the store refuses the conditional write).
    const throttled: LakeStore = {
      ...store,
      async createIfAbsent(key, body) {
        if (key.startsWith('_tributary/log/')) throw new TributaryError('rate_limited', { userMessage: 'S3 asked to slow down (simulated)' });
        return store.createIfAbsent(key, body);
      },
    };
    await expect(compactStore(throttled, config(), { minFiles: 2 })).rejects.toMatchObject({ kind: 'rate_limited' });
    expect((await loadLakeState(store)).files.size).toBe(before.length);
    expect(await readdir(trashDir())).toHaveLength(1);

    // 2. Seven minutes pass (the default grace period is 10).
    await age(7 * 60_000);

    // 3. A reader loads the log; then a compaction removes the same files (and more) for real.
    const reader = await openLakeReader(config());
    try {
      const compaction = await compactStore(store, config(), { minFiles: 2 });
      expect(compaction.partitions).toBeGreaterThan(0);

      // 4. Four minutes later, a sweep (default grace): the failed compaction's record is 11
      // minutes old, but the files were removed 4 minutes ago.
      await age(4 * 60_000);
      const sweep = await compactStore(store, config(), { minFiles: 1_000 });
      // The reader on the older snapshot still reads every row; nothing was deleted.
      expect(await reader.query('SELECT count(*) AS n FROM contacts')).toEqual([{ n: rows }]);
      expect(sweep.filesDeleted).toBe(0);
    } finally {
      await reader.close();
    }
  } finally {
    store.close();
  }
});
