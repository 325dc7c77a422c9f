import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationSession } from '@tributary/core';
import { applyRetention, compactLake, lakeDestination, loadLakeState, readStreamRows } from '../src/index.js';
import { lakeConfigSchema } from '../src/config.js';
import { openStore } from '../src/storage/open-store.js';
import { keyedStream } from './helpers.js';

// Every 50th commit writes a checkpoint of the whole state (every visible file), and none was
// ever deleted. Maintenance now deletes the checkpoints a newer one replaces. (Log entries go
// only below a checkpoint an hour old: see log-pruning.test.ts.)
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-log-pruning-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } });
const record = (id: number): Record<string, unknown> => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: '2026-03-01T10:00:00Z' });

async function open(config: Record<string, unknown>): Promise<DestinationSession> {
  return lakeDestination.open(createConnectorContext({ connection: 'c' }), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
}

async function commitOne(session: DestinationSession, id: number): Promise<void> {
  await session.write({ stream: 'm', records: [record(id)], emittedAt: Date.now() });
  await session.commit();
}

const stateOf = (config: Record<string, unknown>) => loadLakeState(openStore(parseConfig(lakeConfigSchema, config)));
const keysUnder = async (dir: string): Promise<string[]> => (await readdir(dir)).sort();

it('maintenance deletes the checkpoints a newer one replaces; the lake opens to the same state, and a session opened before them still commits', async () => {
  const config = { path: join(root, 'lake') };
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
