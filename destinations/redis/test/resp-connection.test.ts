import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createConnectorContext, parseConfig, TributaryError } from '@tributary/core';
import { entityKey, redisDestination } from '../src/index.js';
import { toRedisError } from '../src/redis-client.js';
import { createRespConnection, encodeCommands, RedisReplyError } from '../src/resp-connection.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer({ args: ['--requirepass', 'pw-1'] });
});
afterAll(() => server.stop());

/** A fake Redis that answers each complete command with `answer`, cut into 1-byte chunks. */
async function fakeRedis(answer: (command: string[]) => string): Promise<{ port: number; sockets: Socket[]; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const srv: Server = createServer((socket) => {
    socket.setNoDelay(true);
    sockets.push(socket);
    let text = '';
    socket.on('data', async (chunk) => {
      text += chunk.toString('latin1');
      // Commands are arrays of bulk strings: *N\r\n($L\r\nARG\r\n)*N
      for (;;) {
        const m = /^\*(\d+)\r\n/.exec(text);
        if (!m) return;
        let at = m[0].length;
        const args: string[] = [];
        for (let i = 0; i < Number(m[1]); i++) {
          const l = /^\$(\d+)\r\n/.exec(text.slice(at));
          if (!l || text.length < at + l[0].length + Number(l[1]) + 2) return;
          args.push(text.slice(at + l[0].length, at + l[0].length + Number(l[1])));
          at += l[0].length + Number(l[1]) + 2;
        }
        text = text.slice(at);
        for (const byte of answer(args)) {
          // One byte per packet: the client must reassemble every reply.
          socket.write(byte);
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return { port, sockets, close: () => new Promise((r) => (sockets.forEach((s) => s.destroy()), srv.close(() => r()))) };
}

describe('RESP connection (the writer’s)', () => {
  it('authenticates, selects the database, and parses every reply type, in order', async () => {
    const conn = createRespConnection({ port: server.port, password: 'pw-1', db: 3 });
    try {
      await conn.call('DEL', 'k', 'h');
      const replies = await conn.send(
        encodeCommands([
          ['SET', 'k', 'välue ✓'],
          ['GET', 'k'],
          ['GET', 'missing'],
          ['HSET', 'h', 'a', '1', 'b', '2'],
          ['HGETALL', 'h'],
          ['EVAL', "return {1, 'two', {3}}", '0'],
          ['HGET', 'k', 'x'],
        ]),
        7,
      );
      expect(replies.slice(0, 6)).toEqual(['OK', 'välue ✓', null, 2, ['a', '1', 'b', '2'], [1, 'two', [3]]]);
      expect(replies[6]).toBeInstanceOf(RedisReplyError);
      expect(String((replies[6] as Error).message)).toMatch(/^WRONGTYPE/);
      // SELECT 3 took effect: db 0 does not have the key.
      const db0 = new Redis({ port: server.port, password: 'pw-1' });
      expect(await db0.exists('k')).toBe(0);
      db0.disconnect();
    } finally {
      await conn.close();
    }
  });

  it('refused credentials are an error reply, classified auth', async () => {
    const conn = createRespConnection({ port: server.port, password: 'wrong' });
    const error = await conn.call('PING').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisReplyError);
    expect(toRedisError(error, 'open').kind).toBe('auth');
    await conn.close();
  });

  it('replies split across packets at every byte are reassembled', async () => {
    const answers: Record<string, string> = { PING: '+PONG\r\n', ARR: '*3\r\n:12\r\n$5\r\nhello\r\n*1\r\n$-1\r\n', GET: '$13\r\nhello, wörld\r\n', ERR: '-ERR no\r\n' };
    const fake = await fakeRedis((args) => answers[args[0]!] ?? ':7\r\n');
    const conn = createRespConnection({ port: fake.port });
    try {
      const replies = await conn.send(encodeCommands([['PING'], ['ARR'], ['X'], ['ERR'], ['GET']]), 5);
      expect(replies.slice(0, 3)).toEqual(['PONG', [12, 'hello', [null]], 7]);
      expect(String(replies[3])).toMatch(/ERR no/);
      expect(replies[4]).toBe('hello, wörld');
    } finally {
      await conn.close();
      await fake.close();
    }
  });

  it('with bytes, bulk strings come back as the exact bytes stored (binary-safe), also inside arrays', async () => {
    const binary = Buffer.from([0x00, 0x0d, 0x0a, 0xff, 0xfe, 0x24, 0x2a, 0x0d, 0x0a, 0x80]);
    const client = new Redis({ port: server.port, host: '127.0.0.1', password: 'pw-1' });
    const conn = createRespConnection({ port: server.port, password: 'pw-1' });
    try {
      await client.set('bin', binary);
      await client.hset('binhash', 'f', binary);
      const replies = await conn.send(encodeCommands([['GET', 'bin'], ['HGETALL', 'binhash'], ['GET', 'absent']]), 3, { bytes: true });
      expect(replies[0]).toEqual(binary);
      expect(replies[1]).toEqual([Buffer.from('f'), binary]);
      expect(replies[2]).toBeNull();
      // Without the option, the same bulk string is UTF-8 text (the bytes above are not valid UTF-8).
      const [text] = await conn.send(encodeCommands([['GET', 'bin']]), 1);
      expect(typeof text).toBe('string');
    } finally {
      client.disconnect();
      await conn.close();
    }
  });

  it('a dropped connection fails the waiting batch as transient, and the next send connects again', async () => {
    let drop = true;
    const fake = await fakeRedis(() => {
      if (drop) {
        drop = false;
        fake.sockets.at(-1)!.destroy();
        return '';
      }
      return ':1\r\n';
    });
    const conn = createRespConnection({ port: fake.port });
    try {
      const error = await conn.send(encodeCommands([['X']]), 1).catch((e: unknown) => e);
      expect(String((error as Error).message)).toMatch(/^Connection is closed/);
      expect(toRedisError(error, 'write').kind).toBe('transient');
      expect(await conn.send(encodeCommands([['X']]), 1)).toEqual([1]);
      expect(fake.sockets.length).toBe(2);
    } finally {
      await conn.close();
      await fake.close();
    }
  });

  it('a Redis that stops answering without closing: the waiting batch fails as transient after the reply timeout', async () => {
    const fake = await fakeRedis(() => ''); // reads, never answers
    const conn = createRespConnection({ port: fake.port }, { replyTimeoutMs: 300 });
    try {
      const error = await conn.send(encodeCommands([['X']]), 1).catch((e: unknown) => e);
      expect(String((error as Error).message)).toMatch(/^Connection is closed \(no reply from Redis/);
      expect(toRedisError(error, 'write').kind).toBe('transient');
    } finally {
      await conn.close();
      await fake.close();
    }
  });

  it('an unreachable Redis is transient; the destination writes through the connection with auth and db', async () => {
    const config = parseConfig(redisDestination.spec.connectionSpecification, { port: server.port, password: 'pw-1', db: 2, key_prefix: 'rc' });
    const session = await redisDestination.open(createConnectorContext({}), config, [
      { key: 's', name: 's', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: { type: 'object', properties: { updated_at: {} } }, resuming: false },
    ]);
    await session.write({ stream: 's', records: [{ id: 'e1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00Z', x: 1 }], emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });
    const db2 = new Redis({ port: server.port, password: 'pw-1', db: 2 });
    expect(await db2.exists(entityKey('rc', 'acme', 's', 'e1'))).toBe(1);
    db2.disconnect();

    const unreachable = createRespConnection({ port: 1 });
    const error = await unreachable.call('PING').catch((e: unknown) => e);
    expect(TributaryError.is(toRedisError(error, 'open')) && toRedisError(error, 'open').kind).toBe('transient');
    await unreachable.close();
  });
});
