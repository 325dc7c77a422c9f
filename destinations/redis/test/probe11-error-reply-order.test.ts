/**
 * Ordered sends under Redis error replies. A batch that Redis refuses with an error reply
 * (`-BUSY` while another client's script runs past `busy-reply-threshold`, `-LOADING` after a
 * restart, `-NOSCRIPT` after `SCRIPT FLUSH`) is sent again by the session, like one lost with
 * its connection; a batch written after the refusal must not reach Redis before that re-send,
 * or — two versions of an entity with one event time and no CDC position, where the one Redis
 * applies later wins — the re-sent earlier version replaces the later one.
 *
 * Real redis-server with a real BUSY: a client runs an endless read-only script (`SCRIPT
 * KILL` ends it), and with `busy-reply-threshold` at 1 ms Redis answers every other client
 * `-BUSY` meanwhile. A relay in front of Redis (a plain TCP pass-through) tells the test when
 * the writer's connection got its `-BUSY` reply, so the script is killed only after Redis
 * refused the batch. Every wait is for a condition; no test depends on how long anything takes.
 */
import { createServer, connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createConnectorContext, parseConfig, type DestinationSession, type RecordData } from '@tributary/core';
import { createFeatureLookup, redisDestination } from '../src/index.js';
import { keyedStream } from './fixtures.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

let server: RedisServer;
let client: Redis;
beforeAll(async () => {
  server = await startRedisServer({ args: ['--busy-reply-threshold', '1'] });
  client = new Redis({ port: server.port, host: '127.0.0.1' });
});
afterAll(async () => {
  client.disconnect();
  await server.stop();
});

interface Relay {
  readonly port: number;
  /** Resolves once a reply passed on to a client since this call contained `text`. */
  replied(text: string): Promise<void>;
  close(): Promise<void>;
}

