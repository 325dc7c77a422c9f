/**
 * Connection drops at the worst moment of create-first: after the plain HSETNXes created a
 * group without TTL on a key that carries another group's TTL, before the script call that
 * makes the key persistent. Real redis-server; a TCP proxy in front of it cuts the writer's
 * connection when it sends a script call.
 */
import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationSession } from '@tributary/core';
import { createFeatureLookup, entityKey, redisDestination } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

/** A proxy to `port` that drops the client's connection, without forwarding, on each of the next `drops` chunks containing `needle`. */
async function startDroppingProxy(port: number) {
  const trap = { needle: 'EVALSHA', drops: 0, dropped: 0 };
  const server = createServer((client: Socket) => {
    const upstream = connect({ port, host: '127.0.0.1' });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('data', (chunk) => {
      if (trap.drops > 0 && chunk.includes(trap.needle)) {
        trap.drops--;
        trap.dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
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

let prefixes = 0;
const streams = [
  { stream: 'fast', entity_type: 'contact', ttl_seconds: 3600 },
  { stream: 'slow', entity_type: 'contact', ttl_seconds: 0 },
];

async function open(port: number, prefix: string, stream: string): Promise<DestinationSession> {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port, key_prefix: prefix, streams });
  return redisDestination.open(createConnectorContext({}), config, [keyedStream(stream)]);
}

/** `fast` (TTL 1 h) writes e1: its key carries a TTL, and the entity type's TTL registry exists. */
async function writeTtlGroup(prefix: string): Promise<void> {
  const session = await open(peer.server.port, prefix, 'fast');
  await session.write({ stream: 'fast', records: [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), clicks: 1 }], emittedAt: 0 });
  await session.commit();
  await session.close({ completed: true });
  expect(await peer.client.pttl(entityKey(prefix, 'acme', 'contact', 'e1'))).toBeGreaterThan(0);
}

describe('connection dropped between create-first and its repair', () => {
  it('the batch sent again makes the key holding a group without TTL persistent', async () => {
    const prefix = `drop${++prefixes}`;
    await writeTtlGroup(prefix);
    const proxy = await startDroppingProxy(peer.server.port);
    try {
      // A new session creates `slow` with plain HSETNX; its repair call is cut off, once.
      const session = await open(proxy.port, prefix, 'slow');
      proxy.trap.drops = 1;
      await session.write({ stream: 'slow', records: [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), ltv: 5 }], emittedAt: 0 });
      await session.commit();
      await session.close({ completed: true });
      expect(proxy.trap.dropped).toBe(1);
    } finally {
      await proxy.close();
    }
    // Else the key expires with `fast` in an hour and takes `slow`, which never expires, with it.
    expect(await peer.client.pttl(entityKey(prefix, 'acme', 'contact', 'e1'))).toBe(-1);
  });

  it('after a writer that died there, the next sync (a replay, or a newer value) makes the key persistent', async () => {
    for (const next of [{ minute: 1, ltv: 5 }, { minute: 2, ltv: 6 }]) {
      const prefix = `drop${++prefixes}`;
      await writeTtlGroup(prefix);
      const proxy = await startDroppingProxy(peer.server.port);
      try {
        // Every script call is cut off: the write fails after its HSETNXes, the session is abandoned.
        const session = await open(proxy.port, prefix, 'slow');
        proxy.trap.drops = 100;
        await session.write({ stream: 'slow', records: [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), ltv: 5 }], emittedAt: 0 });
        await expect(session.commit()).rejects.toMatchObject({ kind: 'transient' });
        await session.close({ completed: false });
      } finally {
        await proxy.close();
      }
      const key = entityKey(prefix, 'acme', 'contact', 'e1');
      expect(await peer.client.hexists(key, 'g:slow')).toBe(1);
      const session = await open(peer.server.port, prefix, 'slow');
      await session.write({ stream: 'slow', records: [{ id: 'e1', tenant_id: 'acme', updated_at: at(next.minute), ltv: next.ltv }], emittedAt: 0 });
      await session.commit();
      await session.close({ completed: true });
      expect(await peer.client.pttl(key)).toBe(-1);
      const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
      try {
        expect((await lookup.get({ tenant: 'acme', entityType: 'contact', entityId: 'e1' })).groups.slow?.features.ltv).toBe(next.ltv);
      } finally {
        await lookup.close();
      }
    }
  });
});
