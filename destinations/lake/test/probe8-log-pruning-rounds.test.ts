import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig, TributaryError, type DestinationSession } from '@tributary/core';
import { loadLakeState, readStreamRows } from '../src/index.js';
import { pruneCheckpoints, pruneLog } from '../src/commit-log.js';
import { lakeConfigSchema } from '../src/config.js';
import { compactStore } from '../src/maintenance.js';
import { openLakeSession } from '../src/session.js';
import { openStore } from '../src/storage/open-store.js';
import { record, stream, virtualTime } from './log-pruning-helpers.js';

// Several writer sessions, a compaction, a log pruner and a reader run concurrently on one
// local lake, in rounds of virtual time: between rounds (everyone idle) 20 minutes pass for
// everyone, on this process's monotonic clock (performance.now) and on the store's (every
// checkpoint aged by 20 minutes with utimes). So checkpoints become anchors for pruning three
// rounds after they were written, while the busy writers stay fresh (20 min < 30) and a
// sleeper that commits every few rounds is stale (60–80 min) and must read the log first.
// Every row committed must be read exactly once, and no reader may see fewer rows than were
// committed before it started.
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-probe8-log-pruning-rounds-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

const MINUTE = 60_000;

it('writers, a sleeper, compaction, pruning and a reader in eight rounds of 20 virtual minutes: every commit is read once, no reader sees less than was committed', async () => {
  const raw = { path: join(root, 'rounds') };
  const lake = parseConfig(lakeConfigSchema, raw);
  const store = openStore(lake);
  const passTime = virtualTime(raw.path);

  const open = (): Promise<DestinationSession> => openLakeSession(createConnectorContext({ connection: 'c' }), lake, store, [stream]);
  const writers = [await open(), await open(), await open()];
  const sleeper = await open();
  const sleeperRounds = new Set([0, 4, 7]);
  let nextId = 0;
  let committed = 0;
  const expected: number[] = [];
  const commitOne = async (session: DestinationSession): Promise<void> => {
    const id = nextId++;
    await session.write({ stream: 'm', records: [record(id)], emittedAt: Date.now() });
    await session.commit();
    expected.push(id);
    committed++;
  };
  let pruned = 0;
  let compactions = 0;
  let refusedCompactions = 0;
  let loads = 0;

  for (let round = 0; round < 8; round++) {
    let busy = true;
    const work = Promise.all([
      ...writers.map(async (w) => {
        for (let i = 0; i < 10; i++) await commitOne(w);
      }),
      sleeperRounds.has(round) ? commitOne(sleeper) : Promise.resolve(),
      compactStore(store, lake, { minFiles: 4 }).then(
        () => compactions++,
        (error: unknown) => {
          // Two commits removing the same files: the later one refuses (transient), nothing else.
          if (!(error instanceof TributaryError) || error.kind !== 'transient') throw error;
          refusedCompactions++;
        },
      ),
    ]).finally(() => {
      busy = false;
    });
    const maintenance = (async () => {
      while (busy) {
        pruned += await pruneLog(store);
        await pruneCheckpoints(store);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const reader = (async () => {
      while (busy) {
        const before = committed;
        const state = await loadLakeState(store);
        const rows = [...state.files.values()].reduce((n, f) => n + f.rows, 0);
        expect(rows).toBeGreaterThanOrEqual(before);
        loads++;
      }
    })();
    await Promise.all([work, maintenance, reader]);
    await passTime(20 * MINUTE);
  }
  for (const w of [...writers, sleeper]) await w.close({ completed: true });

  expect(pruned).toBeGreaterThan(0);
  expect(compactions).toBeGreaterThan(0);
  expect(loads).toBeGreaterThan(0);
  const ids = (await readStreamRows(raw, { stream: 'm' })).map((r) => Number(r.payload.id)).sort((a, b) => a - b);
  expect(ids).toEqual([...expected].sort((a, b) => a - b));
  expect(ids).toHaveLength(3 * 10 * 8 + 3);
  // The log holds no entry below a checkpoint readers start after other than those not yet pruned: contiguous from its first.
  const log = (await readdir(join(raw.path, '_tributary', 'log'))).map((n) => Number(n.slice(0, 20)));
  expect(log).toEqual(Array.from({ length: log.length }, (_, i) => log[0]! + i));
  expect((await loadLakeState(store)).seq).toBe(log[log.length - 1]);
  store.close();
}, 120_000);
