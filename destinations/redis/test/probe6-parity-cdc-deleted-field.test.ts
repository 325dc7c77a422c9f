/**
 * Parity with `deleted_field` on a CDC stream: a CDC `_tributary_op` takes precedence over
 * the deletion field in both stores, so a change whose soft-delete column is set (a
 * PostgreSQL table with `is_deleted`) is live in the lake and in Redis. The lake's
 * point-in-time read keeps no `_tributary_*` field in the payload, and parity mapped the lake's
 * live row through the deletion field again: it expected a delete and called the entity
 * Redis serves `missing_offline`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake } from '../src/index.js';
import { at, syncedMapping, syncIntoLakeAndRedis, updatedAtStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-parity-cdc-deleted-field-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const accounts = updatedAtStream('accounts', {
  updated_at: { type: 'string', format: 'date-time' },
  name: { type: ['string', 'null'] },
  is_deleted: { type: 'boolean' },
});

const change = (id: string, minute: number, lsn: string, isDeleted: boolean): RecordData => ({
  id,
  tenant_id: 'acme',
  updated_at: at(minute),
  name: `account ${id}`,
  is_deleted: isDeleted,
  _tributary_op: 'u',
  _tributary_position: lsn,
  _tributary_commit_time: at(minute),
});

it('a CDC change whose deletion field is set is live in both stores, and parity agrees', async () => {
  const name = 'cdc_soft_delete';
  const { lakeConfig, redisConfig } = await syncIntoLakeAndRedis({
    dir,
    port: peer.server.port,
    name,
    stream: accounts,
    cursorField: ['updated_at'],
    records: [change('a1', 1, '0/10', false), change('a2', 2, '0/20', true)],
    lake: { streams: { accounts: { deleted_field: 'is_deleted' } } },
    redis: { streams: [{ stream: 'accounts', deleted_field: 'is_deleted' }] },
  });
  const latest = await readLatestAsOf(lakeConfig, { stream: 'accounts', includeDeleted: true });
  expect(latest.map((r) => [r.payload.id, r.op])).toEqual([
    ['a1', 'update'],
    ['a2', 'update'],
  ]);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: name });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'accounts', entityIds: ['a1', 'a2'] });
    expect(found.map((e) => e.groups.accounts?.features.name ?? null)).toEqual(['account a1', 'account a2']);
  } finally {
    await lookup.close();
  }
  const mapping = syncedMapping(redisConfig, accounts);

  const report = await compareOnlineOffline({ client: peer.client, prefix: name, mapping, offline: latest.map(offlineRowFromLake) });
  expect(report).toMatchObject({ ok: true, offlineEntities: 2, onlineEntities: 2, matching: 2, deleted: 0 });
});
