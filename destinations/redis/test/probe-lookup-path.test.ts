/**
 * The lookup server's GET path: entity ids (and tenants, entity types) are data, so `.` and
 * `..`, percent-encoded as a client encodes any id, must reach the lookup as they are. URL
 * parsing resolved them as dot segments: the path lost a segment (404 "unknown path") or
 * named another entity. Real redis-server, real writer, real HTTP server.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { createFeatureLookup, redisDestination, startLookupServer } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();

/** A client's encoding of a path segment: encodeURIComponent leaves `.` alone, so a careful client escapes it too. */
const segment = (text: string): string => encodeURIComponent(text).replace(/\./g, '%2E');

/**
 * GET with the path sent exactly as given. (`fetch` resolves `%2E` segments itself, as every
 * WHATWG URL client does: such clients must look these ids up with POST, see the README.)
 */
function get(port: number, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    })
      .on('error', reject)
      .end();
  });
}

describe('lookup server: dot ids', () => {
  it('serves the entities "." and ".." and does not resolve ".." to another entity', async () => {
    const prefix = 'plp';
    const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
    const session = await redisDestination.open(createConnectorContext({}), config, [keyedStream('profile')]);
    const records: RecordData[] = ['.', '..', 'x'].map((id, i) => ({ id, tenant_id: 'acme', updated_at: at(1), n: i }));
    await session.write({ stream: 'profile', records, emittedAt: Date.now() });
    await session.commit();
    await session.close({ completed: true });

    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
    const server = await startLookupServer({ lookup });
    try {
      for (const [id, n] of [['.', 0], ['..', 1], ['x', 2]] as const) {
        const response = await get(server.port, `/features/acme/profile/${segment(id)}`);
        const body = response.body as { entityId?: string; groups?: Record<string, { features: Record<string, unknown> }> };
        expect({ id, status: response.status, entityId: body.entityId, n: body.groups?.profile?.features.n }).toEqual({ id, status: 200, entityId: id, n });
      }
      // `x/%2E%2E` is not the entity type "profile" with id "x" and a parent step: it is one
      // segment too many, never a lookup of another entity.
      expect(await get(server.port, '/features/acme/profile/x/%2E%2E')).toEqual({ status: 404, body: { error: expect.stringContaining('unknown path') } });
      // Nor does `..` climb to another entity: this path has five segments, not profile/x.
      expect((await get(server.port, '/features/acme/nope/%2E%2E/profile/x')).status).toBe(404);
    } finally {
      await server.close();
      await lookup.close();
    }
  });
});
