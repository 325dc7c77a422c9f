/**
 * Which of two versions of a feature group is newer when the millisecond event time cannot
 * tell: two changes of one transaction (one commit time, one `now()`), changes within one
 * millisecond (sources keep microseconds), or an event time that runs backwards against the
 * source's log. Redis must keep the version the event lake's point-in-time read keeps
 * (`readLatestAsOf`: CDC log position first, then event time), whichever order the records
 * arrive in, on the create path and through the script, with and without TTL.
 * Real redis-server, real lake on local disk, real runtime (runSync).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createConnectorContext,
  parseConfig,
  type AirbyteStream,
  type RecordData,
} from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '../src/index.js';
import { keyedStream, syncIntoLakeAndRedis, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-version-order-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const T = '2025-01-01T00:00:00.000Z';
/** A CDC update of e1 as the Postgres source emits it (`_tributary_*` fields). */
const change = (position: string, updatedAt: string, plan: string): RecordData => ({
  id: 'e1',
  tenant_id: 'acme',
  updated_at: updatedAt,
  plan,
  _tributary_op: 'u',
  _tributary_position: position,
  _tributary_commit_time: updatedAt,
});

let prefixes = 0;
/** Writes the batches through the destination on a fresh prefix; returns e1's plan as the lookup API serves it. */
async function onlinePlan(batches: RecordData[][], extra: Record<string, unknown> = {}): Promise<unknown> {
  const prefix = `vo${++prefixes}`;
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix, ...extra });
  const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
  for (const records of batches) await session.write({ stream: 'profile', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  try {
    return (await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'e1' })).groups.profile?.features.plan;
  } finally {
    await lookup.close();
  }
}

describe('version order (writer)', () => {
  for (const [name, extra] of [
    ['without TTL', {}],
    ['with TTL', { default_ttl_seconds: 3600 }],
  ] as const) {
    it(`${name}: equal event times are ordered by CDC position, in one batch or several, in either order`, async () => {
      const older = change('0/1A0', T, 'old');
      const newer = change('0/1B0', T, 'new');
      expect(await onlinePlan([[older, newer]], extra)).toBe('new');
      expect(await onlinePlan([[newer, older]], extra)).toBe('new');
      expect(await onlinePlan([[older], [newer]], extra)).toBe('new');
      expect(await onlinePlan([[newer], [older]], extra)).toBe('new');
      // A replay of the stored change (same position) changes nothing.
      expect(await onlinePlan([[newer], [older], [{ ...newer, plan: 'replayed' }]], extra)).toBe('new');
    });

    it(`${name}: event times within one millisecond are ordered to the microsecond`, async () => {
      const older = { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00.000100Z', plan: 'old' };
      const newer = { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00.000900Z', plan: 'new' };
      expect(await onlinePlan([[older, newer]], extra)).toBe('new');
      expect(await onlinePlan([[newer], [older]], extra)).toBe('new');
      // A whole millisecond later still wins over a sub-millisecond value, and the reverse.
      expect(await onlinePlan([[newer], [{ ...older, updated_at: '2025-01-01T00:00:00.001Z', plan: 'later' }]], extra)).toBe('later');
      expect(await onlinePlan([[{ ...older, updated_at: '2025-01-01T00:00:00.001Z', plan: 'later' }], [newer]], extra)).toBe('later');
    });
  }

  it('a later CDC position wins over an earlier event time: the source log is the order of changes', async () => {
    // A transaction that waited for a row lock commits after another one, with updated_at = now() of its earlier start.
    const first = change('0/1A0', '2025-01-01T00:00:05.000Z', 'first');
    const second = change('0/2B0', '2025-01-01T00:00:01.000Z', 'second');
    expect(await onlinePlan([[first], [second]])).toBe('second');
    expect(await onlinePlan([[second], [first]])).toBe('second');
  });
});

const profileStream: AirbyteStream = {
  name: 'profile',
  json_schema: { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, updated_at: { type: 'string', format: 'date-time' }, plan: { type: ['string', 'null'] } } },
  supported_sync_modes: ['full_refresh', 'incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['updated_at'],
  source_defined_primary_key: [['id']],
};
/** Syncs the records into a fresh lake and Redis prefix; returns the lake's latest plan, Redis's, and the parity report. */
async function syncBoth(name: string, records: RecordData[]) {
  const { lakeConfig, redisConfig } = await syncIntoLakeAndRedis({ dir, port: peer.server.port, name, stream: profileStream, cursorField: ['updated_at'], records });
  const rows = await readLatestAsOf(lakeConfig, { stream: 'profile', includeDeleted: true });
  const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), { ...keyedStream('profile'), jsonSchema: profileStream.json_schema });
  const report = await compareOnlineOffline({
    client: peer.client,
    prefix: name,
    mapping,
    offline: rows.map(offlineRowFromLake),
  });
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: name });
  const online = await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'e1' }).finally(() => lookup.close());
  return { lake: rows.map((r) => r.payload.plan), online: online.groups.profile?.features.plan, report };
}

describe('version order (online/offline parity)', () => {
  it('two changes of one transaction (equal event times, CDC positions): both stores keep the later one', async () => {
    const synced = await syncBoth('tx', [change('0/1A0', T, 'old'), change('0/1B0', T, 'new')]);
    expect(synced.lake).toEqual(['new']);
    expect(synced.online).toBe('new');
    expect(synced.report).toMatchObject({ ok: true, matching: 1 });
  });

  it('two changes within one millisecond: both stores keep the later one', async () => {
    const synced = await syncBoth('usec', [
      { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00.000100Z', plan: 'old' },
      { id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00.000900Z', plan: 'new' },
    ]);
    expect(synced.lake).toEqual(['new']);
    expect(synced.online).toBe('new');
    expect(synced.report).toMatchObject({ ok: true, matching: 1 });
  });
});
