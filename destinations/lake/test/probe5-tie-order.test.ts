import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { compactLake, lakeDestination, queryLake, readLatestAsOf } from '../src/index.js';

// Two versions of one key with the same event time and cursor value in one batch (a row
// changed twice within a second of a second-resolution `updated_at`, read twice by one
// sync) share the derived event id and the batch's ingest time: they tied on every column of
// the point-in-time order, so the "latest" was whichever row DuckDB met first, and a
// compaction, which rewrites the files, could change it. The later one in the batch is the
// later version, in every read, before and after compaction.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-tie-order-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const jsonSchema = { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, updated_at: { type: 'string', format: 'date-time' }, amount: { type: 'integer' } } };
const stream: DestinationStream = { key: 'deals', name: 'deals', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema, resuming: false };
const AT = '2024-03-01T10:00:00Z';
const deal = (id: number, amount: number, updatedAt = AT): RecordData => ({ id, tenant_id: 't1', updated_at: updatedAt, amount });

async function sync(config: Record<string, unknown>, batches: RecordData[][]): Promise<void> {
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  for (const records of batches) await session.write({ stream: 'deals', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
}

const latest = async (config: Record<string, unknown>, keys?: string[]) => (await readLatestAsOf(config, { stream: 'deals', ...(keys ? { keys } : {}) })).map((r) => [r.payload.id, r.payload.amount]);

it('of two versions with one event time and cursor in one batch, the later is the latest, before and after compactions', async () => {
  const config = { path: join(root, 'one-batch'), streams: { deals: { customer_id_field: 'id' } } };
  // Sync 1: deal 1 at 10:00 (amount 5), then in the same batch its next version at the same second (6), then (7).
  // Deal 2 the other way round: its versions' amounts decrease, so no order by value can pass for the arrival order.
  await sync(config, [[deal(1, 5), deal(2, 9), deal(1, 6), deal(2, 8), deal(1, 7), deal(2, 3)]]);
  // Further syncs, so that compaction has files to merge (other keys, other times).
  for (let i = 0; i < 3; i++) await sync(config, [[deal(10 + i, 1, `2024-03-01T11:0${i}:00Z`)]]);
  expect(await latest(config, ['1', '2'])).toEqual([
    [1, 7],
    [2, 3],
  ]);
  const rows = await queryLake(config, `SELECT count(*) AS n, count(DISTINCT event_id) AS ids, count(DISTINCT ingest_time) AS times FROM deals WHERE id IN (1, 2)`);
  // The tie this is about: six rows, two event ids, one ingest time.
  expect(rows).toEqual([{ n: 6, ids: 2, times: 1 }]);
  for (let round = 0; round < 3; round++) {
    const compacted = await compactLake(config, { minFiles: 2 });
    expect(compacted.duplicatesDropped).toBe(0);
    expect(await latest(config, ['1', '2'])).toEqual([
      [1, 7],
      [2, 3],
    ]);
    // Make more files for the next round.
    await sync(config, [[deal(20 + round, 1, `2024-03-01T12:0${round}:00Z`)], [deal(30 + round, 1, `2024-03-01T12:0${round}:30Z`)]]);
  }
});

it('batches staged in one millisecond still get ingest times in their order', async () => {
  const config = { path: join(root, 'many-batches'), streams: { deals: { customer_id_field: 'id' } } };
  // Many one-record batches in a row: several fall within one millisecond of the clock.
  const batches = Array.from({ length: 200 }, (_, i) => [deal(1, i)]);
  await sync(config, batches);
  expect(await latest(config)).toEqual([[1, 199]]);
  const times = await queryLake(config, `SELECT count(DISTINCT ingest_time) AS times FROM deals`);
  expect(times).toEqual([{ times: 200 }]);
});
