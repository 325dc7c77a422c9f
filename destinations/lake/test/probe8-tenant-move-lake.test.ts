/**
 * A CDC update that changes only the tenant of a row whose stream is keyed by `id`
 * (PostgreSQL `UPDATE t SET tenant_id = 'beta' WHERE id = 4`): the key did not move, so no
 * delete was added for it, and the lake partitions and reads by tenant and key: the old
 * tenant's row of key 4 stayed live, and point-in-time reads returned the row in both
 * tenants. Under REPLICA IDENTITY FULL the before-image holds the old tenant: the lake now
 * ends key 4 in it with a delete at the update's position, as for a key move (key-moves.ts).
 * Under the default identity there is no before-image: nothing changes (documented).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { cdcFields, duckQuery, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-tenant-move-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', { v: { type: 'integer' }, tenant_id: { type: ['string', 'integer', 'null'] }, big: { type: ['string', 'null'] }, ...cdcFields, _tributary_txid: { type: 'integer' } });
const big = 'x'.repeat(10_000);

/** The old row as REPLICA IDENTITY FULL sends it in `_tributary_before`. */
const row = (id: number, v: number, tenant: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id, v, tenant_id: tenant, customer_id: `c${id}`, ...extra });
const snapshot = (fields: Record<string, unknown>, position: string, time: string): RecordData => ({ ...fields, _tributary_op: 'r', _tributary_position: position, _tributary_commit_time: time });
const updated = (fields: Record<string, unknown>, before: Record<string, unknown> | undefined, position: string, time: string, txid = 700): RecordData => ({
  ...fields,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  _tributary_txid: txid,
  ...(before !== undefined ? { _tributary_before: before } : {}),
});

/** The rows live as of `asOf` (default now): [tenant, key, op, v]. */
const live = async (config: Record<string, unknown>, asOf?: string) =>
  (await readLatestAsOf(config, { stream: 'items', ...(asOf !== undefined ? { asOf } : {}) })).map((r) => [r.tenant_id, r.entity_key, r.op, r.payload.v]);

const deletes = (config: Record<string, unknown>) =>
  queryLake(config, `SELECT tenant_id, entity_key, customer_id, source_position, CAST(source_txid AS VARCHAR) AS txid, CAST(event_time AS VARCHAR) AS event_time FROM events WHERE op = 'delete' ORDER BY source_position`);

