/**
 * The delete the lake adds before a CDC update that moved its row to another primary key
 * (key-moves.ts) was dropped without a trace whenever it could not be stored. That is meant
 * only when its old key has no earlier row (nothing live to end). Refused for any other
 * reason (here: the stream schema requires a field the before-image lacks), the old key
 * stayed live in point-in-time reads beside the new one, and nothing reported it. Such a
 * delete is now quarantined, with a reason naming the update it was made for, and counted
 * among the stream's quarantined records, but never reported to the runtime as a rejected
 * index of its batch (it has none).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, createLogger, parseConfig, type DestinationStream, type RecordData, type RejectedRecord } from '@tributary/core';
import { lakeDestination, queryLake, readLatestAsOf } from '../src/index.js';
import { cdcFields, keyedStream } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-key-move-quarantine-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

/** A stream whose schema requires `v`: a delete carrying the old key only (REPLICA IDENTITY DEFAULT) fails it. */
const base = keyedStream('items', { v: { type: 'integer' }, ...cdcFields });
const stream: DestinationStream = { ...base, jsonSchema: { ...base.jsonSchema, required: ['id', 'v'] } };
const owner = { tenant_id: 't1', customer_id: 'c1' };

const snapshot = (id: number, v: number, position: string, time: string): RecordData => ({ id, v, _tributary_op: 'r', _tributary_position: position, _tributary_commit_time: time, ...owner });
const moved = (id: number, v: number, position: string, time: string, before: Record<string, unknown>): RecordData => ({ id, v, _tributary_op: 'u', _tributary_position: position, _tributary_commit_time: time, _tributary_before: before, ...owner });

/** One session writing `batches`; returns the records refused and the lines logged. */
async function write(config: Record<string, unknown>, batches: RecordData[][], completed = true): Promise<{ rejected: RejectedRecord[]; logged: string[] }> {
  const logged: string[] = [];
  const ctx = createConnectorContext({ logger: createLogger((_level, message) => logged.push(message)) });
  const session = await lakeDestination.open(ctx, parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  const rejected: RejectedRecord[] = [];
  for (const records of batches) rejected.push(...((await session.write({ stream: stream.key, records, emittedAt: Date.now() }))?.rejected ?? []));
  await session.commit();
  await session.close({ completed });
  return { rejected, logged };
}

/** The quarantined records: [reason, record as JSON text] (none when the lake has no quarantine view: nothing was ever quarantined). */
async function quarantined(config: Record<string, unknown>): Promise<Array<{ reason: string; record: string }>> {
  const [view] = await queryLake(config, `SELECT count(*) AS n FROM duckdb_views() WHERE view_name = 'quarantine'`);
  if (Number(view!.n) === 0) return [];
  return (await queryLake(config, `SELECT reason, CAST(record AS VARCHAR) AS record FROM quarantine`)).map((r) => ({ reason: String(r.reason), record: String(r.record) }));
}

const live = async (config: Record<string, unknown>) => (await readLatestAsOf(config, { stream: 'items' })).map((r) => [r.entity_key, r.op, r.payload.v]);

it('a delete of a moved key that the stream schema refuses is quarantined with the update it was made for, not dropped silently', async () => {
  const config = { path: join(root, 'schema') };
  const { rejected, logged } = await write(config, [[snapshot(4, 4, '0/1', '2026-01-01T00:00:00Z'), moved(33, 4, '0/2', '2026-01-02T00:00:00Z', { id: 4 })]]);
  // Not a refused record of the runtime's batch: both of its records were stored.
  expect(rejected).toEqual([]);
  const stored = await quarantined(config);
  expect(stored).toHaveLength(1);
  expect(stored[0]!.reason).toBe("the delete of key 4 that the lake synthesized for the key move of the update at position 0/2 (to key 33): does not match the stream schema: (record) must have required property 'v'");
  expect(JSON.parse(stored[0]!.record)).toMatchObject({ id: 4, _tributary_op: 'd', _tributary_position: '0/2', _tributary_before: { id: 4 }, ...owner });
  // Counted among the stream's quarantined records.
  expect(logged.find((line) => line.startsWith('lake items:'))).toContain('2 row(s) written, 0 replayed row(s) already in the lake skipped, 1 record(s) quarantined');
  // The old key is still live (its delete was not stored), but the quarantine says why.
  expect(await live(config)).toEqual([
    ['33', 'update', 4],
    ['4', 'snapshot', 4],
  ]);
});

it('replayed after a crash, the quarantined delete is recognised as already quarantined, not stored twice', async () => {
  const config = { path: join(root, 'replay') };
  const batch = [snapshot(4, 4, '0/1', '2026-01-01T00:00:00Z'), moved(33, 4, '0/2', '2026-01-02T00:00:00Z', { id: 4 })];
  expect((await write(config, [batch], false)).rejected).toEqual([]);
  const { rejected, logged } = await write(config, [batch]);
  expect(rejected).toEqual([]);
  expect(logged.find((line) => line.startsWith('lake items:'))).toContain('1 record(s) quarantined (1 of them replays already in the quarantine)');
  expect(await quarantined(config)).toHaveLength(1);
});

it('a delete of a moved key with no earlier row is still dropped: nothing is live to end', async () => {
  const config = { path: join(root, 'no-earlier-row') };
  const { rejected } = await write(config, [[moved(33, 4, '0/2', '2026-01-02T00:00:00Z', { id: 98 })]]);
  expect(rejected).toEqual([]);
  expect(await quarantined(config)).toEqual([]);
  expect(await live(config)).toEqual([['33', 'update', 4]]);
});
