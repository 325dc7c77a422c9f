// One phase of the redis benchmark, in its own process. Prints one JSON line.
//   reference <port> <requests> <clients>   redis-benchmark -P 16 -c <clients> -t hset (pipelined HSET)
//   reference_shaped <port> <requests> <clients>   the same HSET with a new key per request and record-sized values
//   write <port> <records>                  the destination: open, write batches of 1 000, commit
//                                           (after a warm-up session of WRITE_WARMUP other records)
//   lookup <port> <iterations>              the lookup API: 50 features × 1 entity and × 100 entities
import { spawn } from 'node:child_process';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { createFeatureLookup, featureShapesKey, redisDestination } from '@tributary/destination-redis';
import { Redis } from 'ioredis';
import { peakRssMb } from './measure.mjs';

const [phase, portArg, countArg, clientsArg = '50'] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);

/** Records the write phase writes (and throws away) before the timed session. */
const WRITE_WARMUP = Number(process.env.REDIS_BENCH_WRITE_WARMUP ?? 50_000);

async function flush() {
  const client = new Redis({ host: '127.0.0.1', port });
  await client.flushall();
  client.disconnect();
}

/** redis-server's CPU time so far (user + system, seconds), from INFO cpu. */
async function serverCpuSeconds() {
  const client = new Redis({ host: '127.0.0.1', port });
  const info = await client.info('cpu');
  client.disconnect();
  const field = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

function redisBenchmark(args) {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-benchmark exited with ${code}`))));
  });
}

/** A record of the write benchmark: entity key fields, an event time and 7 features (10 fields). */
function record(i) {
  return {
    id: `ct_${String(i).padStart(10, '0')}`,
    tenant_id: `tenant_${i % 10}`,
    updated_at: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
    score: i % 101,
    plan: i % 3 === 0 ? 'pro' : 'free',
    seats: (i * 7) % 50,
    active: i % 2 === 0,
    country: 'NO',
    ltv: (i % 10_000) / 7,
    tags: ['crm', `t${i % 5}`],
  };
}

const stream = (name) => ({
  key: name,
  name,
  syncMode: 'incremental',
  destinationSyncMode: 'append_dedup',
  primaryKey: [['id']],
  cursorField: ['updated_at'],
  jsonSchema: { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, updated_at: { type: 'string' } } },
  resuming: false,
});

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const ms = (ns) => Math.round(Number(ns) / 1e3) / 1e3;

if (phase === 'reference') {
  await flush();
  const serverCpu0 = await serverCpuSeconds();
  const out = await redisBenchmark(['-h', '127.0.0.1', '-p', String(port), '-P', '16', '-c', clientsArg, '-t', 'hset', '-n', String(count), '-r', '1000000', '--csv']);
  const line = out.trim().split('\n').find((l) => l.startsWith('"HSET'));
  if (!line) throw new Error(`no HSET line in redis-benchmark output:\n${out}`);
  const rps = Number(JSON.parse(`[${line}]`)[1]);
  const serverCpu = (await serverCpuSeconds()) - serverCpu0;
  console.log(JSON.stringify({ phase, clients: Number(clientsArg), requests: count, requests_per_s: Math.round(rps), server_cpu_us_per_request: Math.round(((serverCpu * 1e6) / count) * 100) / 100, peak_rss_mb: peakRssMb() }));
} else if (phase === 'reference_shaped') {
  // The same pipelined HSET, shaped like the destination's writes: a new key per request
  // (random among 2·10^9 — redis-benchmark's limit is a 32-bit int — so ~all distinct; checked below) and a value as long as a record's stored value
  // (time slots + the JSON of the write phase's records), instead of one 3-byte field of one key.
  await flush();
  let json = 0;
  for (let i = 0; i < 1000; i++) json += JSON.stringify(record(i * 199)).length;
  const valueBytes = 30 + Math.round(json / 1000);
  const serverCpu0 = await serverCpuSeconds();
  const out = await redisBenchmark(['-h', '127.0.0.1', '-p', String(port), '-P', '16', '-c', clientsArg, '-n', String(count), '-r', '2000000000', '--csv', 'HSET', 'trib:tenant_0:contacts:__rand_int__', 'g:contacts', 'x'.repeat(valueBytes)]);
  const line = out.trim().split('\n').find((l) => l.startsWith('"HSET'));
  if (!line) throw new Error(`no HSET line in redis-benchmark output:\n${out}`);
  const rps = Number(JSON.parse(`[${line}]`)[1]);
  const serverCpu = (await serverCpuSeconds()) - serverCpu0;
  const check = new Redis({ host: '127.0.0.1', port });
  const keys = await check.dbsize();
  check.disconnect();
  if (keys < count * 0.99) throw new Error(`the shaped reference wrote only ${keys} distinct keys for ${count} requests`);
  console.log(JSON.stringify({ phase, clients: Number(clientsArg), requests: count, value_bytes: valueBytes, requests_per_s: Math.round(rps), server_cpu_us_per_request: Math.round(((serverCpu * 1e6) / count) * 100) / 100, peak_rss_mb: peakRssMb() }));
} else if (phase === 'write') {
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port });
  // Warm-up: a session of its own writes other records first, so the timed session measures
  // the writer running, not V8 compiling it (cold, 200,000 records took 4.7–4.9 µs of client
  // CPU per record, against 4.2 after this warm-up: 3 runs each); the lookup phase warms up
  // too. Then Redis is emptied, and the timed session starts as a first sync does.
  const warmup = await redisDestination.open(createConnectorContext({}), config, [stream('contacts')]);
  for (let i = 0; i < WRITE_WARMUP; i += 1000) await warmup.write({ stream: 'contacts', records: Array.from({ length: 1000 }, (_, j) => record(count + i + j)), emittedAt: Date.now() });
  await warmup.commit();
  await warmup.close({ completed: true });
  await flush();
  const batches = [];
  for (let i = 0; i < count; i += 1000) batches.push({ stream: 'contacts', records: Array.from({ length: Math.min(1000, count - i) }, (_, j) => record(i + j)), emittedAt: Date.now() });
  const session = await redisDestination.open(createConnectorContext({}), config, [stream('contacts')]);
  const serverCpu0 = await serverCpuSeconds();
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (const batch of batches) await session.write(batch);
  await session.commit();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const serverCpu = (await serverCpuSeconds()) - serverCpu0;
  await session.close({ completed: true });
  const check = new Redis({ host: '127.0.0.1', port });
  // Every record is a new entity: one key each, and the feature-shape registry.
  const keys = (await check.dbsize()) - (await check.exists(featureShapesKey('trib')));
  check.disconnect();
  if (keys !== count) throw new Error(`wrote ${count} records, Redis holds ${keys} entity keys`);
  console.log(
    JSON.stringify({
      phase,
      records: count,
      fields_per_record: 10,
      warmup_records: WRITE_WARMUP,
      seconds: Math.round(seconds * 1000) / 1000,
      records_per_s: Math.round(count / seconds),
      // CPU per record on each side (steadier than wall time on a shared machine).
      client_cpu_us_per_record: Math.round(((cpu.user + cpu.system) / count) * 100) / 100,
      server_cpu_us_per_record: Math.round(((serverCpu * 1e6) / count) * 100) / 100,
      peak_rss_mb: peakRssMb(),
    }),
  );
} else if (phase === 'lookup') {
  await flush();
  const entities = 100;
  const records = Array.from({ length: entities }, (_, e) => {
    const r = { id: `e${e}`, tenant_id: 'acme', updated_at: new Date(Date.UTC(2025, 0, 1)).toISOString() };
    for (let f = 0; r && Object.keys(r).length < 50; f++) r[`feature_${f}`] = f % 3 === 0 ? `value-${e}-${f}` : (e * f) / 3;
    return r;
  });
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port });
  const session = await redisDestination.open(createConnectorContext({}), config, [stream('contacts')]);
  await session.write({ stream: 'contacts', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  const ids = records.map((r) => r.id);
  const lookup = createFeatureLookup({ port });
  const measure = async (iterations, call) => {
    for (let i = 0; i < Math.min(1000, iterations); i++) await call(i); // warm-up
    const times = new Array(iterations);
    for (let i = 0; i < iterations; i++) {
      const t = process.hrtime.bigint();
      await call(i);
      times[i] = process.hrtime.bigint() - t;
    }
    times.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { p50_ms: ms(percentile(times, 50)), p99_ms: ms(percentile(times, 99)), max_ms: ms(times[times.length - 1]) };
  };
  const one = await measure(count, async (i) => {
    const r = await lookup.get({ tenant: 'acme', entityType: 'contacts', entityId: ids[i % entities] });
    if (Object.keys(r.groups.contacts.features).length !== 50) throw new Error('expected 50 features');
  });
  const hundred = await measure(Math.max(100, Math.floor(count / 10)), async () => {
    const r = await lookup.getMany({ tenant: 'acme', entityType: 'contacts', entityIds: ids });
    if (r.length !== 100 || !r.every((e) => e.found)) throw new Error('expected 100 entities');
  });
  await lookup.close();
  console.log(JSON.stringify({ phase, features: 50, one_entity: one, hundred_entities: hundred, peak_rss_mb: peakRssMb() }));
} else {
  throw new Error(`unknown phase ${phase}`);
}
