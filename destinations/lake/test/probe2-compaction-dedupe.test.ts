import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { compactLake, lakeDestination, readLatestAsOf, readStreamRows } from '../src/index.js';

// An incremental stream whose cursor (`updated_at`, also the event time) has a coarse
// granularity: a row changed twice within one cursor value is read by two syncs with the
// same primary key, position and op, so both changes get one event id and one event time.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe2-dedupe-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const jsonSchema = { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, updated_at: { type: 'string', format: 'date-time' }, amount: { type: 'integer' } } };
const stream: DestinationStream = { key: 'accounts', name: 'accounts', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema, resuming: false };
const row = (id: number, amount: number): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: '2024-03-01T10:00:00Z', amount });

async function sync(config: Record<string, unknown>, records: RecordData[], completed = true): Promise<void> {
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  await session.write({ stream: 'accounts', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed });
}

it('compaction keeps a change that shares its event id and event time with an earlier, different row; it still drops a replay', async () => {
  const config = { path: join(root, 'lake') };
  await sync(config, [row(1, 10), row(2, 5)]);
  // The next sync re-reads the cursor's last value (inclusive): account 1 changed meanwhile
  // (same updated_at), account 2 did not.
  await sync(config, [row(1, 11), row(2, 5)]);
  const ids = (await readStreamRows(config, { stream: 'accounts' })).filter((r) => r.payload.id === 1).map((r) => r.event_id);
  expect(new Set(ids).size).toBe(1);
  const latest = async () => (await readLatestAsOf(config, { stream: 'accounts' })).map((r) => [r.payload.id, r.payload.amount]);
  const stored = async () => (await readStreamRows(config, { stream: 'accounts' })).map((r) => [Number(r.payload.id), Number(r.payload.amount)]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  expect(await latest()).toEqual([
    [1, 11],
    [2, 5],
  ]);
  const latestBefore = await readLatestAsOf(config, { stream: 'accounts' });

  const compacted = await compactLake(config, { minFiles: 2 });
  expect(compacted.partitions).toBe(1);
  // Account 2's second row is a replay (the same row read again): dropped.
  expect(compacted.duplicatesDropped).toBe(1);
  expect(await stored()).toEqual([
    [1, 10],
    [1, 11],
    [2, 5],
  ]);
  // The point-in-time answer is the one before compaction, to the last column (account 2's
  // row is the copy it returned before: the later one).
  expect(await readLatestAsOf(config, { stream: 'accounts' })).toEqual(latestBefore);
});
