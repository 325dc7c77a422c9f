/**
 * Two different versions of one entity's group with the same event time (to the
 * nanosecond) and no CDC positions to tell them apart — a row changed twice within one
 * second of a second-resolution `updated_at`, re-read by the next sync. The event lake's
 * point-in-time read keeps the later-ingested row (`NEWEST_FIRST`: … ingest_time DESC), so
 * Redis must keep the later record too; exact replays (of the stored version, or of a
 * version it replaced, after a crash) must change nothing and extend no TTL.
 * Real redis-server, real lake on local disk, real runtime (runSync); a TCP proxy cuts the
 * writer's connection where a test needs a re-send.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type AirbyteStream, type DestinationSession, type RecordData } from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, entityKey, offlineRowFromLake, redisConfigSchema, redisDestination, resolveMapping } from '../src/index.js';
import { createOpsEncoder } from '../src/encoded-ops.js';
import { ttlRegistryKey } from '../src/layout.js';
import { createRespConnection } from '../src/resp-connection.js';
import { applyOps, loadWriteScript } from '../src/write-script.js';
import { keyedStream, syncIntoLakeAndRedis, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-same-time-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Second resolution: every version below has this event time. */
const T = '2025-01-01T00:00:00.000Z';
const version = (plan: string, id = 'e1'): RecordData => ({ id, tenant_id: 'acme', updated_at: T, plan });
const [x, y, z] = [version('x'), version('y'), version('z')];

let prefixes = 0;
const WITHOUT_TTL = {};
const WITH_TTL = { default_ttl_seconds: 3600 };

async function openSession(prefix: string, extra: Record<string, unknown>, port = peer.server.port): Promise<DestinationSession> {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port, key_prefix: prefix, ...extra });
  return redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
}

/** One session (a sync) writing `batches` to `prefix`, committed and closed. */
async function sync(prefix: string, batches: RecordData[][], extra: Record<string, unknown>): Promise<void> {
  const session = await openSession(prefix, extra);
  for (const records of batches) await session.write({ stream: 'profile', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
}

async function onlinePlan(prefix: string, id = 'e1'): Promise<unknown> {
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  try {
    return (await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: id })).groups.profile?.features.plan;
  } finally {
    await lookup.close();
  }
}

/** e1's stored group value (bytes) and its key's TTL: what an exact replay must leave as it is. */
async function storedState(prefix: string): Promise<{ value: string; pttl: number }> {
  const key = entityKey(prefix, 'acme', 'profile', 'e1');
  const value = (await peer.client.hgetBuffer(key, 'g:profile'))!.toString('hex');
  return { value, pttl: await peer.client.pttl(key) };
}

describe('same event time, different versions: the later record wins', () => {
  for (const [name, extra] of [
    ['without TTL', WITHOUT_TTL],
    ['with TTL', WITH_TTL],
  ] as const) {
    it(`${name}: across batches, within one batch, across sessions, on the create path and through the script`, async () => {
      const cases: [RecordData[][][], string][] = [
        [[[[x], [y]]], 'y'], // two batches of one session
        [[[[x, y]]], 'y'], // one batch (created by the first record)
        [[[[x]], [[y]]], 'y'], // two sessions: the re-read of a row changed within its second
        [[[[x], [y], [z]]], 'z'],
        [[[[version('old', 'e1'), version('w', 'e2')]], [[x, y], [z]]], 'z'], // e1 existed: through the script's compare
      ];
      for (const [sessions, want] of cases) {
        const prefix = `st${++prefixes}`;
        for (const batches of sessions) await sync(prefix, batches, extra);
        expect(await onlinePlan(prefix), JSON.stringify(sessions)).toBe(want);
      }
    });

    it(`${name}: replays — of the stored version, of versions it replaced, in a later session — change nothing and extend no TTL`, async () => {
      const prefix = `st${++prefixes}`;
      await sync(prefix, [[x], [y], [z]], extra);
      const before = await storedState(prefix);
      // A crash after these were stored, and the resume sends them again: whole, in part, in one batch or several.
      for (const replay of [[[x]], [[y]], [[z]], [[x], [y], [z]], [[x, y, z]], [[y, x]]]) {
        await sync(prefix, replay, extra);
        expect(await onlinePlan(prefix), JSON.stringify(replay)).toBe('z');
        const after = await storedState(prefix);
        expect(after.value).toBe(before.value);
        // The key's TTL only runs down (none: -1).
        expect(after.pttl <= before.pttl || before.pttl === -1).toBe(true);
        if (before.pttl === -1) expect(after.pttl).toBe(-1);
      }
      // A new version after the replays still wins.
      await sync(prefix, [[version('v4')]], extra);
      expect(await onlinePlan(prefix)).toBe('v4');
    });
  }

  it('a newer event time still replaces, and an older one is still ignored, around same-time versions', async () => {
    const prefix = `st${++prefixes}`;
    await sync(prefix, [[x], [y], [{ ...version('older'), updated_at: '2024-12-31T23:59:59.000Z' }]], WITHOUT_TTL);
    expect(await onlinePlan(prefix)).toBe('y');
    await sync(prefix, [[{ ...version('newer'), updated_at: '2025-01-01T00:00:01.000Z' }], [x]], WITHOUT_TTL);
    expect(await onlinePlan(prefix)).toBe('newer');
  });
});

