import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '@tributary/conformance';
import { createConnectorContext, parseConfig, TributaryError } from '@tributary/core';
import { redisDestination } from '../src/index.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer({ args: ['--requirepass', 's3cret-pw'] });
});
afterAll(() => server.stop());

const check = (raw: Record<string, unknown>) => redisDestination.check(createConnectorContext({}), parseConfig(redisDestination.spec.connectionSpecification, raw));

async function kindOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (!TributaryError.is(error)) throw error;
    expect(error.userMessage).not.toContain('s3cret');
    return error.kind;
  }
}

it('check: succeeds with the password, refuses a wrong one as auth, an unreachable Redis as config', async () => {
  expect(await kindOf(check({ port: server.port, password: 's3cret-pw' }))).toBe('ok');
  expect(await kindOf(check({ port: server.port, password: 'wrong' }))).toBe('auth');
  expect(await kindOf(check({ port: await freePort() }))).toBe('config');
});

it('open: refuses a wrong password as auth, before anything is read', async () => {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: server.port, password: 'wrong' });
  expect(await kindOf(redisDestination.open(createConnectorContext({}), config, []))).toBe('auth');
});
