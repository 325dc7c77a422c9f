// Shared by the commit-log pruning tests (log-and-checkpoint-pruning, probe8-log-pruning-*):
// one keyed stream `m`, one record per commit, and the two clocks the tests fake — the
// store's (checkpoint ages) and the writer's monotonic clock.
import { readdir, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, vi } from 'vitest';
import type { DestinationSession } from '@tributary/core';
import { readStreamRows } from '../src/index.js';
import { keyedStream } from './helpers.js';

export const HOUR = 60 * 60_000;
export const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } });
export const record = (id: number): Record<string, unknown> => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: '2026-03-01T10:00:00Z' });

/** Writes record `id` to stream `m` and commits: one log entry. */
export async function commitOne(session: DestinationSession, id: number): Promise<void> {
  await session.write({ stream: 'm', records: [record(id)], emittedAt: Date.now() });
  await session.commit();
}

/** The file name of log entry or checkpoint `seq`. */
export const seqName = (seq: number): string => `${String(seq).padStart(20, '0')}.json`;

/** The ids of stream `m`'s visible rows, sorted. */
export const storedIds = async (config: Record<string, unknown>): Promise<number[]> =>
  (await readStreamRows(config, { stream: 'm' })).map((r) => Number(r.payload.id)).sort((a, b) => a - b);

/** Every checkpoint of a local lake, aged by `ms` (the store's clock moved on). */
export async function ageCheckpoints(lakeDir: string, ms: number): Promise<void> {
  const dir = join(lakeDir, '_tributary', 'checkpoints');
  for (const name of await readdir(dir)) {
    const { mtimeMs } = await stat(join(dir, name));
    const at = new Date(mtimeMs - ms);
    await utimes(join(dir, name), at, at);
  }
}

/** This process's monotonic clock, `ms` ahead from now on (what a session that waited that long sees). Undone by vi.restoreAllMocks. */
export function monotonicClockAhead(ms: number): void {
  const real = performance.now.bind(performance);
  vi.spyOn(performance, 'now').mockImplementation(() => real() + ms);
}

/**
 * Virtual time for a local lake: the returned `passTime(ms)` moves this process's monotonic
 * clock on by `ms` (a spy on performance.now, undone by vi.restoreAllMocks) and the store's
 * clock too (every checkpoint aged by `ms`).
 */
export function virtualTime(lakeDir: string): (ms: number) => Promise<void> {
  let offset = 0;
  const real = performance.now.bind(performance);
  vi.spyOn(performance, 'now').mockImplementation(() => real() + offset);
  return async (ms) => {
    offset += ms;
    await ageCheckpoints(lakeDir, ms).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error; // no checkpoint directory yet
    });
  };
}

/** The lake holds rows 0 and 200 only at commit 112, and the pruned entry 2 was not created again (see probe8-log-pruning-suspend). */
export async function expectNoGhostCommit(lakeDir: string, state: { seq: number }): Promise<void> {
  expect(await readdir(join(lakeDir, '_tributary', 'log'))).not.toContain(seqName(2));
  expect(state.seq).toBe(112);
  expect(await storedIds({ path: lakeDir })).toEqual([0, 200]);
}
