/**
 * Point-in-time reads fill the TOASTed fields an update left out (`unchanged_fields`) from
 * earlier rows, walking across updates that moved the row from another key
 * (reader.ts `fillAcrossKeyMoves`). Here: reads keyed by customer id, and moves whose
 * before-image holds the whole old row (REPLICA IDENTITY FULL), with or without the
 * TOASTed field, and a key moved back onto itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf } from '../src/index.js';
import { cdcFields, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-key-move-walk-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('items', { v: { type: 'integer' }, big: { type: ['string', 'null'] }, ...cdcFields });
const big = 'x'.repeat(10_000);
const owner = (customer = 'c1') => ({ tenant_id: 't1', customer_id: customer });

const snapshot = (id: number, position: string, time: string, customer = 'c1'): RecordData => ({ id, v: id, big, _tributary_op: 'r', _tributary_position: position, _tributary_commit_time: time, ...owner(customer) });
/** An update that left `big` out; `before` is the before-image when it moved the row (the old key, or the whole old row). */
const updated = (id: number, v: number, before: Record<string, unknown> | undefined, position: string, time: string, customer = 'c1'): RecordData => ({
  id,
  v,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: time,
  ...(before !== undefined ? { _tributary_before: before } : {}),
  _tributary_unchanged: ['big'],
  ...owner(customer),
});

/** The rows live as of `at`, read by `key`: [customer, key, v, big's length or null]. */
const asOf = async (config: Record<string, unknown>, at: string, key: 'entity_key' | 'customer_id' = 'entity_key') =>
  (await readLatestAsOf(config, { stream: 'items', asOf: at, key })).map((r) => [r.customer_id, r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null)]);

/** One session per batch (so that a field-omitting old row is in the lake when the next move is written). */
async function writeEach(config: Record<string, unknown>, records: RecordData[]): Promise<void> {
  for (const record of records) expect(await writeSession(config, stream, [[record]])).toEqual([]);
}

it('read by customer id: the moved row is filled from the old key’s older row', async () => {
  const config = { path: join(root, 'customer') };
  await writeEach(config, [
    snapshot(4, '0/1', '2026-01-01T00:00:00Z'),
    snapshot(7, '0/2', '2026-01-01T00:00:00Z', 'c7'),
    updated(4, 40, undefined, '0/3', '2026-01-02T00:00:00Z'),
    updated(33, 41, { id: 4 }, '0/4', '2026-01-03T00:00:00Z'),
  ]);
  expect(await asOf(config, '2026-01-04T00:00:00Z', 'customer_id')).toEqual([
    ['c1', '33', 41, 10_000],
    ['c7', '7', 7, 10_000],
  ]);
  expect(await asOf(config, '2026-01-02T12:00:00Z', 'customer_id')).toEqual([
    ['c1', '4', 40, 10_000],
    ['c7', '7', 7, 10_000],
  ]);
});