/** A TCP pass-through to 127.0.0.1:`target` that watches the replies it passes on (`replied`). */
async function startRelay(target: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const watchers: { text: string; seen: string; resolve: () => void }[] = [];
  const relayServer = createServer((downstream) => {
    const upstream = connect({ port: target, host: '127.0.0.1' });
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    upstream.on('data', (chunk: Buffer) => {
      downstream.write(chunk);
      for (const w of [...watchers]) {
        // Keep a tail as long as the text: it may be cut between two chunks.
        w.seen = (w.seen + chunk.toString('latin1')).slice(-2 * w.text.length - chunk.length);
        if (w.seen.includes(w.text)) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    downstream.on('data', (chunk: Buffer) => upstream.write(chunk));
    for (const [a, b] of [[downstream, upstream], [upstream, downstream]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => relayServer.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (relayServer.address() as { port: number }).port,
    replied: (text) => new Promise<void>((resolve) => watchers.push({ text, seen: '', resolve })),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        relayServer.close(() => resolve());
      }),
  };
}

/** A client's endless script keeps Redis busy: resolves once Redis answers other clients `-BUSY`. `end()` kills it and resolves once Redis answers again. */
async function keepRedisBusy(): Promise<{ end(): Promise<void> }> {
  const runner = new Redis({ port: server.port, host: '127.0.0.1' });
  // Rejected once killed ("Script killed by user").
  const running = runner.eval('while true do end', 0).catch(() => undefined);
  while (await client.ping().then(() => true, (error: Error) => !error.message.startsWith('BUSY')));
  return {
    async end() {
      await client.call('SCRIPT', 'KILL');
      await running;
      while (await client.ping().then(() => false, (error: Error) => error.message.startsWith('BUSY')));
      runner.disconnect();
    },
  };
}

const stream = keyedStream('plain');
/** 2025-01-01T00:<minute>:00Z: A and B below share minute 2, and have no CDC position. */
const version = (v: string, minute: number, extra: Record<string, unknown> = {}): RecordData => ({ id: '1', tenant_id: 't1', v, updated_at: new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString(), ...extra });

async function openSession(port: number, prefix: string): Promise<DestinationSession> {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port, key_prefix: prefix });
  return redisDestination.open(createConnectorContext({}), config, [stream]);
}

/** Calls of `command` Redis refused so far (`rejected_calls` of INFO commandstats: BUSY, NOSCRIPT, …). */
async function rejectedCalls(command: string): Promise<number> {
  const info = await client.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:.*rejected_calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
}

async function served(prefix: string): Promise<unknown> {
  const lookup = createFeatureLookup({ port: server.port, keyPrefix: prefix });
  try {
    return (await lookup.get({ tenant: 't1', entityType: 'plain', entityId: '1' })).groups.plain?.features.v;
  } finally {
    await lookup.close();
  }
}

describe('a batch refused with an error reply holds back later batches until it is sent again', () => {
  // Before the fix, B (written after the writer read A's -BUSY) was applied at once; the
  // session then sent A again (and B behind it): A, as new as B and not a version B had
  // replaced, won, and B's re-send was taken for a replay of a version A replaced. Redis
  // served A ('a'), the lake the later-ingested B.
  const paths = [
    // The first batch after the warm-up creates nothing new: the session writes through the script (EVALSHA) from then on.
    { name: 'through the script (EVALSHA refused)', warmUps: 2, refused: 'evalsha' },
    // One warm-up that created its group: the next batch goes create-first (plain HSETNX, refused).
    { name: 'create-first (HSETNX refused)', warmUps: 1, refused: 'hsetnx' },
  ];
  for (const [n, path] of paths.entries()) {
    it(`${path.name}: B, written after Redis refused A with -BUSY, is applied after A's re-send, so B wins`, async () => {
      const prefix = `busy${n}`;
      const relay = await startRelay(server.port);
      const session = await openSession(relay.port, prefix);
      try {
        for (let i = 0; i < path.warmUps; i++) {
          await session.write({ stream: 'plain', records: [version('warm-up', 1)], emittedAt: 0 });
          await session.commit();
        }
        const rejectedBefore = await rejectedCalls(path.refused);
        const busy = await keepRedisBusy();
        const refused = relay.replied('-BUSY');
        await session.write({ stream: 'plain', records: [version('a', 2)], emittedAt: 0 });
        await refused;
        await busy.end();
        expect(await rejectedCalls(path.refused)).toBeGreaterThan(rejectedBefore);
        // B has a field A lacks: a new shape, which the session registers (a round trip on the
        // same connection) before it sends B — so it has read A's -BUSY reply by then.
        await session.write({ stream: 'plain', records: [version('b', 2, { note: 'later' })], emittedAt: 0 });
        await session.commit();
      } finally {
        await session.close({ completed: true });
        await relay.close();
      }
      expect(await served(prefix)).toBe('b');
    });
  }
});

describe('a batch refused with NOSCRIPT', () => {
  // The writer no longer re-sends NOSCRIPT'd calls by themselves (they would go behind later
  // batches); the session loads the script and sends the batch again, ahead of those.
  it('after SCRIPT FLUSH: the session loads the script, sends A again, then B, in one commit', async () => {
    const prefix = 'noscript';
    const relay = await startRelay(server.port);
    const session = await openSession(relay.port, prefix);
    try {
      for (let i = 0; i < 2; i++) {
        await session.write({ stream: 'plain', records: [version('warm-up', 1)], emittedAt: 0 });
        await session.commit();
      }
      await client.call('SCRIPT', 'FLUSH');
      const refused = relay.replied('-NOSCRIPT');
      await session.write({ stream: 'plain', records: [version('a', 2)], emittedAt: 0 });
      await refused;
      await session.write({ stream: 'plain', records: [version('b', 2, { note: 'later' })], emittedAt: 0 });
      await session.commit();
    } finally {
      await session.close({ completed: true });
      await relay.close();
    }
    expect(await served(prefix)).toBe('b');
  });
});
