import { randomUUID } from 'node:crypto';
import { readdir, mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, loadLakeState, openLakeReader, openStore, type CompactionResult, type LakeStore } from '../src/index.js';
import { openLakeSession } from '../src/session.js';
import { clickStream, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

// Between publishing its files and writing the log entry that names them, a commit's files
// are named by no entry; a concurrent compaction's orphan sweep deletes such files once
// they are old (an hour by default). A commit that is still working (publishing many files,
// retrying its entry) holds a lease the sweep honours; one that stalled past its lease is
// refused at its entry instead of naming files a sweep may have deleted.
let root: string;
let moto: MotoServer;
const bucket = 'probe3-orphan-lease';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-lease-'));
  moto = await startMoto();
  await moto.createBucket(bucket);
});
afterAll(async () => {
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});

const stream = clickStream();
const records = (...ids: number[]): Array<Record<string, unknown>> => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }));
const twoHours = 2 * 3600_000;

/** Runs `during` once, right after the session published its first data file (before its log entry). */
function afterFirstPublish(store: LakeStore, during: (key: string) => Promise<void>): LakeStore {
  let done = false;
  return Object.assign(Object.create(store) as LakeStore, {
    async putFile(key: string, localPath: string) {
      await store.putFile(key, localPath);
      if (done || !key.startsWith('data/')) return;
      done = true;
      await during(key);
    },
  });
}

async function countEvents(config: Record<string, unknown>): Promise<unknown> {
  const reader = await openLakeReader(config);
  try {
    return await reader.query('SELECT count(*)::INT AS n FROM events');
  } finally {
    await reader.close();
  }
}

it('a commit still publishing after an hour keeps its files: the sweep of a concurrent compaction leaves them (local lake, default orphan age)', async () => {
  const config = { path: join(root, 'local') };
  const lake = parseConfig(lakeConfigSchema, config);
  const store = openStore(lake);
  let compaction: CompactionResult | undefined;
  // The file was published two hours ago (by its mtime) and the commit is still at work.
  const hooked = afterFirstPublish(store, async (key) => {
    const published = new Date(Date.now() - twoHours);
    await utimes(join(root, 'local', key), published, published);
    compaction = await compactLake(config);
  });
  try {
    const session = await openLakeSession(createConnectorContext({}), lake, hooked, [stream]);
    await session.write({ stream: 'clicks', records: records(1, 2, 3), emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
  } finally {
    store.close();
  }
  expect(await countEvents(config)).toEqual([{ n: 3 }]);
  expect(compaction?.orphansDeleted).toBe(0);
});

it('on S3 too: a sweep that counts every unnamed file as old (--orphan-age-ms 0) leaves the files of a commit in progress', async () => {
  const config = motoLakeConfig(moto.endpoint, bucket);
  const lake = parseConfig(lakeConfigSchema, config);
  const store = openStore(lake);
  let compaction: CompactionResult | undefined;
  const hooked = afterFirstPublish(store, async () => {
    compaction = await compactLake(config, { orphanAgeMs: 0 });
  });
  try {
    const session = await openLakeSession(createConnectorContext({}), lake, hooked, [stream]);
    await session.write({ stream: 'clicks', records: records(1, 2, 3), emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
  } finally {
    store.close();
  }
  expect(await countEvents(config)).toEqual([{ n: 3 }]);
  expect(compaction?.orphansDeleted).toBe(0);
  // A crashed writer's leftover is still swept: a file no entry names, whose writer holds no lease.
  const leftover = openStore(lake);
  try {
    await leftover.put(`data/clicks/tenant_id=t1/event_date=2024-01-01/${randomUUID()}-1-0.parquet`, 'PAR1');
  } finally {
    leftover.close();
  }
  expect(await compactLake(config, { orphanAgeMs: 0 })).toMatchObject({ orphansDeleted: 1 });
  expect(await countEvents(config)).toEqual([{ n: 3 }]);
});

it('a commit that stalled past its lease is not committed: the sweep deleted its files, the log never names them, the resume writes the rows', async () => {
  const config = { path: join(root, 'stalled') };
  const lake = parseConfig(lakeConfigSchema, config);
  const store = openStore(lake);
  const realNow = performance.now.bind(performance);
  let compaction: CompactionResult | undefined;
  // The process stops for two hours right after publishing: by its own clock, and by the
  // store's (its file and its lease were last touched two hours ago).
  const hooked = afterFirstPublish(store, async (key) => {
    const then = new Date(Date.now() - twoHours);
    await utimes(join(root, 'stalled', key), then, then);
    const leases = join(root, 'stalled', '_tributary', 'leases');
    for (const entry of await readdir(leases, { recursive: true, withFileTypes: true })) if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), then, then);
    compaction = await compactLake(config);
    vi.spyOn(performance, 'now').mockImplementation(() => realNow() + twoHours);
  });
  try {
    const session = await openLakeSession(createConnectorContext({}), lake, hooked, [stream]);
    await session.write({ stream: 'clicks', records: records(1, 2, 3), emittedAt: Date.now() });
    await expect(session.commit()).rejects.toThrow(/stalled/);
    await session.close({ completed: false });
  } finally {
    vi.restoreAllMocks();
    store.close();
  }
  expect(compaction?.orphansDeleted).toBe(1);
  const check = openStore(lake);
  expect((await loadLakeState(check).finally(() => check.close())).files.size).toBe(0);
  // The runtime replays the uncommitted records on the next run.
  await writeSession(config, stream, [records(1, 2, 3)]);
  expect(await countEvents(config)).toEqual([{ n: 3 }]);
});
