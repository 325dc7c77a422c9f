import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { compactLake, lakeDestination, queryLake, readLatestAsOf } from '../src/index.js';

// A keyed stream without positions: no cursor and no CDC position (a full refresh of a
// table without an updated-at column). Its event time is the ingest time.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-positionless-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const jsonSchema = { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, amount: { type: 'integer' } } };
const stream: DestinationStream = { key: 'accounts', name: 'accounts', syncMode: 'full_refresh', destinationSyncMode: 'append', primaryKey: [['id']], cursorField: [], jsonSchema, resuming: false };
const row = (id: number, amount: number): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, amount });

/** One session; `completed: false` leaves it unclean, as a crash would (its rows may come again). */
async function sync(config: Record<string, unknown>, records: RecordData[], completed = true): Promise<void> {
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  await session.write({ stream: 'accounts', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed });
}

it('a changed re-read is a new event, an identical one after a crash a replay; compaction keeps a value that changed back', async () => {
  const config = { path: join(root, 'lake') };
  await sync(config, [row(1, 10), row(2, 5)], false);
  // The rerun after the crash: account 2 is the same (a replay, dropped), account 1 changed.
  await sync(config, [row(1, 11), row(2, 5)]);
  // A later sync: account 1 changed back to its first value.
  await sync(config, [row(1, 10)]);
  const stored = async () => (await queryLake(config, 'SELECT id, amount FROM accounts ORDER BY ingest_time, id')).map((r) => [r.id, r.amount]);
  expect(await stored()).toEqual([
    [1, 10],
    [2, 5],
    [1, 11],
    [1, 10],
  ]);
  const latest = async () => (await readLatestAsOf(config, { stream: 'accounts' })).map((r) => [r.payload.id, r.payload.amount]);
  expect(await latest()).toEqual([
    [1, 10],
    [2, 5],
  ]);

  const compacted = await compactLake(config, { minFiles: 2 });
  expect(compacted.partitions).toBeGreaterThan(0);
  expect(compacted.duplicatesDropped).toBe(0);
  expect(await stored()).toEqual([
    [1, 10],
    [2, 5],
    [1, 11],
    [1, 10],
  ]);
  expect(await latest()).toEqual([
    [1, 10],
    [2, 5],
  ]);
});

it('a compaction between a crash and its resume does not widen the replay window to completed syncs', async () => {
  const config = { path: join(root, 'compaction-window') };
  await sync(config, [row(1, 10)]);
  await sync(config, [row(1, 11)]);
  // A sync that crashed after its commit: its rows may come again.
  await sync(config, [row(2, 5)], false);
  const compacted = await compactLake(config, { minFiles: 2 });
  expect(compacted.partitions).toBeGreaterThan(0);
  // The resume: account 2 is replayed; account 1 changed back to its first value meanwhile,
  // a new event (the window holds only the crashed sync's rows, not the completed syncs').
  await sync(config, [row(1, 10), row(2, 5)]);
  expect((await queryLake(config, 'SELECT id, amount FROM accounts ORDER BY ingest_time, id')).map((r) => [r.id, r.amount])).toEqual([
    [1, 10],
    [1, 11],
    [2, 5],
    [1, 10],
  ]);
  expect((await readLatestAsOf(config, { stream: 'accounts' })).map((r) => [r.payload.id, r.payload.amount])).toEqual([
    [1, 10],
    [2, 5],
  ]);
});
