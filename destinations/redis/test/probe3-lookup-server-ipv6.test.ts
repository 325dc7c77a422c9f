/**
 * The lookup server's `url` when it listens on an IPv6 address: it was `http://::1:<port>`,
 * which is no URL (fetch: "Invalid URL"); an IPv6 host belongs in brackets. Real
 * redis-server, real lookup, real HTTP over the IPv6 loopback.
 */
import { createServer } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { createFeatureLookup, redisDestination, startLookupServer } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

/** Whether this machine has the IPv6 loopback (some containers disable IPv6). */
let hasIpv6Loopback = false;
beforeAll(async () => {
  hasIpv6Loopback = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
});

describe('lookup server on an IPv6 address', () => {
  it('gives a url clients can fetch as it is', async (context) => {
    if (!hasIpv6Loopback) context.skip();
    const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: 'plv6' });
    const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
    await session.write({ stream: 'profile', records: [{ id: 'e1', tenant_id: 'acme', updated_at: at(1), plan: 'pro' }], emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });

    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: 'plv6' });
    const server = await startLookupServer({ lookup, host: '::1' });
    try {
      expect(server.url).toBe(`http://[::1]:${server.port}`);
      const response = await fetch(`${server.url}/features/acme/profile/e1`);
      expect(response.status).toBe(200);
      expect(((await response.json()) as { groups: { profile: { features: unknown } } }).groups.profile.features).toMatchObject({ plan: 'pro' });
    } finally {
      await server.close();
      await lookup.close();
    }
  });
});
