import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationSession } from '@tributary/core';
import { applyRetention, compactLake, lakeDestination, loadLakeState, readStreamRows, type LakeState } from '../src/index.js';
import { pruneLog } from '../src/commit-log.js';
import { lakeConfigSchema } from '../src/config.js';
import { openStore } from '../src/storage/open-store.js';
import { motoLakeConfig, startMoto, type MotoServer } from './helpers.js';
import { commitOne, HOUR, monotonicClockAhead, seqName, storedIds, stream } from './log-pruning-helpers.js';

// Every 50th commit writes a checkpoint of the whole state (every visible file), and none was
// ever deleted; maintenance now deletes the checkpoints a newer one replaces.
// The commit log kept one entry per commit forever. Maintenance now deletes the entries
// below the newest checkpoint that is an hour old (keeping that checkpoint's own entry).
// The danger is a session that read the log before: its next sequence number may have been
// taken and pruned since, so a conditional create of it succeeds, under a checkpoint that
// readers start after, and the commit vanishes. Such a session must read the log first.
let root: string;
let moto: MotoServer;
const bucket = 'lake-log-pruning';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-log-pruning-'));
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


async function open(config: Record<string, unknown>): Promise<DestinationSession> {
  return lakeDestination.open(createConnectorContext({ connection: 'c' }), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
}


const storeOf = (config: Record<string, unknown>) => openStore(parseConfig(lakeConfigSchema, config));
const stateOf = (config: Record<string, unknown>) => loadLakeState(storeOf(config));
const keysUnder = async (dir: string): Promise<string[]> => (await readdir(dir)).sort();
const sortedFiles = (state: LakeState) => [...state.files.values()].sort((a, b) => a.path.localeCompare(b.path));


it('local: compaction deletes the entries an hour-old checkpoint covers, the lake reads the same, and a session that read the log before commits after them', async () => {
  const config = { path: join(root, 'local') };
  const early = await open(config);
  await commitOne(early, 0); // entry 1: `early` has read the log up to here
  const busy = await open(config);
  for (let id = 1; id <= 109; id++) await commitOne(busy, id); // entries 2–110, checkpoints 50 and 100
  await busy.close({ completed: true }); // entry 111
  const before = await stateOf(config);
  expect(before.seq).toBe(111);

  const logDir = join(config.path, '_tributary', 'log');
  const checkpointDir = join(config.path, '_tributary', 'checkpoints');
  // Checkpoints younger than an hour cover nothing yet.
  expect(await compactLake(config, { minFiles: 1_000_000 })).toMatchObject({ logEntriesDeleted: 0, checkpointsDeleted: 0 });
  expect(await readdir(logDir)).toHaveLength(111);

  // Two hours later (by the store's clock: the checkpoints' modification times).
  const twoHoursAgo = new Date(Date.now() - 2 * HOUR);
  for (const seq of [50, 100]) await utimes(join(checkpointDir, seqName(seq)), twoHoursAgo, twoHoursAgo);
  expect(await compactLake(config, { minFiles: 1_000_000 })).toMatchObject({ logEntriesDeleted: 99, checkpointsDeleted: 1 });
  expect((await readdir(logDir)).sort()).toEqual(Array.from({ length: 12 }, (_, i) => seqName(100 + i)));
  expect(await readdir(checkpointDir)).toEqual([seqName(100)]);

  const after = await stateOf(config);
  expect(after.seq).toBe(111);
  expect(sortedFiles(after)).toEqual(sortedFiles(before));
  expect([...after.unclean]).toEqual([...before.unclean]);

  // `early` last read the log two hours ago by its own clock: entry 2 is free again, and
  // creating it would hide the commit under checkpoint 100. It reads the log first.
  monotonicClockAhead(2 * HOUR);
  await commitOne(early, 200);
  await early.close({ completed: true });
  expect((await stateOf(config)).seq).toBe(113);
  expect(await readdir(logDir)).not.toContain(seqName(2));
  expect(await storedIds(config)).toEqual([...Array.from({ length: 110 }, (_, i) => i), 200]);
}, 180_000);

it('S3: the entries an hour-old checkpoint covers are deleted, and a session that read the log before commits after them', async () => {
  const config = motoLakeConfig(moto.endpoint, bucket);
  const early = await open(config);
  await commitOne(early, 0); // entry 1
  const busy = await open(config);
  for (let id = 1; id <= 50; id++) await commitOne(busy, id); // entries 2–51, checkpoint 50
  await busy.close({ completed: true }); // entry 52
  const before = await stateOf(config);
  const store = storeOf(config);
  try {
    expect(await pruneLog(store)).toBe(0);
    // As maintenance would two hours later (moto's modification times cannot be set back).
    expect(await pruneLog(store, Date.now() + 2 * HOUR)).toBe(49);
    const left = await store.list('_tributary/log/');
    expect(left).toEqual([50, 51, 52].map((seq) => `_tributary/log/${seqName(seq)}`));
  } finally {
    store.close();
  }
  const after = await stateOf(config);
  expect(after.seq).toBe(52);
  expect(sortedFiles(after)).toEqual(sortedFiles(before));

  monotonicClockAhead(2 * HOUR);
  await commitOne(early, 200);
  await early.close({ completed: true });
  expect((await stateOf(config)).seq).toBe(54);
  expect(await storedIds(config)).toEqual([...Array.from({ length: 51 }, (_, i) => i), 200]);
}, 180_000);

it('maintenance deletes the checkpoints a newer one replaces; the lake opens to the same state, and a session opened before them still commits', async () => {
  const config = { path: join(root, 'checkpoints') };
  const early = await open(config);
  await commitOne(early, 0); // log entry 1: `early` knows the log up to here
  const busy = await open(config);
  for (let id = 1; id <= 109; id++) await commitOne(busy, id); // entries 2–110, checkpoints at 50 and 100
  await busy.close({ completed: true }); // entry 111

  const logDir = join(config.path, '_tributary', 'log');
  const checkpointDir = join(config.path, '_tributary', 'checkpoints');
  const checkpoint = (seq: number): string => `${String(seq).padStart(20, '0')}.json`;
  expect(await keysUnder(checkpointDir)).toEqual([checkpoint(50), checkpoint(100)]);
  const before = await stateOf(config);

  // Within the retention (default 1 h) both stay; past it, the one the newest replaces goes.
  expect(await compactLake(config, { minFiles: 1_000_000 })).toMatchObject({ checkpointsDeleted: 0 });
  expect(await compactLake(config, { minFiles: 1_000_000, checkpointRetentionMs: 0 })).toMatchObject({ checkpointsDeleted: 1 });
  expect(await keysUnder(checkpointDir)).toEqual([checkpoint(100)]);
  expect(await keysUnder(logDir)).toHaveLength(111);
  // The newest always stays.
  expect(await applyRetention(config, { before: '2000-01-01T00:00:00Z', checkpointRetentionMs: 0 })).toMatchObject({ checkpointsDeleted: 0 });
  expect(await keysUnder(checkpointDir)).toEqual([checkpoint(100)]);

  const after = await stateOf(config);
  expect(after.seq).toBe(before.seq);
  expect([...after.files.values()].sort((a, b) => a.path.localeCompare(b.path))).toEqual([...before.files.values()].sort((a, b) => a.path.localeCompare(b.path)));

  // `early` has seen entry 1 only: its commit finds entries 2–111 and commits as entry 112.
  await commitOne(early, 200);
  await early.close({ completed: true });
  expect((await stateOf(config)).seq).toBe(113);
  const rows = await readStreamRows(config, { stream: 'm' });
  expect(rows.map((r) => r.payload.id).sort((a, b) => Number(a) - Number(b))).toEqual([...Array.from({ length: 110 }, (_, i) => i), 200]);
}, 120_000);

it('a log entry lost where no checkpoint covers it is reported as damage, not read past', async () => {
  const config = { path: join(root, 'gap') };
  const session = await open(config);
  for (let id = 1; id <= 4; id++) await commitOne(session, id); // entries 1–4
  await session.close({ completed: true }); // entry 5
  await rm(join(config.path, '_tributary', 'log', seqName(3)));
  await expect(stateOf(config)).rejects.toMatchObject({ kind: 'fatal', message: expect.stringMatching(/commit log has a gap: entry 3 is missing before entry 4: the lake is damaged/) });
}, 60_000);
