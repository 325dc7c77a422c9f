import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { parseConfig } from '@tributary/core';
import { lakeConfigSchema, loadLakeState, openLakeReader, openStore, type LakeStore } from '../src/index.js';
import { compactStore } from '../src/maintenance.js';
import { syncSmallCommitsLake } from './helpers.js';

// Files a compaction removes from the log must outlive the grace period even when another
// maintenance run's orphan sweep comes between the log entry and the rest of the compaction
// (or the compaction dies right after its entry): a reader still on the older snapshot
// reads them.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-grace-'));
  await syncSmallCommitsLake(dir, { connection: 'grace', seed: 8, contacts: 2_000 });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const config = () => parseConfig(lakeConfigSchema, { path: join(dir, 'lake') });
const parquetOnDisk = async (): Promise<number> => (await readdir(join(dir, 'lake', 'data'), { recursive: true })).filter((f) => String(f).endsWith('.parquet')).length;

/** A store that dies (throws) on the first write after a log entry was created: a crash right after the compaction's commit. */
function crashingAfterCommit(store: LakeStore): LakeStore {
  let committed = false;
  const dieIfCommitted = (): void => {
    if (committed) throw new Error('simulated crash after the log entry');
  };
  return {
    ...store,
    async createIfAbsent(key, body) {
      const created = await store.createIfAbsent(key, body);
      if (created && key.startsWith('_tributary/log/')) committed = true;
      return created;
    },
    async put(key, body) {
      dieIfCommitted();
      return store.put(key, body);
    },
    async putFile(key, localPath) {
      dieIfCommitted();
      return store.putFile(key, localPath);
    },
    async delete(keys) {
      dieIfCommitted();
      return store.delete(keys);
    },
  };
}

it('a compaction that dies right after its log entry leaves the removed files their grace period: a later orphan sweep keeps them for the old snapshot', async () => {
  const store = openStore(config());
  try {
    const before = [...(await loadLakeState(store)).files.values()];
    const rows = before.reduce((n, f) => n + f.rows, 0);
    const reader = await openLakeReader(config());
    try {
      await expect(compactStore(crashingAfterCommit(store), config(), { minFiles: 2 })).rejects.toThrow('simulated crash');
      const after = [...(await loadLakeState(store)).files.values()];
      expect(after.length).toBeLessThan(before.length);

      // Another run sweeps orphans at once (age 0) with the default grace period.
      const sweep = await compactStore(store, config(), { minFiles: 1_000, orphanAgeMs: 0 });
      expect(sweep.orphansDeleted).toBe(0);
      expect(sweep.filesDeleted).toBe(0);
      expect(await parquetOnDisk()).toBe(before.length + after.filter((f) => !before.some((b) => b.path === f.path)).length);
      // The reader opened before the compaction still reads every row of its snapshot.
      expect(await reader.query('SELECT count(*) AS n FROM contacts')).toEqual([{ n: rows }]);
    } finally {
      await reader.close();
    }

    // Past the grace period the removed files go, and the log's files stay.
    const live = (await loadLakeState(store)).files;
    const purge = await compactStore(store, config(), { minFiles: 1_000, graceMs: 0, orphanAgeMs: 0 });
    expect(purge.filesDeleted).toBe(before.filter((f) => !live.has(f.path)).length);
    expect(await parquetOnDisk()).toBe(live.size);
    const fresh = await openLakeReader(config());
    try {
      expect(await fresh.query('SELECT count(*) AS n FROM contacts')).toEqual([{ n: rows }]);
    } finally {
      await fresh.close();
    }
  } finally {
    store.close();
  }
});

it('a compaction that dies before its log entry leaves files the log still names: emptying the trash never deletes them', async () => {
  const store = openStore(config());
  try {
    const before = [...(await loadLakeState(store)).files.values()];
    const rows = before.reduce((n, f) => n + f.rows, 0);
    const dying: LakeStore = {
      ...store,
      async createIfAbsent(key, body) {
        if (key.startsWith('_tributary/log/')) throw new Error('simulated crash before the log entry');
        return store.createIfAbsent(key, body);
      },
    };
    await expect(compactStore(dying, config(), { minFiles: 2 })).rejects.toThrow('simulated crash');
    // Grace 0: any trash record left by the dead run is past its grace period.
    await compactStore(store, config(), { minFiles: 1_000, graceMs: 0 });
    expect([...(await loadLakeState(store)).files.values()]).toEqual(before);
    const reader = await openLakeReader(config());
    try {
      expect(await reader.query('SELECT count(*) AS n FROM contacts')).toEqual([{ n: rows }]);
    } finally {
      await reader.close();
    }
  } finally {
    store.close();
  }
});
