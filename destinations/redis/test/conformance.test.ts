import { destinationConformance } from '@tributary/conformance';
import { decodeEntityHash, entityKeyPattern, featureShapesKey, readAllShapes, redisDestination } from '../src/index.js';
import { useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let targets = 0;

// Each case gets its own key prefix on the same server; the conformance stream has no
// tenant field, so a default tenant is configured.
destinationConformance({
  destination: redisDestination,
  config: () => ({ host: '127.0.0.1', port: peer.server.port, key_prefix: `conformance${++targets}`, default_tenant: 'acme' }),
  readBack: async (config, stream) => {
    const rows: Record<string, unknown>[] = [];
    let cursor = '0';
    const shapes = await readAllShapes(peer.client, featureShapesKey(String(config.key_prefix)));
    do {
      const [next, keys] = await peer.client.scan(cursor, 'MATCH', entityKeyPattern(String(config.key_prefix), 'acme', stream), 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const group = decodeEntityHash(await peer.client.hgetallBuffer(key), shapes).get(stream);
        if (group) rows.push(group.features);
      }
    } while (cursor !== '0');
    return rows;
  },
  module: '@tributary/destination-redis',
});
