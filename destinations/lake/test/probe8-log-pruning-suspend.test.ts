import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { compactLake, loadLakeState, type LakeStore } from '../src/index.js';
import { commitEntry, pruneLog } from '../src/commit-log.js';
import { lakeConfigSchema } from '../src/config.js';
import { openLakeSession } from '../src/session.js';
import { openStore } from '../src/storage/open-store.js';
import { commitOne, expectNoGhostCommit, HOUR, record, stream } from './log-pruning-helpers.js';

// A writer judged whether its view of the log was recent enough to create its next entry
// without reading the log (LOG_FRESH_MS), and whether its commit lease still held, by
// `performance.now()`. On Linux that is CLOCK_MONOTONIC (libuv's uv_hrtime), which does not
// count the time the machine is suspended (a laptop asleep, a paused VM), nor a step of the
// wall clock; the store's clock, by which checkpoints and leases age, moves on. A sync process
// whose machine slept for two hours between two commits, while maintenance elsewhere pruned
// the log, woke with a state its monotonic clock called seconds old, created a pruned sequence
// number again under a checkpoint every reader starts after, and its commit vanished (the
// runtime then checkpointed it as stored: the rows were lost for good). Now both take the
// larger of the monotonic and the wall clock's elapsed times (moment.ts).
//
// Simulated as the pruning tests simulate time: the checkpoints aged two hours (utimes), the
// wall clock (Date.now) two hours ahead, the monotonic clock standing still.
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-probe8-log-pruning-suspend-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});



it('a session whose machine was suspended for two hours (monotonic clock stood still, wall clock moved on) while maintenance pruned the log does not lose its next commit', async () => {
  const raw = { path: join(root, 'suspended') };
  const lake = parseConfig(lakeConfigSchema, raw);
  const store = openStore(lake);
  const sleeper = await openLakeSession(createConnectorContext({ connection: 'c' }), lake, store, [stream]);
  await commitOne(sleeper, 0); // entry 1: the sleeper's state is proven current now
  // Another writer commits entries 2–110 (checkpoints 50 and 100) right after.
  const other = await loadLakeState(store);
  for (let i = 0; i < 109; i++) await commitEntry(store, other, { session: 'other-writer', kind: 'complete', streams: [] });

  // The sleeper's machine sleeps two hours. Meanwhile the store's clock moves on (the
  // checkpoints are two hours old) and maintenance on another machine prunes the log.
  const dir = join(raw.path, '_tributary', 'checkpoints');
  for (const name of await readdir(dir)) {
    const at = new Date((await stat(join(dir, name))).mtimeMs - 2 * HOUR);
    await utimes(join(dir, name), at, at);
  }
  expect(await pruneLog(store)).toBe(99);
  // It wakes: the wall clock is two hours on, its monotonic clock is not.
  const realNow = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 2 * HOUR);

  await commitOne(sleeper, 200);
  await sleeper.close({ completed: true });
  vi.restoreAllMocks();

  // Without the fix: the sleeper created entries 2 and 3 again, under checkpoint 100;
  // readers start after it and see seq 110 without row 200.
  await expectNoGhostCommit(raw.path, await loadLakeState(store));
  store.close();
}, 120_000);

it("a session on the machine whose wall clock is stepped 45 minutes ahead (NTP), 16 minutes after its last commit, does not lose its next commit to that machine's log pruning", async () => {
  const raw = { path: join(root, 'stepped') };
  const lake = parseConfig(lakeConfigSchema, raw);
  const store = openStore(lake);
  const writer = await openLakeSession(createConnectorContext({ connection: 'c' }), lake, store, [stream]);
  await commitOne(writer, 0); // entry 1
  const other = await loadLakeState(store);
  for (let i = 0; i < 109; i++) await commitEntry(store, other, { session: 'other-writer', kind: 'complete', streams: [] });

  // 16 minutes pass (both clocks), and the wall clock is stepped 45 minutes ahead: a
  // compaction on this machine now finds checkpoints 50 and 100 61 minutes old by their mtime.
  const realNow = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 61 * 60_000);
  const realMonotonic = performance.now.bind(performance);
  vi.spyOn(performance, 'now').mockImplementation(() => realMonotonic() + 16 * 60_000);
  expect(await pruneLog(store)).toBe(99);

  await commitOne(writer, 200);
  await writer.close({ completed: true });
  vi.restoreAllMocks();
  await expectNoGhostCommit(raw.path, await loadLakeState(store));
  store.close();
}, 120_000);

it('(same clock, commit lease) a session suspended for two hours between publishing its file and its log entry, while an orphan sweep deleted the file, does not commit an entry naming it', async () => {
  const raw = { path: join(root, 'lease') };
  const lake = parseConfig(lakeConfigSchema, raw);
  const store = openStore(lake);
  let swept = -1;
  const hooked: LakeStore = Object.assign(Object.create(store) as LakeStore, {
    async putFile(key: string, localPath: string) {
      await store.putFile(key, localPath);
      if (swept >= 0 || !key.startsWith('data/')) return;
      // Suspended for two hours: the store's clock moves on (the file and the session's
      // lease are two hours old), so does the wall clock; the monotonic clock does not.
      for (const dir of ['data', join('_tributary', 'leases')]) {
        for (const entry of await readdir(join(raw.path, dir), { recursive: true, withFileTypes: true })) {
          if (!entry.isFile()) continue;
          const path = join(entry.parentPath, entry.name);
          const at = new Date((await stat(path)).mtimeMs - 2 * HOUR);
          await utimes(path, at, at);
        }
      }
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 2 * HOUR);
      // Compaction on another machine meanwhile: the lease is stale, the file an orphan.
      swept = (await compactLake(raw)).orphansDeleted;
    },
  });
  const session = await openLakeSession(createConnectorContext({ connection: 'c' }), lake, hooked, [stream]);
  await session.write({ stream: 'm', records: [record(1)], emittedAt: Date.now() });
  // Without the fix the entry is written and names the deleted file (readers then fail on it).
  await expect(session.commit()).rejects.toMatchObject({ kind: 'fatal', message: expect.stringMatching(/stalled/) });
  expect(swept).toBe(1);
  await session.close({ completed: false }).catch(() => undefined);
  vi.restoreAllMocks();
  expect((await loadLakeState(store)).files.size).toBe(0);
  store.close();
}, 120_000);