it('read by customer id: a row moved to another key and customer (4 of c1 → 33 of c2) is filled, and c1 has no live row', async () => {
  const config = { path: join(root, 'customer-changed') };
  await writeEach(config, [snapshot(4, '0/1', '2026-01-01T00:00:00Z'), updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z'), updated(33, 41, { id: 4 }, '0/3', '2026-01-03T00:00:00Z', 'c2')]);
  expect(await asOf(config, '2026-01-04T00:00:00Z', 'customer_id')).toEqual([['c2', '33', 41, 10_000]]);
  expect(await asOf(config, '2026-01-04T00:00:00Z')).toEqual([['c2', '33', 41, 10_000]]);
});

it('read by customer id: a chain of moves (4 → 33 → 60) with field-omitting updates in between', async () => {
  const config = { path: join(root, 'customer-chain') };
  await writeEach(config, [
    snapshot(4, '0/1', '2026-01-01T00:00:00Z'),
    updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z'),
    updated(33, 41, { id: 4 }, '0/3', '2026-01-03T00:00:00Z'),
    updated(33, 42, undefined, '0/4', '2026-01-04T00:00:00Z'),
    updated(60, 43, { id: 33 }, '0/5', '2026-01-05T00:00:00Z'),
  ]);
  expect(await asOf(config, '2026-01-06T00:00:00Z', 'customer_id')).toEqual([['c1', '60', 43, 10_000]]);
  expect(await asOf(config, '2026-01-04T12:00:00Z', 'customer_id')).toEqual([['c1', '33', 42, 10_000]]);
});

/** A before-image under REPLICA IDENTITY FULL: the old row, with its TOASTed field or without it. */
const fullImage = (id: number, v: number, withBig: boolean): Record<string, unknown> => ({ id, v, ...(withBig ? { big } : {}), ...owner() });

for (const withBig of [true, false]) {
  const name = withBig ? 'with the TOASTed field' : 'without the TOASTed field';
  it(`REPLICA IDENTITY FULL, before-image ${name}: a chain of moves is filled`, async () => {
    const config = { path: join(root, `full-chain-${withBig}`) };
    await writeEach(config, [
      snapshot(4, '0/1', '2026-01-01T00:00:00Z'),
      updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z'),
      updated(33, 41, fullImage(4, 40, withBig), '0/3', '2026-01-03T00:00:00Z'),
      updated(33, 42, undefined, '0/4', '2026-01-04T00:00:00Z'),
      updated(60, 43, fullImage(33, 42, withBig), '0/5', '2026-01-05T00:00:00Z'),
    ]);
    expect(await asOf(config, '2026-01-06T00:00:00Z')).toEqual([['c1', '60', 43, 10_000]]);
    expect(await asOf(config, '2026-01-06T00:00:00Z', 'customer_id')).toEqual([['c1', '60', 43, 10_000]]);
    expect(await asOf(config, '2026-01-04T12:00:00Z')).toEqual([['c1', '33', 42, 10_000]]);
    expect(await asOf(config, '2026-01-02T12:00:00Z')).toEqual([['c1', '4', 40, 10_000]]);
  });
}

for (const before of ['the key only', 'the whole old row without the TOASTed field', 'the whole old row with the TOASTed field'] as const) {
  it(`a key moved away and back (4 → 33 → 4), before-image ${before}: the row back under 4 is filled from the row before the moves`, async () => {
    const config = { path: join(root, `back-${before.replace(/\W+/g, '-')}`) };
    const image = (id: number, v: number) => (before === 'the key only' ? { id } : fullImage(id, v, before.endsWith('with the TOASTed field')));
    await writeEach(config, [
      snapshot(4, '0/1', '2026-01-01T00:00:00Z'),
      updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z'),
      updated(33, 41, image(4, 40), '0/3', '2026-01-03T00:00:00Z'),
      updated(33, 42, undefined, '0/4', '2026-01-04T00:00:00Z'),
      updated(4, 43, image(33, 42), '0/5', '2026-01-05T00:00:00Z'),
    ]);
    expect(await asOf(config, '2026-01-06T00:00:00Z')).toEqual([['c1', '4', 43, 10_000]]);
    expect(await asOf(config, '2026-01-06T00:00:00Z', 'customer_id')).toEqual([['c1', '4', 43, 10_000]]);
    expect(await asOf(config, '2026-01-04T12:00:00Z')).toEqual([['c1', '33', 42, 10_000]]);
  });
}

it('a move that changed the tenant too (4 in t1 → 33 in t2): the walk follows the old key’s delete into its old tenant', async () => {
  const config = { path: join(root, 'tenant-changed') };
  const inTenant = (record: RecordData, tenant: string): RecordData => ({ ...record, tenant_id: tenant });
  await writeEach(config, [snapshot(4, '0/1', '2026-01-01T00:00:00Z'), updated(4, 40, undefined, '0/2', '2026-01-02T00:00:00Z'), inTenant(updated(33, 41, { id: 4 }, '0/3', '2026-01-03T00:00:00Z'), 't2')]);
  const read = async (key: 'entity_key' | 'customer_id') => (await readLatestAsOf(config, { stream: 'items', asOf: '2026-01-04T00:00:00Z', key })).map((r) => [r.tenant_id, r.entity_key, r.payload.v, typeof r.payload.big === 'string' ? r.payload.big.length : (r.payload.big ?? null)]);
  expect(await read('entity_key')).toEqual([['t2', '33', 41, 10_000]]);
  expect(await read('customer_id')).toEqual([['t2', '33', 41, 10_000]]);
});