describe('same event time: Redis applies the stream in its order', () => {
  it('a batch sent through the script while the batch before waits for its create-first replies is applied after it', async () => {
    const prefix = `st${++prefixes}`;
    // e1 exists (an older version): the first batch's HSETNX finds it and sends e1's record through the script afterwards.
    await sync(prefix, [[{ ...version('old'), updated_at: '2024-01-01T00:00:00.000Z' }]], WITHOUT_TTL);
    const connection = createRespConnection(parseConfig(redisConfigSchema, { port: peer.server.port }));
    try {
      await loadWriteScript(connection);
      const target = { group: 'profile', ttlMs: 0, ttlRegistry: ttlRegistryKey(prefix, 'profile') };
      const key = entityKey(prefix, 'acme', 'profile', 'e1');
      const batch = (plan: string) => {
        const encoder = createOpsEncoder(target, 1);
        encoder.add(key, '', Date.parse(T), Buffer.from(JSON.stringify({ plan })));
        return encoder.finish();
      };
      // Not awaited in between: the two batches are in flight together, as the writer keeps them.
      const first = applyOps(connection, target, batch('x'), Date.now(), { createFirst: true });
      const second = applyOps(connection, target, batch('y'), Date.now(), { createFirst: false });
      await Promise.all([first, second]);
    } finally {
      await connection.close();
    }
    expect(await onlinePlan(prefix)).toBe('y');
  });

  it('after a dropped connection, the failed batches are sent again in order before any new batch', async () => {
    const prefix = `st${++prefixes}`;
    const proxy = await startDroppingProxy(peer.server.port);
    try {
      const session = await openSession(prefix, WITHOUT_TTL, proxy.port);
      const write = (records: RecordData[]) => session.write({ stream: 'profile', records, emittedAt: 0 });
      await write([version('warm-up', 'e0')]); // the shape is checked: later writes send at once
      await session.commit();
      // The connection drops on the first of four batches in flight; none reaches Redis.
      proxy.trap.drops = 1;
      await write([version('a', 'drop-here')]);
      await write([x]);
      await write([version('b', 'e2')]);
      await write([version('c', 'e3')]);
      // Four in flight: this write waits for the oldest, re-sends it, then sends y.
      await write([y]);
      await session.commit();
      await session.close({ completed: true });
      expect(proxy.trap.dropped).toBe(1);
    } finally {
      await proxy.close();
    }
    expect(await onlinePlan(prefix)).toBe('y');
    expect(await onlinePlan(prefix, 'drop-here')).toBe('a');
  });
});

