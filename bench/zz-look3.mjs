import { createConnectorContext, parseConfig } from '@tributary/core';
import { createFeatureLookup, redisDestination, decodeEntityFields, entityKey } from '@tributary/destination-redis';
import { createRespConnection, encodeCommands } from '/work/main/destinations/redis/dist/resp-connection.js';
const port = 6399;
const entities = 100;
const records = Array.from({ length: entities }, (_, e) => {
  const r = { id: `e${e}`, tenant_id: 'acme', updated_at: new Date(Date.UTC(2025, 0, 1)).toISOString() };
  for (let f = 0; r && Object.keys(r).length < 50; f++) r[`feature_${f}`] = f % 3 === 0 ? `value-${e}-${f}` : (e * f) / 3;
  return r;
});
const stream = { key: 'contacts', name: 'contacts', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: { type: 'object' }, resuming: false };
const config = parseConfig(redisDestination.spec.connectionSpecification, { port });
const session = await redisDestination.open(createConnectorContext({}), config, [stream]);
await session.write({ stream: 'contacts', records, emittedAt: Date.now() });
await session.commit(); await session.close({ completed: true });
const ids = records.map((r) => r.id);
const lookup = createFeatureLookup({ port });
const conn = createRespConnection({ port });
const build = (tenant, entityType, entityId, decoded, groups, at) => {
  const out = { tenant, entityType, entityId, found: false, groups: {} };
  for (const [name, g] of decoded) {
    if (groups && !groups.includes(name)) continue;
    if (g.expiresAtMs !== undefined && g.expiresAtMs <= at) continue;
    out.groups[name] = { eventTime: new Date(g.eventTimeMs).toISOString(), eventTimeMs: g.eventTimeMs, ageMs: at - g.eventTimeMs, ...(g.expiresAtMs !== undefined ? { expiresAt: new Date(g.expiresAtMs).toISOString() } : {}), features: g.features };
    out.found = true;
  }
  return out;
};
const viaResp = async () => {
  const keys = ids.map((id) => entityKey('trib', 'acme', 'contacts', id));
  const replies = await conn.send(encodeCommands(keys.map((k) => ['HGETALL', k])), keys.length);
  const at = Date.now();
  return ids.map((id, i) => build('acme', 'contacts', id, decodeEntityFields(replies[i]), undefined, at));
};
const N = Number(process.argv[2] ?? 3000);
for (let round = 0; round < 4; round++) {
  for (const [name, f] of [['ioredis', () => lookup.getMany({ tenant: 'acme', entityType: 'contacts', entityIds: ids })], ['resp', viaResp]]) {
    const times = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < N; i++) { const t = process.hrtime.bigint(); const r = await f(); if (Object.keys(r[99].groups.contacts.features).length !== 50) throw new Error('x'); times.push(Number(process.hrtime.bigint() - t) / 1e6); }
    const cpu = process.cpuUsage(cpu0);
    times.sort((a, b) => a - b);
    console.log(name.padEnd(8), `p50 ${times[N >> 1].toFixed(3)} p90 ${times[Math.floor(N * 0.9)].toFixed(3)} p99 ${times[Math.floor(N * 0.99)].toFixed(3)} cpu/lookup ${((cpu.user + cpu.system) / N / 1000).toFixed(3)} ms`);
  }
}
await lookup.close(); await conn.close();