it('REPLICA IDENTITY FULL: an update that changes only the tenant ends the key in its old tenant', async () => {
  const config = { path: join(root, 'full') };
  const rejected = await writeSession(config, stream, [
    [snapshot(row(4, 4, 'acme'), '0/1', '2026-01-01T00:00:00Z'), snapshot(row(5, 5, 'acme'), '0/2', '2026-01-01T00:00:00Z')],
    [updated(row(4, 40, 'beta'), row(4, 4, 'acme'), '0/3', '2026-01-02T00:00:00Z')],
  ]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([
    ['acme', '5', 'snapshot', 5],
    ['beta', '4', 'update', 40],
  ]);
  // Before the update: key 4 in acme only.
  expect(await live(config, '2026-01-01T12:00:00Z')).toEqual([
    ['acme', '4', 'snapshot', 4],
    ['acme', '5', 'snapshot', 5],
  ]);
  // The delete of 4 in acme: at the update's position, txid and commit time.
  expect(await deletes(config)).toEqual([{ tenant_id: 'acme', entity_key: '4', customer_id: 'c4', source_position: '0/3', txid: '700', event_time: '2026-01-02 00:00:00' }]);
  // An independent DuckDB over the Parquet files: the latest row per (tenant, key) is a delete for acme/4.
  const files = join(config.path, 'data', 'items', '**', '*.parquet').replaceAll("'", "''");
  expect(
    await duckQuery(
      `SELECT tenant_id, entity_key, op FROM read_parquet('${files}', hive_partitioning = false) ` +
        `QUALIFY row_number() OVER (PARTITION BY tenant_id, entity_key ORDER BY event_time DESC, source_position DESC) = 1 ORDER BY tenant_id, entity_key`,
    ),
  ).toEqual([
    { tenant_id: 'acme', entity_key: '4', op: 'delete' },
    { tenant_id: 'acme', entity_key: '5', op: 'snapshot' },
    { tenant_id: 'beta', entity_key: '4', op: 'update' },
  ]);
});

it('REPLICA IDENTITY FULL: moved to another tenant and back in one batch, each step reads as it was', async () => {
  const config = { path: join(root, 'back') };
  const rejected = await writeSession(config, stream, [
    [
      snapshot(row(4, 4, 'acme'), '0/1', '2026-01-01T00:00:00Z'),
      updated(row(4, 40, 'beta'), row(4, 4, 'acme'), '0/2', '2026-01-02T00:00:00Z'),
      updated(row(4, 41, 'acme'), row(4, 40, 'beta'), '0/3', '2026-01-03T00:00:00Z', 701),
      // An ordinary update under FULL (tenant unchanged): nothing added.
      updated(row(4, 42, 'acme'), row(4, 41, 'acme'), '0/4', '2026-01-04T00:00:00Z', 702),
    ],
  ]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([['acme', '4', 'update', 42]]);
  expect(await live(config, '2026-01-03T12:00:00Z')).toEqual([['acme', '4', 'update', 41]]);
  expect(await live(config, '2026-01-02T12:00:00Z')).toEqual([['beta', '4', 'update', 40]]);
  expect((await deletes(config)).map((d) => [d.tenant_id, d.entity_key, d.source_position])).toEqual([
    ['acme', '4', '0/2'],
    ['beta', '4', '0/3'],
  ]);
});

it('REPLICA IDENTITY DEFAULT (no before-image): nothing is added, the old tenant keeps the row (documented)', async () => {
  const config = { path: join(root, 'default') };
  const rejected = await writeSession(config, stream, [[snapshot(row(4, 4, 'acme'), '0/1', '2026-01-01T00:00:00Z'), updated(row(4, 40, 'beta'), undefined, '0/2', '2026-01-02T00:00:00Z')]]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([
    ['acme', '4', 'snapshot', 4],
    ['beta', '4', 'update', 40],
  ]);
});

it('tenants compared as the lake derives them: default_tenant for a null tenant, 7 and "7" one tenant; a constant tenant never moves', async () => {
  const config = { path: join(root, 'fallback'), default_tenant: 'main' };
  const rejected = await writeSession(config, stream, [
    [
      snapshot(row(4, 4, null), '0/1', '2026-01-01T00:00:00Z'),
      snapshot(row(5, 5, 'beta'), '0/2', '2026-01-01T00:00:00Z'),
      snapshot(row(6, 6, null), '0/3', '2026-01-01T00:00:00Z'),
      snapshot({ ...row(7, 7, null), tenant_id: 7 }, '0/4', '2026-01-01T00:00:00Z'),
      // null (main) → beta: ends 4 in main.
      updated(row(4, 40, 'beta'), row(4, 4, null), '0/5', '2026-01-02T00:00:00Z'),
      // beta → null (main): ends 5 in beta.
      updated(row(5, 50, null), row(5, 5, 'beta'), '0/6', '2026-01-02T00:00:00Z'),
      // null → "main": the same tenant, nothing added.
      updated(row(6, 60, 'main'), row(6, 6, null), '0/7', '2026-01-02T00:00:00Z'),
      // 7 → "7": the same tenant, nothing added.
      updated(row(7, 70, '7'), { ...row(7, 7, null), tenant_id: 7 }, '0/8', '2026-01-02T00:00:00Z'),
    ],
  ]);
  expect(rejected).toEqual([]);
  expect(await live(config)).toEqual([
    ['7', '7', 'update', 70],
    ['beta', '4', 'update', 40],
    ['main', '5', 'update', 50],
    ['main', '6', 'update', 60],
  ]);
  expect((await deletes(config)).map((d) => [d.tenant_id, d.entity_key, d.source_position])).toEqual([
    ['main', '4', '0/5'],
    ['beta', '5', '0/6'],
  ]);

  const constant = { path: join(root, 'constant'), streams: { items: { tenant_id: 'fixed' } } };
  expect(await writeSession(constant, stream, [[snapshot(row(4, 4, 'acme'), '0/1', '2026-01-01T00:00:00Z'), updated(row(4, 40, 'beta'), row(4, 4, 'acme'), '0/2', '2026-01-02T00:00:00Z')]])).toEqual([]);
  expect(await live(constant)).toEqual([['fixed', '4', 'update', 40]]);
  expect(await queryLake(constant, `SELECT count(*) AS n FROM events WHERE op = 'delete'`)).toEqual([{ n: 0 }]);
});

it('replayed after a crash, the delete of the old tenant is recognised as a replay', async () => {
  const config = { path: join(root, 'replay') };
  const batch = [snapshot(row(4, 4, 'acme'), '0/1', '2026-01-01T00:00:00Z'), updated(row(4, 40, 'beta'), row(4, 4, 'acme'), '0/2', '2026-01-02T00:00:00Z')];
  expect(await writeSession(config, stream, [batch], false)).toEqual([]);
  expect(await writeSession(config, stream, [batch.slice(1)], false)).toEqual([]);
  expect(await writeSession(config, stream, [batch])).toEqual([]);
  const rows = await queryLake(config, 'SELECT tenant_id, entity_key, op, source_position FROM events ORDER BY source_position, op');
  expect(rows).toEqual([
    { tenant_id: 'acme', entity_key: '4', op: 'snapshot', source_position: '0/1' },
    { tenant_id: 'acme', entity_key: '4', op: 'delete', source_position: '0/2' },
    { tenant_id: 'beta', entity_key: '4', op: 'update', source_position: '0/2' },
  ]);
  // The delete's derived event id is its own (op delete), not the update's.
  const ids = await queryLake(config, `SELECT count(DISTINCT event_id) AS n FROM events WHERE source_position = '0/2'`);
  expect(ids).toEqual([{ n: 2 }]);
});

it('with an integer event_id_field, the delete of the old tenant gets −id − 1', async () => {
  const config = { path: join(root, 'event-id'), streams: { items: { event_id_field: 'seq' } } };
  const seqStream = keyedStream('items', { v: { type: 'integer' }, seq: { type: 'integer' }, ...cdcFields });
  const batch = [snapshot({ ...row(4, 4, 'acme'), seq: 1 }, '0/1', '2026-01-01T00:00:00Z'), updated({ ...row(4, 40, 'beta'), seq: 2 }, { ...row(4, 4, 'acme'), seq: 1 }, '0/2', '2026-01-02T00:00:00Z')];
  expect(await writeSession(config, seqStream, [batch], false)).toEqual([]);
  expect(await writeSession(config, seqStream, [batch])).toEqual([]);
  expect(await queryLake(config, 'SELECT tenant_id, op, event_id FROM events ORDER BY source_position, op')).toEqual([
    { tenant_id: 'acme', op: 'snapshot', event_id: '1' },
    { tenant_id: 'acme', op: 'delete', event_id: '-3' },
    { tenant_id: 'beta', op: 'update', event_id: '2' },
  ]);
});

/** The rows live now: [tenant, key, v, big's length or null, unchanged_fields]. */
const filled = async (config: Record<string, unknown>) =>
  (await readLatestAsOf(config, { stream: 'items' })).map((r) => [r.tenant_id, r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null), r.unchanged_fields]);

it('a tenant move that leaves a TOASTed field out is stored with the old tenant’s value (old row in the lake, and in the batch)', async () => {
  const config = { path: join(root, 'toast') };
  expect(await writeSession(config, stream, [[snapshot(row(4, 4, 'acme', { big }), '0/1', '2026-01-01T00:00:00Z')]])).toEqual([]);
  const rejected = await writeSession(config, stream, [
    [
      { ...updated(row(4, 40, 'beta'), row(4, 4, 'acme', { big }), '0/2', '2026-01-02T00:00:00Z'), _tributary_unchanged: ['big'] },
      snapshot(row(5, 5, 'acme', { big: 'y'.repeat(5000) }), '0/3', '2026-01-02T00:00:00Z'),
      { ...updated(row(5, 50, 'beta'), row(5, 5, 'acme', { big: 'y'.repeat(5000) }), '0/4', '2026-01-03T00:00:00Z'), _tributary_unchanged: ['big'] },
    ],
  ]);
  expect(rejected).toEqual([]);
  expect(await filled(config)).toEqual([
    ['beta', '4', 40, 10_000, null],
    ['beta', '5', 50, 5000, null],
  ]);
});

it('read time: when the old tenant’s latest row also left the field out, the walk follows the delete into the old tenant', async () => {
  const config = { path: join(root, 'walk') };
  // One session per record: each old row is in the lake when the next change is written.
  for (const record of [
    snapshot(row(4, 4, 'acme', { big }), '0/1', '2026-01-01T00:00:00Z'),
    { ...updated(row(4, 40, 'acme'), undefined, '0/2', '2026-01-02T00:00:00Z'), _tributary_unchanged: ['big'] },
    { ...updated(row(4, 41, 'beta'), row(4, 40, 'acme'), '0/3', '2026-01-03T00:00:00Z'), _tributary_unchanged: ['big'] },
    // And back to acme, leaving it out again.
    { ...updated(row(4, 42, 'acme'), row(4, 41, 'beta'), '0/4', '2026-01-04T00:00:00Z'), _tributary_unchanged: ['big'] },
  ]) {
    expect(await writeSession(config, stream, [[record]])).toEqual([]);
  }
  expect(await filled(config)).toEqual([['acme', '4', 42, 10_000, ['big']]]);
  const asOf = async (at: string, key: 'entity_key' | 'customer_id') =>
    (await readLatestAsOf(config, { stream: 'items', asOf: at, key })).map((r) => [r.tenant_id, r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null)]);
  expect(await asOf('2026-01-03T12:00:00Z', 'entity_key')).toEqual([['beta', '4', 41, 10_000]]);
  expect(await asOf('2026-01-03T12:00:00Z', 'customer_id')).toEqual([['beta', '4', 41, 10_000]]);
  expect(await asOf('2026-01-05T00:00:00Z', 'customer_id')).toEqual([['acme', '4', 42, 10_000]]);
});

it('a delete of the old tenant that cannot be stored is quarantined, its reason naming the tenant move', async () => {
  const config = { path: join(root, 'quarantine') };
  // The stream schema requires `v`, which this before-image lacks.
  const strict = { ...stream, jsonSchema: { ...stream.jsonSchema, required: ['id', 'v'] } };
  const rejected = await writeSession(config, strict, [[snapshot(row(4, 4, 'acme'), '0/1', '2026-01-01T00:00:00Z'), updated(row(4, 40, 'beta'), { id: 4, tenant_id: 'acme', customer_id: 'c4' }, '0/2', '2026-01-02T00:00:00Z')]]);
  expect(rejected).toEqual([]);
  const reasons = (await queryLake(config, 'SELECT reason FROM quarantine')).map((r) => r.reason);
  expect(reasons).toEqual(["the delete of key 4 in tenant acme that the lake synthesized for the tenant move of the update at position 0/2 (to tenant beta): does not match the stream schema: (record) must have required property 'v'"]);
});
