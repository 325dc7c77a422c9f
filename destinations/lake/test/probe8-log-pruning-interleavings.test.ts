import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationSession } from '@tributary/core';
import { applyRetention, loadLakeState, type LakeState, type LakeStore } from '../src/index.js';
import { CHECKPOINT_PREFIX, commitEntry, LOG_PREFIX, pruneCheckpoints, pruneLog } from '../src/commit-log.js';
import { lakeConfigSchema, type LakeConfig } from '../src/config.js';
import { compactStore, retireExpired } from '../src/maintenance.js';
import { openLakeSession } from '../src/session.js';
import { openStore } from '../src/storage/open-store.js';
import { motoLakeConfig, startMoto, type MotoServer } from './helpers.js';
import { ageCheckpoints, commitOne, HOUR, monotonicClockAhead, record, seqName, storedIds, stream } from './log-pruning-helpers.js';

// Interleavings of commit-log pruning (pruneLog, pruneCheckpoints) with writers, readers and
// maintenance, forced deterministically with store wrappers (a real store whose method runs
// the other party at a chosen moment). Time: a checkpoint's age by the store's clock is faked
// with utimes (local) or `pruneLog(store, now)` (S3), a process's monotonic clock with a spy
// on performance.now; each test keeps the two consistent (a state proven current at t has
// its next entries pruned only once an hour has passed on its own clock too).
let root: string;
let moto: MotoServer;
const bucket = 'lake-probe8-log-pruning';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-probe8-log-pruning-'));
  moto = await startMoto();
  await moto.createBucket(bucket);
}, 60_000);
afterAll(async () => {
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

const lakeConfig = (raw: Record<string, unknown>): LakeConfig => parseConfig(lakeConfigSchema, raw);
const sortedPaths = (state: LakeState): string[] => [...state.files.keys()].sort();

async function openOn(store: LakeStore, raw: Record<string, unknown>, connection = 'c'): Promise<DestinationSession> {
  return openLakeSession(createConnectorContext({ connection }), lakeConfig(raw), store, [stream]);
}


/** `n` commits that change nothing visible (a `complete` of no stream), by another writer: they move the log on and write checkpoints. */
async function otherCommits(store: LakeStore, n: number): Promise<void> {
  const state = await loadLakeState(store);
  for (let i = 0; i < n; i++) await commitEntry(store, state, { session: 'other-writer', kind: 'complete', streams: [] });
}




/** A store that runs `hook` once, the first time `when` matches a call (before or after the real call, as the hook decides). */
function withListHook(store: LakeStore, when: (prefix: string, startAfter?: string) => boolean, afterList: () => Promise<void>): LakeStore {
  let armed = true;
  return Object.assign(Object.create(store) as LakeStore, {
    async list(prefix: string, startAfter?: string) {
      const keys = await store.list(prefix, startAfter);
      if (armed && when(prefix, startAfter)) {
        armed = false;
        await afterList();
      }
      return keys;
    },
  });
}

it('local: a stale session whose catch-up listing is pruned under it (every get of a listed entry finds it gone) reloads from the newest checkpoint and commits after it', async () => {
  const raw = { path: join(root, 'catch-up-pruned') };
  const store = openStore(lakeConfig(raw));
  let armed = false;
  let pruned = 0;
  // The session's next read of the log (its catch-up from entry 1) returns a listing of
  // entries 2–110; maintenance prunes 2–99 before it reads them.
  const hooked = withListHook(
    store,
    (prefix, startAfter) => armed && prefix === LOG_PREFIX && startAfter === `${LOG_PREFIX}${seqName(1)}`,
    async () => {
      pruned = await pruneLog(store);
    },
  );
  const early = await openOn(hooked, raw);
  await commitOne(early, 0); // entry 1
  await otherCommits(store, 109); // entries 2–110, checkpoints 50, 100
  // Two hours later for everyone: the store's clock (checkpoint ages) and `early`'s own.
  await ageCheckpoints(raw.path, 2 * HOUR);
  monotonicClockAhead(2 * HOUR);
  armed = true;
  await commitOne(early, 1);
  await early.close({ completed: true });
  expect(pruned).toBe(99);
  const state = await loadLakeState(store);
  expect(state.seq).toBe(112);
  const log = await readdir(join(raw.path, '_tributary', 'log'));
  expect(log.sort()).toEqual(Array.from({ length: 13 }, (_, i) => seqName(100 + i)));
  expect(await storedIds(raw)).toEqual([0, 1]);
  store.close();
}, 120_000);

it('local: loading the lake while maintenance deletes the newest checkpoint between its listing and its read, or prunes past it before the log is listed, gives the current state', async () => {
  const raw = { path: join(root, 'load-races') };
  const writer = await openOn(openStore(lakeConfig(raw)), raw);
  for (let id = 0; id < 3; id++) await commitOne(writer, id); // entries 1–3
  await writer.close({ completed: true }); // entry 4
  const store = openStore(lakeConfig(raw));
  await otherCommits(store, 96); // entries 5–100, checkpoint 50, 100
  const expected = sortedPaths(await loadLakeState(store));

  // 1. The loader lists checkpoints 50 and 100; before it reads 100, the lake moves on to
  //    checkpoint 150 and maintenance (checkpoint retention 0) deletes 50 and 100.
  let deletedCheckpoints = 0;
  const checkpointGoes = Object.assign(Object.create(store) as LakeStore, {
    async get(key: string) {
      if (key === `${CHECKPOINT_PREFIX}${seqName(100)}` && deletedCheckpoints === 0) {
        await otherCommits(store, 50);
        deletedCheckpoints = await pruneCheckpoints(store, 0);
      }
      return store.get(key);
    },
  });
  const first = await loadLakeState(checkpointGoes);
  expect(deletedCheckpoints).toBe(2);
  expect(first.seq).toBe(150);
  expect(sortedPaths(first)).toEqual(expected);
  expect(await store.list(CHECKPOINT_PREFIX)).toEqual([`${CHECKPOINT_PREFIX}${seqName(150)}`]);

  // 2. The loader reads checkpoint 150; before it lists the log after it, the lake moves on
  //    to checkpoint 200, an hour passes, and maintenance prunes the log below 200: the
  //    entries after 150 it needs are gone (a gap before 200), and it starts again.
  let prunedEntries = 0;
  const prunedPast = Object.assign(Object.create(store) as LakeStore, {
    async list(prefix: string, startAfter?: string) {
      if (prefix === LOG_PREFIX && prunedEntries === 0) {
        await otherCommits(store, 50);
        await ageCheckpoints(raw.path, 2 * HOUR);
        prunedEntries = await pruneLog(store);
      }
      return store.list(prefix, startAfter);
    },
  });
  const second = await loadLakeState(prunedPast);
  expect(prunedEntries).toBe(199); // 1–199
  expect(second.seq).toBe(200);
  expect(sortedPaths(second)).toEqual(expected);
  expect([...second.unclean]).toEqual([...(await loadLakeState(store)).unclean]);
  store.close();
}, 120_000);

it('local: the replay window and its connections survive pruning: a crashed sync of connection a, resumed after its entries went, drops its replayed rows, and retention defers its files', async () => {
  const raw = { path: join(root, 'replay-window') };
  const store = openStore(lakeConfig(raw));
  // Connection a commits rows 1–2 and crashes (no complete): its rows may be replayed.
  const crashed = await openOn(store, raw, 'a');
  await commitOne(crashed, 1);
  await commitOne(crashed, 2);
  await crashed.close({ completed: false }); // entries 1–2
  // Connection b syncs and completes many times: its completes end only b's windows.
  const other = await openOn(store, raw, 'b');
  for (let id = 100; id < 148; id++) await commitOne(other, id); // entries 3–50
  await other.close({ completed: true }); // entry 51
  await otherCommits(store, 60); // entries 52–111, checkpoint 50 and 100
  const before = await loadLakeState(store);
  expect(before.unclean.get('m')?.size).toBe(1);
  await ageCheckpoints(raw.path, 2 * HOUR);
  expect(await pruneLog(store)).toBe(99);
  const after = await loadLakeState(store);
  expect([...after.unclean]).toEqual([...before.unclean]);
  expect([...after.connections]).toEqual([...before.connections]);

  // Retention (every row expired) defers a's files: its resume needs their event ids.
  const retention = await applyRetention(raw, { before: '2030-01-01T00:00:00Z' });
  expect(retention).toMatchObject({ filesDeferred: 2, filesRemoved: 48 });

  // a resumes from its last checkpoint: rows 1 and 2 come again, then a new row 3.
  const resumed = await openOn(store, raw, 'a');
  await resumed.write({ stream: 'm', records: [record(1), record(2), record(3)], emittedAt: Date.now() });
  await resumed.commit();
  await resumed.close({ completed: true });
  expect(await storedIds(raw)).toEqual([1, 2, 3]);
  store.close();
}, 120_000);

it('local: a compaction whose state went stale while it merged commits after reloading from the newest checkpoint, its inputs still there', async () => {
  const raw = { path: join(root, 'compaction-reload') };
  const store = openStore(lakeConfig(raw));
  const writer = await openOn(store, raw);
  for (let id = 0; id < 4; id++) await commitOne(writer, id); // entries 1–4: four small files
  await writer.close({ completed: true }); // entry 5
  // The compaction loads the lake (entry 5), then spends two hours on its first merge; meanwhile
  // others commit 105 entries (checkpoints 50, 100) and another maintenance run prunes the
  // log below checkpoint 100. The hook runs when the compaction copies its first input.
  let pruned = -1;
  const hooked = Object.assign(Object.create(store) as LakeStore, {
    async localCopy(key: string, cacheDir: string) {
      if (pruned < 0) {
        await otherCommits(store, 105);
        await ageCheckpoints(raw.path, 2 * HOUR);
        monotonicClockAhead(2 * HOUR);
        pruned = await pruneLog(store);
      }
      return store.localCopy(key, cacheDir);
    },
  });
  const result = await compactStore(hooked, lakeConfig(raw), { minFiles: 2 });
  expect(pruned).toBe(99);
  expect(result).toMatchObject({ partitions: 1, filesBefore: 4, filesAfter: 1 });
  const state = await loadLakeState(store);
  expect(state.seq).toBe(111);
  expect(state.files.size).toBe(1);
  expect(await storedIds(raw)).toEqual([0, 1, 2, 3]);
  store.close();
}, 120_000);

it('local: a stale compaction whose input another compaction merged meanwhile (now behind pruned entries) refuses after its reload and leaves the rows once', async () => {
  const raw = { path: join(root, 'compaction-refused') };
  const store = openStore(lakeConfig(raw));
  const writer = await openOn(store, raw);
  for (let id = 0; id < 4; id++) await commitOne(writer, id);
  await writer.close({ completed: true }); // entries 1–5
  let pruned = -1;
  const hooked = Object.assign(Object.create(store) as LakeStore, {
    async localCopy(key: string, cacheDir: string) {
      if (pruned < 0) {
        pruned = 0;
        // Another compaction merges the same files first (entry 6), then 104 more commits.
        expect(await compactStore(store, lakeConfig(raw), { minFiles: 2 })).toMatchObject({ partitions: 1 });
        await otherCommits(store, 104);
        await ageCheckpoints(raw.path, 2 * HOUR);
        monotonicClockAhead(2 * HOUR);
        pruned = await pruneLog(store);
      }
      return store.localCopy(key, cacheDir);
    },
  });
  await expect(compactStore(hooked, lakeConfig(raw), { minFiles: 2 })).rejects.toMatchObject({ kind: 'transient', message: expect.stringMatching(/removed by a concurrent commit/) });
  expect(pruned).toBe(99);
  const state = await loadLakeState(store);
  expect(state.seq).toBe(110);
  expect(state.files.size).toBe(1);
  expect(await storedIds(raw)).toEqual([0, 1, 2, 3]);
  store.close();
}, 120_000);

it('S3: a stale session whose catch-up listing is pruned under it reloads from the newest checkpoint and commits after it', async () => {
  const raw = motoLakeConfig(moto.endpoint, bucket, { prefix: 'catch-up/' });
  const store = openStore(lakeConfig(raw));
  let armed = false;
  let pruned = 0;
  const hooked = withListHook(
    store,
    (prefix, startAfter) => armed && prefix === LOG_PREFIX && startAfter === `${LOG_PREFIX}${seqName(1)}`,
    async () => {
      // As maintenance would two hours later (moto's modification times cannot be set back).
      pruned = await pruneLog(store, Date.now() + 2 * HOUR);
    },
  );
  try {
    const early = await openOn(hooked, raw);
    await commitOne(early, 0); // entry 1
    await otherCommits(store, 59); // entries 2–60, checkpoint 50
    monotonicClockAhead(2 * HOUR);
    armed = true;
    await commitOne(early, 1);
    await early.close({ completed: true });
    expect(pruned).toBe(49);
    const state = await loadLakeState(store);
    expect(state.seq).toBe(62);
    expect(await store.list(LOG_PREFIX)).toEqual(Array.from({ length: 13 }, (_, i) => `${LOG_PREFIX}${seqName(50 + i)}`));
    expect(await storedIds(raw)).toEqual([0, 1]);
  } finally {
    store.close();
  }
}, 120_000);

it('local: a retention run whose state went stale while it worked removes, after reloading from the newest checkpoint, the files another sync committed meanwhile too', async () => {
  const raw = { path: join(root, 'retention-reload') };
  const store = openStore(lakeConfig(raw));
  const first = await openOn(store, raw);
  await commitOne(first, 1);
  await commitOne(first, 2);
  await first.close({ completed: true }); // entries 1–3
  // Retention loads the lake (entry 3), then works for two hours: meanwhile another sync
  // commits rows 3–4 and completes, others commit 104 entries (checkpoints 50, 100), and
  // maintenance prunes the log below 100. The hook runs when retention lists its trash.
  let pruned = -1;
  const hooked = Object.assign(Object.create(store) as LakeStore, {
    async listDetailed(prefix: string) {
      if (pruned < 0 && prefix === '_tributary/trash/') {
        pruned = 0;
        const second = await openOn(store, raw);
        await commitOne(second, 3);
        await commitOne(second, 4);
        await second.close({ completed: true }); // entries 4–6
        await otherCommits(store, 104); // entries 7–110
        await ageCheckpoints(raw.path, 2 * HOUR);
        monotonicClockAhead(2 * HOUR);
        pruned = await pruneLog(store);
      }
      return store.listDetailed(prefix);
    },
  });
  const result = await retireExpired(hooked, Date.parse('2030-01-01T00:00:00Z'), {});
  expect(pruned).toBe(99);
  expect(result).toMatchObject({ filesRemoved: 4, filesDeferred: 0 });
  const state = await loadLakeState(store);
  expect(state.seq).toBe(111);
  expect(state.files.size).toBe(0);
  expect(await storedIds(raw)).toEqual([]);
  store.close();
}, 120_000);
