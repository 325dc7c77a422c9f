/**
 * `deleted_field` holding the deletion time, on a record whose event-time field is empty
 * (a purged or archived object whose source leaves its modification time out): the deletion
 * field is the delete's event time in both stores. Redis stored the tombstone; the lake
 * refused the record ("event time field … is missing"), so its point-in-time read kept the
 * deleted entity live.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { createFeatureLookup } from '../src/index.js';
import { at, syncIntoLakeAndRedis, updatedAtStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-deletion-time-only-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const contacts = updatedAtStream('contacts', {
  updated_at: { type: ['string', 'null'], format: 'date-time' },
  name: { type: ['string', 'null'] },
  archived_at: { type: ['string', 'null'] },
});

it('a delete dated by its deletion field alone is a delete in the lake as in Redis', async () => {
  const name = 'deletion_time_only';
  const records: RecordData[] = [
    { id: 'c1', tenant_id: 'acme', updated_at: at(1), name: 'one', archived_at: null },
    { id: 'c1', tenant_id: 'acme', updated_at: null, name: 'one', archived_at: at(30) },
  ];
  const { lakeConfig } = await syncIntoLakeAndRedis({
    dir,
    port: peer.server.port,
    name,
    stream: contacts,
    cursorField: ['updated_at'],
    records,
    lake: { streams: { contacts: { deleted_field: 'archived_at', event_time_field: 'updated_at' } } },
    redis: { streams: [{ stream: 'contacts', deleted_field: 'archived_at', event_time_field: 'updated_at' }] },
  });
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: name });
  try {
    const found = await lookup.getMany({ tenant: 'acme', entityType: 'contacts', entityIds: ['c1'] });
    expect(found.map((e) => e.groups.contacts?.features.name ?? null)).toEqual([null]);
  } finally {
    await lookup.close();
  }
  expect((await readLatestAsOf(lakeConfig, { stream: 'contacts' })).map((r) => r.payload.id)).toEqual([]);
  const all = await readLatestAsOf(lakeConfig, { stream: 'contacts', asOf: at(40), includeDeleted: true });
  expect(all.map((r) => [r.payload.id, r.op, r.event_time])).toEqual([['c1', 'delete', at(30)]]);
});
