/**
 * A sync that crashed after its commit is replayed by its resume, which drops the records it
 * already stored when their event id and content match a stored row (replay-window.ts).
 * Retention running between the crash and the resume defers the crashed sync's files, but
 * removes expired rows of earlier, completed syncs — among them the old key's latest row,
 * from which the first write filled a moved update's TOASTed fields (key-moves.ts
 * `filledFromOldRow`) and attributed its deletes (delete-attribution.ts). The resume's
 * lookup then found no earlier row: the moved update was stored a second time, unfilled
 * (`big` null, `unchanged_fields: ['big']`, one event id twice), and a plain CDC delete
 * stored by the crashed sync was refused and quarantined. A replayed change now takes what
 * its first write stored (session.ts `storedAttributions`). Found by a probe on 2026-11-28.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { applyRetention, compactLake, lakeDestination, readLatestAsOf, readStreamRows } from '../src/index.js';
import { cdcFields, keyedStream, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

let root: string;
let moto: MotoServer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-replay-retention-'));
  moto = await startMoto();
  await moto.createBucket('replay-after-retention');
});
afterAll(async () => {
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});

const stream = keyedStream('items', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, ...cdcFields });
const owner = { tenant_id: 't1', customer_id: 'c1' };
const big = 'x'.repeat(10_000);
const inserted: RecordData = { id: 4, v: 4, big, _tributary_op: 'c', _tributary_position: '0/1', _tributary_commit_time: '2026-01-01T00:00:00Z', ...owner };
/** `UPDATE items SET id = 33 WHERE id = 4` under REPLICA IDENTITY DEFAULT: the old key alone, TOASTed `big` left out. */
const moved: RecordData = { id: 33, v: 33, _tributary_op: 'u', _tributary_position: '0/2', _tributary_commit_time: '2026-03-01T00:00:00Z', _tributary_before: { id: 4 }, _tributary_unchanged: ['big'], ...owner };
/** Retention that expires January: the completed sync's rows; the crashed sync's files are deferred. */
const expireJanuary = { before: '2026-02-01T00:00:00Z', graceMs: 0 };

const storedRows = async (config: Record<string, unknown>): Promise<unknown[][]> =>
  (await readStreamRows(config, { stream: 'items' }))
    .map((r) => [r.entity_key, r.tenant_id, r.op, r.source_position, typeof r.payload.big === 'string' ? r.payload.big.length : r.payload.big, r.unchanged_fields])
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
const latest = async (config: Record<string, unknown>): Promise<unknown[][]> =>
  (await readLatestAsOf(config, { stream: 'items' })).map((r) => [r.entity_key, r.tenant_id, r.payload.v, String(r.payload.big).length, r.unchanged_fields]);

for (const target of ['local', 's3'] as const) {
  const configOf = (name: string): Record<string, unknown> => (target === 'local' ? { path: join(root, name) } : motoLakeConfig(moto.endpoint, 'replay-after-retention', { prefix: `${name}/` }));

  it(`${target}: a key move replayed after retention removed the old key's row is recognised as a replay (no second copy of the update)`, async () => {
    const config = configOf('move');
    expect(await writeSession(config, stream, [[inserted]])).toEqual([]);
    // The crashed sync: committed (the update filled from row 0/1), never completed.
    expect(await writeSession(config, stream, [[moved]], false)).toEqual([]);
    const latestBefore = await latest(config);
    expect(latestBefore).toEqual([['33', 't1', 33, 10_000, null]]);
    expect(await applyRetention(config, expireJanuary)).toMatchObject({ rowsRemoved: 1 });
    // The resume replays the change and completes.
    expect(await writeSession(config, stream, [[moved]])).toEqual([]);
    expect(await storedRows(config)).toEqual([
      ['33', 't1', 'update', '0/2', 10_000, null],
      ['4', 't1', 'delete', '0/2', null, null],
    ]);
    expect(await latest(config)).toEqual(latestBefore);
  });

  it(`${target}: a plain CDC delete replayed after retention removed its key's row is recognised as a replay, not refused`, async () => {
    const config = configOf('delete');
    expect(await writeSession(config, stream, [[inserted]])).toEqual([]);
    const deleted: RecordData = { id: 4, _tributary_op: 'd', _tributary_position: '0/2', _tributary_commit_time: '2026-03-01T00:00:00Z', _tributary_before: { id: 4 } };
    expect(await writeSession(config, stream, [[deleted]], false)).toEqual([]);
    await applyRetention(config, expireJanuary);
    expect(await writeSession(config, stream, [[deleted]])).toEqual([]);
    expect(await storedRows(config)).toEqual([['4', 't1', 'delete', '0/2', null, null]]);
  });
}

