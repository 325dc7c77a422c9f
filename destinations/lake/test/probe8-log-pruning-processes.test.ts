import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationSession } from '@tributary/core';
import { loadLakeState, readStreamRows } from '../src/index.js';
import { pruneCheckpoints, pruneLog } from '../src/commit-log.js';
import { lakeConfigSchema } from '../src/config.js';
import { openLakeSession } from '../src/session.js';
import { openStore } from '../src/storage/open-store.js';
import { repoRoot } from './helpers.js';
import { HOUR, record, stream, virtualTime } from './log-pruning-helpers.js';

// Writer sessions in separate processes race for the same sequence numbers (link(2) on one
// local lake) while this process prunes the log and checkpoints under them, reads the lake,
// and keeps one session of its own that commits only in the first and last rounds. Between
// rounds (no child running) two hours pass: every checkpoint is aged two hours (utimes) and
// this process's monotonic clock moves two hours on, so each round prunes below the
// checkpoints of the rounds before it, the children (which open the lake in their round) are
// current, and this process's session is stale and must read the log before it commits.
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-probe8-log-pruning-processes-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});


/** A child writer: one session committing ids first..first+count-1, one per commit, then completing. */
const child = `
import { createConnectorContext, parseConfig } from '@tributary/core';
import { lakeDestination } from '@tributary/destination-lake';
const [path, first, count] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const stream = ${JSON.stringify(stream)};
const session = await lakeDestination.open(createConnectorContext({ connection: 'c' }), parseConfig(lakeDestination.spec.connectionSpecification, { path }), [stream]);
for (let id = first; id < first + count; id++) {
  await session.write({ stream: 'm', records: [{ id, tenant_id: 't1', customer_id: 'c' + id, updated_at: '2026-03-01T10:00:00Z' }], emittedAt: Date.now() });
  await session.commit();
}
await session.close({ completed: true });
`;

function runChild(path: string, first: number, count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', '--input-type=module', '-e', child, path, String(first), String(count)], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child writer ${first} exited ${code}: ${stderr}`))));
  });
}

it('three writer processes per round race on one local lake while this process prunes and reads; a stale session of this process commits after pruned entries; every commit is read once', async () => {
  const raw = { path: join(root, 'lake') };
  const lake = parseConfig(lakeConfigSchema, raw);
  const store = openStore(lake);
  const passTime = virtualTime(raw.path);

  const own: DestinationSession = await openLakeSession(createConnectorContext({ connection: 'c' }), lake, store, [stream]);
  const expected: number[] = [];
  const ownCommit = async (id: number): Promise<void> => {
    await own.write({ stream: 'm', records: [record(id)], emittedAt: Date.now() });
    await own.commit();
    expected.push(id);
  };
  const rounds = 3;
  const perChild = 25;
  let pruned = 0;
  let loads = 0;
  for (let round = 0; round < rounds; round++) {
    let busy = true;
    const children = Promise.all(
      [0, 1, 2].map((c) => {
        const first = 10_000 * (round + 1) + 1_000 * c;
        for (let id = first; id < first + perChild; id++) expected.push(id);
        return runChild(raw.path, first, perChild);
      }),
    );
    const work = Promise.all([children, round === 0 || round === rounds - 1 ? ownCommit(round) : Promise.resolve()]).finally(() => {
      busy = false;
    });
    const maintenance = (async () => {
      let lastSeq = 0;
      while (busy) {
        pruned += await pruneLog(store);
        await pruneCheckpoints(store);
        const state = await loadLakeState(store);
        expect(state.seq).toBeGreaterThanOrEqual(lastSeq);
        lastSeq = state.seq;
        loads++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all([work, maintenance]);
    await passTime(2 * HOUR);
  }
  await own.close({ completed: true });
  expect(pruned).toBeGreaterThan(0);
  const ids = (await readStreamRows(raw, { stream: 'm' })).map((r) => Number(r.payload.id)).sort((a, b) => a - b);
  expect(ids).toEqual([...expected].sort((a, b) => a - b));
  const log = (await readdir(join(raw.path, '_tributary', 'log'))).map((n) => Number(n.slice(0, 20)));
  expect(log).toEqual(Array.from({ length: log.length }, (_, i) => log[0]! + i));
  expect((await loadLakeState(store)).seq).toBe(log[log.length - 1]);
  store.close();
}, 120_000);
