import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { parseConfig, type RecordData } from '@tributary/core';
import { lakeConfigSchema, loadLakeState, openStore, readStreamRows, type LakeConfig, type LakeStore } from '../src/index.js';
import { LEASE_PREFIX } from '../src/commit-log.js';
import { compactStore, retireExpired } from '../src/maintenance.js';
import { monotonicClockAhead } from './log-pruning-helpers.js';
import { clickStream, motoLakeConfig, startMoto, startS3Proxy, writeSession, type MotoServer, type S3Proxy } from './helpers.js';

// Compaction and retention publish a replacement file (a merge, a rewrite without expired
// rows) under a lease, then commit the log entry naming it. When that commit failed (a
// concurrent commit removed an input, a stalled run, an S3 answer lost), the lease was never
// released: an orphan sweep left the unnamed file alone for the lease's hour. Now a failed
// commit releases its leases; the file is deleted at once when the entry is known not to be
// in the log, and stays (for the log to decide) when it may be.
let root: string;
let moto: MotoServer;
let proxy: S3Proxy;
const bucket = 'probe11-maintenance-lease';
/** While set, the proxy drops the answer of every request it matches (each after moto stored or answered it). */
let dropAnswers: ((method: string, url: string) => boolean) | undefined;
let dropped = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe11-lease-'));
  moto = await startMoto();
  await moto.createBucket(bucket);
  proxy = await startS3Proxy(moto.endpoint, {
    onAnswer(req) {
      if (!dropAnswers?.(req.method ?? '', decodeURIComponent(req.url ?? ''))) return 'pass';
      dropped++;
      return 'drop';
    },
  });
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
  dropAnswers = undefined;
  dropped = 0;
});

const stream = clickStream();
const lakeConfig = (raw: Record<string, unknown>): LakeConfig => parseConfig(lakeConfigSchema, raw);
const click = (id: number, at: string): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: at });

/** `n` sessions of one record each on 2024-01-01: `n` small files of one partition. */
async function smallFiles(raw: Record<string, unknown>, n: number): Promise<void> {
  for (let id = 1; id <= n; id++) await writeSession(raw, stream, [[click(id, `2024-01-01T${String(id).padStart(2, '0')}:00:00Z`)]]);
}

/** The data files in storage that neither the log nor a trash record (files a commit removed, kept for the grace period) names, and the lease objects left. */
async function leftovers(store: LakeStore): Promise<{ unnamed: string[]; leases: string[] }> {
  const state = await loadLakeState(store);
  const trashed = new Set<string>();
  for (const key of await store.list('_tributary/trash/')) for (const path of JSON.parse(new TextDecoder().decode(await store.get(key))) as string[]) trashed.add(path);
  return { unnamed: (await store.list('data/')).filter((key) => !state.files.has(key) && !trashed.has(key)), leases: await store.list(LEASE_PREFIX) };
}

const storedIds = async (raw: Record<string, unknown>): Promise<number[]> => (await readStreamRows(raw, { stream: 'clicks' })).map((r) => Number(r.payload.id)).sort((a, b) => a - b);

it('local: a compaction refused because a concurrent compaction removed its inputs deletes its merged file and releases its lease', async () => {
  const raw = { path: join(root, 'compaction-refused') };
  await smallFiles(raw, 4);
  const store = openStore(lakeConfig(raw));
  try {
    // Another compaction merges the same four files first, while this one copies its first input.
    let concurrent = false;
    const hooked = Object.assign(Object.create(store) as LakeStore, {
      async localCopy(key: string, cacheDir: string) {
        if (!concurrent) {
          concurrent = true;
          expect(await compactStore(store, lakeConfig(raw), { minFiles: 2 })).toMatchObject({ partitions: 1, filesBefore: 4 });
        }
        return store.localCopy(key, cacheDir);
      },
    });
    await expect(compactStore(hooked, lakeConfig(raw), { minFiles: 2 })).rejects.toMatchObject({ kind: 'transient', message: expect.stringMatching(/removed by a concurrent commit/) });
    // Seen without the fix: its merged file (`compact-<uuid>.parquet`) and its lease left.
    expect(await leftovers(store)).toEqual({ unnamed: [], leases: [] });
    expect(await storedIds(raw)).toEqual([1, 2, 3, 4]);
  } finally {
    store.close();
  }
}, 120_000);