it('a tenant move (REPLICA IDENTITY FULL) replayed after retention removed the old tenant’s row is recognised as a replay', async () => {
  const config = { path: join(root, 'tenant-move') };
  expect(await writeSession(config, stream, [[inserted]])).toEqual([]);
  // `UPDATE items SET tenant_id = 't2' WHERE id = 4`: the whole old row as before-image but the TOASTed `big`, which the new row leaves out.
  const movedTenant: RecordData = { id: 4, v: 5, tenant_id: 't2', customer_id: 'c1', _tributary_op: 'u', _tributary_position: '0/2', _tributary_commit_time: '2026-03-01T00:00:00Z', _tributary_before: { id: 4, v: 4, ...owner }, _tributary_unchanged: ['big'] };
  expect(await writeSession(config, stream, [[movedTenant]], false)).toEqual([]);
  const latestBefore = await latest(config);
  expect(latestBefore).toEqual([['4', 't2', 5, 10_000, null]]);
  expect(await applyRetention(config, expireJanuary)).toMatchObject({ rowsRemoved: 1 });
  expect(await writeSession(config, stream, [[movedTenant]])).toEqual([]);
  expect(await storedRows(config)).toEqual([
    ['4', 't1', 'delete', '0/2', null, null],
    ['4', 't2', 'update', '0/2', 10_000, null],
  ]);
  expect(await latest(config)).toEqual(latestBefore);
});

it('in the same resumed batch, a replayed delete takes its stored attribution and a new one is still looked up', async () => {
  const config = { path: join(root, 'mixed') };
  const other: RecordData = { id: 7, v: 7, big: 'y', _tributary_op: 'c', _tributary_position: '0/3', _tributary_commit_time: '2026-03-02T00:00:00Z', tenant_id: 't3', customer_id: 'c7' };
  expect(await writeSession(config, stream, [[inserted, other]])).toEqual([]);
  const deleted: RecordData = { id: 4, _tributary_op: 'd', _tributary_position: '0/4', _tributary_commit_time: '2026-03-03T00:00:00Z', _tributary_before: { id: 4 } };
  expect(await writeSession(config, stream, [[deleted]], false)).toEqual([]);
  expect(await applyRetention(config, expireJanuary)).toMatchObject({ rowsRemoved: 1 });
  // The resume replays the delete of 4 and goes on with a new delete of 7 (whose row is March's, kept).
  const deleted7: RecordData = { id: 7, _tributary_op: 'd', _tributary_position: '0/5', _tributary_commit_time: '2026-03-04T00:00:00Z', _tributary_before: { id: 7 } };
  expect(await writeSession(config, stream, [[deleted, deleted7]])).toEqual([]);
  expect(await storedRows(config)).toEqual([
    ['4', 't1', 'delete', '0/4', null, null],
    ['7', 't3', 'delete', '0/5', null, null],
    ['7', 't3', 'insert', '0/3', 1, null],
  ]);
  expect(await latest(config)).toEqual([]);
});

it('a resumed session whose replay window was compacted after it opened still takes the stored attribution', async () => {
  const config = { path: join(root, 'window-compacted') };
  expect(await writeSession(config, stream, [[inserted]])).toEqual([]);
  // The crashed sync commits twice (two files in one partition), deleting 4 then updating nothing else.
  const deleted: RecordData = { id: 4, _tributary_op: 'd', _tributary_position: '0/2', _tributary_commit_time: '2026-03-01T00:00:00Z', _tributary_before: { id: 4 } };
  const other: RecordData = { id: 9, v: 9, _tributary_op: 'c', _tributary_position: '0/3', _tributary_commit_time: '2026-03-01T00:00:01Z', ...owner };
  const crashed = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  await crashed.write({ stream: 'items', records: [deleted], emittedAt: Date.now() });
  await crashed.commit();
  await crashed.write({ stream: 'items', records: [other], emittedAt: Date.now() });
  await crashed.commit();
  await crashed.close({ completed: false });
  expect(await applyRetention(config, expireJanuary)).toMatchObject({ rowsRemoved: 1 });
  // The resume opens (its replay window: the two files), then compaction merges them and a second run deletes them.
  const resumed = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  expect(await compactLake(config, { minFiles: 2, graceMs: 0 })).toMatchObject({ filesBefore: 2, filesAfter: 1 });
  // The next run empties the trash (files removed by a commit go after their grace period).
  expect(await compactLake(config, { minFiles: 2, graceMs: 0 })).toMatchObject({ filesDeleted: 2 });
  expect((await resumed.write({ stream: 'items', records: [deleted, other], emittedAt: Date.now() }))?.rejected ?? []).toEqual([]);
  await resumed.commit();
  await resumed.close({ completed: true });
  expect(await storedRows(config)).toEqual([
    ['4', 't1', 'delete', '0/2', null, null],
    ['9', 't1', 'insert', '0/3', null, null],
  ]);
});