describe('same event time: the parity check and the unchanged-fields fill follow the same rule', () => {
  it('parity expects the later of two offline rows at one place in the order (by ingest time, else by their order)', async () => {
    const prefix = `st${++prefixes}`;
    await sync(prefix, [[x], [y]], WITHOUT_TTL);
    const mapping = resolveMapping(parseConfig(redisConfigSchema, { port: peer.server.port, key_prefix: prefix }), keyedStream('profile'));
    for (const offline of [
      [{ record: x }, { record: y }],
      [{ record: y, ingestTimeMs: 2 }, { record: x, ingestTimeMs: 1 }],
    ]) {
      const report = await compareOnlineOffline({ client: peer.client, prefix, mapping, offline });
      expect(report.samples, JSON.stringify(offline)).toEqual([]);
      expect(report.matching).toBe(1);
    }
    // With CDC positions: the same position is the same change (the first stays); a position beats none.
    const positioned = `st${++prefixes}`;
    const change = (plan: string): RecordData => ({ ...version(plan), _tributary_op: 'u', _tributary_position: '0/10', _tributary_commit_time: T });
    await sync(positioned, [[x], [change('c1')], [change('c2')], [y]], WITHOUT_TTL);
    expect(await onlinePlan(positioned)).toBe('c1');
    for (const offline of [
      [{ record: x }, { record: change('c1') }, { record: change('c2') }, { record: y }],
      [{ record: change('c1') }, { record: x }, { record: y }],
    ]) {
      const report = await compareOnlineOffline({ client: peer.client, prefix: positioned, mapping, offline });
      expect(report.samples, JSON.stringify(offline)).toEqual([]);
    }
  });

  it('a CDC update with the event time of a stored version without position (a snapshot row) replaces it, and gets the columns it left out from it', async () => {
    const prefix = `st${++prefixes}`;
    const update = { id: 'e1', tenant_id: 'acme', updated_at: T, plan: 'y', _tributary_op: 'u', _tributary_position: '0/10', _tributary_commit_time: T, _tributary_unchanged: ['bio'] };
    await sync(prefix, [[{ ...x, bio: 'long text' }], [update]], WITHOUT_TTL);
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    try {
      const features = (await lookup.get({ tenant: 'acme', entityType: 'profile', entityId: 'e1' })).groups.profile?.features;
      expect(features).toMatchObject({ plan: 'y', bio: 'long text' });
    } finally {
      await lookup.close();
    }
  });
});

describe('parity with the event lake', () => {
  const stream: AirbyteStream = {
    name: 'profile',
    json_schema: { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, updated_at: { type: 'string', format: 'date-time' }, plan: { type: 'string' } } },
    supported_sync_modes: ['full_refresh', 'incremental'],
    source_defined_cursor: true,
    default_cursor_field: ['updated_at'],
    source_defined_primary_key: [['id']],
  };

  it('a row changed within its second and re-read by the next sync: both stores keep the later version, parity is ok', async () => {
    const name = `st-parity${++prefixes}`;
    let stores!: Awaited<ReturnType<typeof syncIntoLakeAndRedis>>;
    for (const records of [[x, version('p', 'e2')], [y, version('p', 'e2')]]) {
      // Each sync ingests in a later millisecond than the one before (the lake orders same-time rows by ingest time).
      const started = Date.now();
      while (Date.now() === started) await new Promise((resolve) => setTimeout(resolve, 1));
      stores = await syncIntoLakeAndRedis({ dir, port: peer.server.port, name, stream, cursorField: ['updated_at'], records });
    }
    const rows = await readLatestAsOf(stores.lakeConfig, { stream: 'profile', includeDeleted: true });
    expect(rows.find((r) => r.entity_key === 'e1')?.payload.plan).toBe('y');
    const mapping = resolveMapping(parseConfig(redisConfigSchema, stores.redisConfig), { ...keyedStream('profile'), jsonSchema: stream.json_schema });
    const report = await compareOnlineOffline({ client: peer.client, prefix: name, mapping, offline: rows.map(offlineRowFromLake) });
    expect(report.samples).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.matching).toBe(2);
  });
});

/** A proxy to `port` that drops the client's connection, without forwarding, on each of the next `drops` chunks containing `drop-here`. */
async function startDroppingProxy(port: number) {
  const trap = { drops: 0, dropped: 0 };
  const server = createServer((client: Socket) => {
    const upstream = connect({ port, host: '127.0.0.1' });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('data', (chunk) => {
      if (trap.drops > 0 && chunk.includes('drop-here')) {
        trap.drops--;
        trap.dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      if (!client.destroyed) upstream.write(chunk);
    });
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const proxyPort = (server.address() as { port: number }).port;
  return { port: proxyPort, trap, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