it('local: a retention run whose commit stalled past its lease deletes its rewrite and releases the lease', async () => {
  const raw = { path: join(root, 'retention-stalled') };
  // One file holding rows on both sides of the cutoff: retention rewrites it.
  await writeSession(raw, stream, [[click(1, '2024-01-01T10:00:00Z'), click(2, '2024-01-01T14:00:00Z')]]);
  const store = openStore(lakeConfig(raw));
  try {
    // The process stops for two hours right after publishing the rewrite, before its entry.
    const hooked = Object.assign(Object.create(store) as LakeStore, {
      async putFile(key: string, localPath: string) {
        await store.putFile(key, localPath);
        if (key.startsWith('data/')) monotonicClockAhead(2 * 3600_000);
      },
    });
    await expect(retireExpired(hooked, Date.parse('2024-01-01T12:00:00Z'), { graceMs: 0 })).rejects.toMatchObject({ kind: 'fatal', message: expect.stringMatching(/stalled/) });
    vi.restoreAllMocks();
    // Seen without the fix: the rewrite (`compact-<uuid>.parquet`) and its lease left.
    expect(await leftovers(store)).toEqual({ unnamed: [], leases: [] });
    expect(await storedIds(raw)).toEqual([1, 2]);
  } finally {
    store.close();
  }
}, 120_000);

it('S3: a compaction whose log entry was stored but every answer lost keeps its merged file (the log names it) and releases its lease', async () => {
  const raw = motoLakeConfig(proxy.endpoint, bucket, { prefix: 'compaction-lost/' });
  await smallFiles(raw, 4);
  const store = openStore(lakeConfig(raw));
  try {
    // The conditional PUT of the compaction's entry is stored; its answer, and those of the SDK's retries (412), are lost.
    dropAnswers = (method, url) => method === 'PUT' && url.includes('/_tributary/log/');
    await expect(compactStore(store, lakeConfig(raw), { minFiles: 2 })).rejects.toThrow();
    dropAnswers = undefined;
    expect(dropped).toBeGreaterThan(0);
    const state = await loadLakeState(store);
    expect([...state.files.keys()]).toEqual([expect.stringMatching(/\/compact-[^/]+\.parquet$/)]);
    // Seen without the fix: the lease left (`_tributary/leases/compact-<uuid>.<uuid>.json`).
    expect(await leftovers(store)).toEqual({ unnamed: [], leases: [] });
    expect(await storedIds(raw)).toEqual([1, 2, 3, 4]);
  } finally {
    store.close();
  }
}, 120_000);

it('S3: a retention run that could not write its trash record deletes its rewrite and releases the lease; one whose entry was stored but every answer lost keeps it', async () => {
  const raw = motoLakeConfig(proxy.endpoint, bucket, { prefix: 'retention/' });
  await writeSession(raw, stream, [[click(1, '2024-01-01T10:00:00Z'), click(2, '2024-01-01T14:00:00Z')]]);
  const cutoff = Date.parse('2024-01-01T12:00:00Z');
  const store = openStore(lakeConfig(raw));
  try {
    // Every answer to the trash record's PUT lost: the run fails before any attempt of its entry.
    dropAnswers = (method, url) => method === 'PUT' && url.includes('/_tributary/trash/');
    await expect(retireExpired(store, cutoff, { graceMs: 0 })).rejects.toThrow();
    dropAnswers = undefined;
    expect(dropped).toBeGreaterThan(0);
    // Seen without the fix: the rewrite and its lease left.
    expect(await leftovers(store)).toEqual({ unnamed: [], leases: [] });
    expect(await storedIds(raw)).toEqual([1, 2]);

    dropped = 0;
    dropAnswers = (method, url) => method === 'PUT' && url.includes('/_tributary/log/');
    await expect(retireExpired(store, cutoff, { graceMs: 0 })).rejects.toThrow();
    dropAnswers = undefined;
    expect(dropped).toBeGreaterThan(0);
    // The entry was stored: the rewrite is the lake's file now.
    expect(await leftovers(store)).toEqual({ unnamed: [], leases: [] });
    expect(await storedIds(raw)).toEqual([2]);
  } finally {
    store.close();
  }
}, 120_000);
