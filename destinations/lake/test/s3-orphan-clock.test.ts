import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, openLakeReader, openStore, type CompactionResult, type LakeStore } from '../src/index.js';
import { openLakeSession } from '../src/session.js';
import { clickStream, motoLakeConfig, startMoto, type MotoServer } from './helpers.js';

// Compaction deletes data files no commit names once they are an hour old (by their S3
// LastModified, stamped by the server's clock). This machine's clock may be off from the
// server's: the AWS SDK corrects its requests for that skew (from each answer's Date
// header), so S3 keeps working. Here the clock of this process runs two hours ahead of
// moto's (Date only: timers stay real).
let moto: MotoServer;
const bucket = 'lake-orphan-clock';
beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
});
afterAll(() => moto?.stop());
afterEach(() => {
  vi.useRealTimers();
});

const config = () => motoLakeConfig(moto.endpoint, bucket);
const stream = clickStream();
const records = (...ids: number[]): Array<Record<string, unknown>> => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }));

it('with the local clock two hours ahead of S3, compaction does not delete the files a live session just published: its log entry names them', async () => {
  const lake = parseConfig(lakeConfigSchema, config());
  const store = openStore(lake);
  // A compaction (default orphan age: an hour) runs after the session published its file and before its log entry.
  let compaction: CompactionResult | undefined;
  const hooked: LakeStore = Object.assign(Object.create(store) as LakeStore, {
    async putFile(key: string, localPath: string) {
      await store.putFile(key, localPath);
      if (compaction === undefined && key.startsWith('data/')) compaction = await compactLake(config());
    },
  });
  const session = await openLakeSession(createConnectorContext({}), lake, hooked, [stream]);
  // Skewed only once the session is open: opening sweeps the OS temp dir by age.
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(Date.now() + 2 * 3600_000);
  try {
    await session.write({ stream: 'clicks', records: records(1, 2, 3), emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
  } finally {
    store.close();
  }
  expect(compaction?.orphansDeleted).toBe(0);
  const reader = await openLakeReader(config());
  try {
    expect(await reader.query('SELECT count(*)::INT AS n FROM events')).toEqual([{ n: 3 }]);
  } finally {
    await reader.close();
  }
});

it('files removed by a compaction whose clock ran two hours behind S3 keep their grace period: a later run on a right clock does not delete them at once', async () => {
  const lake = parseConfig(lakeConfigSchema, { ...config(), prefix: 'behind' });
  const store = openStore(lake);
  try {
    // Three commits: three small files in one partition.
    const session = await openLakeSession(createConnectorContext({}), lake, store, [stream]);
    for (const ids of [[1, 2], [3, 4], [5, 6]]) {
      await session.write({ stream: 'clicks', records: records(...ids), emittedAt: Date.now() });
      await session.commit();
    }
    await session.close({ completed: true });
  } finally {
    store.close();
  }
  const reader = await openLakeReader({ ...config(), prefix: 'behind' });
  try {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.now() - 2 * 3600_000);
    expect(await compactLake({ ...config(), prefix: 'behind' }, { minFiles: 2 })).toMatchObject({ partitions: 1, filesBefore: 3, filesAfter: 1 });
    vi.useRealTimers();
    // Default grace period (10 min): the files the compaction removed minutes ago stay.
    expect(await compactLake({ ...config(), prefix: 'behind' })).toMatchObject({ filesDeleted: 0 });
    expect(await reader.query('SELECT count(*)::INT AS n FROM events')).toEqual([{ n: 6 }]);
  } finally {
    await reader.close();
  }
});
