/**
 * `deleted_field`: SaaS sources mark deletions with a field (Salesforce `IsDeleted`, HubSpot
 * `archived`, Airbyte's `_ab_cdc_deleted_at`), not with a CDC `_tributary_op`. Both stores
 * kept such records as live entities: the lake's point-in-time read returned the deleted
 * account, Redis served its features. With the option on both destinations, such a record is
 * a delete in the lake (op `delete`) and a tombstone in Redis, and parity agrees.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, marksDeleted, parseConfig, type RecordData } from '@tributary/core';
import { lakeDestination, readLatestAsOf, resolveMapping as resolveLakeMapping, type LakeConfig } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake } from '../src/index.js';
import { at, syncedMapping, syncIntoLakeAndRedis, updatedAtStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-deleted-field-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const accounts = updatedAtStream('accounts', {
  updated_at: { type: 'string', format: 'date-time' },
  name: { type: ['string', 'null'] },
  IsDeleted: { type: 'boolean' },
  deleted_at: { type: ['string', 'null'] },
});

const account = (id: string, minute: number, extra: Partial<RecordData> = {}): RecordData => ({ id, tenant_id: 'acme', updated_at: at(minute), name: `account ${id}`, IsDeleted: false, deleted_at: null, ...extra });

it('the deletion mark: true or a non-empty string', () => {
  expect([true, '2025-01-01T00:00:00Z'].map(marksDeleted)).toEqual([true, true]);
  expect([false, null, undefined, '', 0, 1, {}].map(marksDeleted)).toEqual([false, false, false, false, false, false, false]);
});

it.each([
  ['IsDeleted', (): Partial<RecordData> => ({ IsDeleted: true })],
  // A deletion time: the delete's event time (here the record's own).
  ['deleted_at', (minute: number): Partial<RecordData> => ({ deleted_at: at(minute) })],
])('a record marked deleted by %s is a delete in the lake and a tombstone in Redis; parity agrees', async (field, mark) => {
  const name = `del_${field.toLowerCase()}`;
  const records = [
    account('a1', 1),
    account('a2', 2),
    account('a3', 3),
    // a2 is deleted; a3 is deleted and then restored (Salesforce's undelete: IsDeleted false again).
    account('a2', 5, mark(5)),
    account('a3', 6, mark(6)),
    account('a3', 7),
  ];
  const options = { stream: 'accounts', deleted_field: field };
  const { lakeConfig, redisConfig } = await syncIntoLakeAndRedis({
    dir,
    port: peer.server.port,
    name,
    stream: accounts,
    cursorField: ['updated_at'],
    records,
    lake: { streams: { accounts: { deleted_field: field } } },
    redis: { streams: [options] },
  });
  const latest = await readLatestAsOf(lakeConfig, { stream: 'accounts' });
  expect(latest.map((r) => [r.payload.id, r.op])).toEqual([
    ['a1', 'update'],
    ['a3', 'update'],
  ]);
  const all = await readLatestAsOf(lakeConfig, { stream: 'accounts', includeDeleted: true });
  expect(all.map((r) => [r.payload.id, r.op])).toEqual([
    ['a1', 'update'],
    ['a2', 'delete'],
    ['a3', 'update'],
  ]);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: name });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'accounts', entityIds: ['a1', 'a2', 'a3'] });
    expect(found.map((e) => e.groups.accounts?.features.name ?? null)).toEqual(['account a1', null, 'account a3']);
  } finally {
    await lookup.close();
  }
  const mapping = syncedMapping(redisConfig, accounts);

  const report = await compareOnlineOffline({ client: peer.client, prefix: name, mapping, offline: all.map(offlineRowFromLake) });
  expect(report).toMatchObject({ ok: true, offlineEntities: 2, onlineEntities: 2, matching: 2, deleted: 1 });
});

it('a deletion time in the deleted field is the delete\'s event time, in the lake and in Redis', async () => {
  // Archiving a HubSpot contact does not move its updatedAt: the archive's time is archivedAt.
  const name = 'del_time';
  const records = [account('a1', 1), account('a1', 1, { deleted_at: at(30) })];
  const { lakeConfig } = await syncIntoLakeAndRedis({
    dir,
    port: peer.server.port,
    name,
    stream: accounts,
    cursorField: ['updated_at'],
    records,
    lake: { streams: { accounts: { deleted_field: 'deleted_at' } } },
    redis: { streams: [{ stream: 'accounts', deleted_field: 'deleted_at' }] },
  });
  // Live until the deletion time, deleted from it on.
  const before = await readLatestAsOf(lakeConfig, { stream: 'accounts', asOf: at(20) });
  expect(before.map((r) => [r.payload.id, r.op])).toEqual([['a1', 'update']]);
  const after = await readLatestAsOf(lakeConfig, { stream: 'accounts', asOf: at(30), includeDeleted: true });
  expect(after.map((r) => [r.payload.id, r.op, r.event_time])).toEqual([['a1', 'delete', at(30)]]);
  // Redis: a late update dated between the two (minute 20) is older than the delete and changes nothing.
  await syncIntoLakeAndRedis({ dir, port: peer.server.port, name: `${name}_late`, stream: accounts, cursorField: ['updated_at'], records: [...records, account('a1', 20)], lake: { streams: { accounts: { deleted_field: 'deleted_at' } } }, redis: { streams: [{ stream: 'accounts', deleted_field: 'deleted_at' }] } });
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: `${name}_late` });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'accounts', entityIds: ['a1'] });
    expect(found.map((e) => e.groups.accounts?.features.name ?? null)).toEqual([null]);
  } finally {
    await lookup.close();
  }
});

it('a deleted_field naming the event time, tenant or key field is refused up front by both destinations (every record would be a delete)', async () => {
  for (const field of ['updated_at', 'tenant_id', 'id']) {
    const lakeStream = { key: 'accounts', name: 'accounts', syncMode: 'incremental' as const, destinationSyncMode: 'append_dedup' as const, primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: accounts.json_schema, resuming: false };
    expect(() => resolveLakeMapping(parseConfig(lakeDestination.spec.connectionSpecification, { path: join(dir, 'refused'), streams: { accounts: { deleted_field: field } } }) as LakeConfig, lakeStream), field).toThrow(
      new RegExp(`^Stream "accounts": deleted_field "${field}" is the (event time|tenant|customer id) field|^Stream "accounts": deleted_field "${field}" is a primary key field`),
    );
    expect(() => syncedMapping({ port: peer.server.port, streams: [{ stream: 'accounts', deleted_field: field }] }, accounts), field).toThrow(/every record that has it would delete its entity/);
  }
});

it('a record marked deleted without its tenant is refused with a reason about the tenant, not about CDC replica identity', async () => {
  const config = { path: join(dir, 'no-tenant'), streams: { accounts: { deleted_field: 'IsDeleted' } } };
  const stream = { key: 'accounts', name: 'accounts', syncMode: 'incremental' as const, destinationSyncMode: 'append_dedup' as const, primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: accounts.json_schema, resuming: false };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  const result = await session.write({ stream: 'accounts', records: [{ id: 'a1', updated_at: at(1), IsDeleted: true }], emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  expect(result?.rejected?.map((r) => r.reason)).toEqual(['no tenant id: field "tenant_id" is missing or empty (set default_tenant or streams.<stream>.tenant_id in the lake config)']);
});
