// One phase of the postgres-cdc benchmark, in its own process. Prints one JSON line.
//   source-cdc <server> <slot> <startLsn> <rows>     the source draining its slot (pgoutput) until caught up
//   reference-cdc <server> <slot> <endLsn> <rows>    pg_recvlogical draining its slot to /dev/null
//   source-snapshot <server> <rows>                  the source's initial CDC snapshot (slot + exported snapshot)
//   reference-copy <server> <rows>                   psql COPY bench TO STDOUT > /dev/null
//   latency <server> <rowsPerSecond> <seconds>       tributary sync (runtime, null destination) while a writer commits at a steady rate
//   writer <server> <rowsPerSecond> <seconds>        (used by latency) inserts at a steady rate
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { configureCatalog, createConnectorContext, defineDestination, parseConfig, runSync } from '@tributary/core';
import { postgresSource } from '@tributary/source-postgres';
import { peakRssMb } from './measure.mjs';

const [phase, serverJson, ...rest] = process.argv.slice(2);
const server = JSON.parse(serverJson);
const env = { ...process.env, PGPASSWORD: server.password };

function configOf(overrides) {
  return parseConfig(postgresSource.spec.connectionSpecification, {
    host: server.host,
    port: server.port,
    database: server.database,
    username: server.user,
    password: server.password,
    publication_name: 'bench_pub',
    manage_publication: false,
    chunk_size: 10_000,
    ...overrides,
  });
}

async function catalogOf(config) {
  const discovered = await postgresSource.discover(createConnectorContext({}), config);
  return configureCatalog(discovered, [{ name: 'bench', namespace: 'public', sync_mode: 'incremental' }], ['append_dedup']);
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`))));
  });
}

const rate = (rows, ms) => Math.round(rows / (ms / 1000));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

if (phase === 'source-cdc') {
  const [slot, startLsn, expected] = rest;
  const config = configOf({ slot_name: slot });
  const catalog = await catalogOf(config);
  const state = { streams: { 'public.bench': { cdc: 'streaming' } }, shared: { slot, lsn: startLsn } };
  const started = performance.now();
  let rows = 0;
  for await (const m of postgresSource.read(createConnectorContext({}), config, catalog, state)) {
    if (m.kind === 'records') rows += m.records.length;
    else if (m.kind === 'record') rows++;
  }
  const ms = performance.now() - started;
  if (rows !== Number(expected)) throw new Error(`source read ${rows} rows, expected ${expected}`);
  console.log(JSON.stringify({ phase, rows, seconds: ms / 1000, rows_per_s: rate(rows, ms), peak_rss_mb: peakRssMb() }));
} else if (phase === 'reference-cdc') {
  const [slot, endLsn, expected] = rest;
  const started = performance.now();
  await run('/usr/bin/pg_recvlogical', ['-h', server.host, '-p', String(server.port), '-U', server.user, '-d', server.database, '-S', slot, '--start', '-o', 'proto_version=2', '-o', 'publication_names=bench_pub', '-E', endLsn, '--no-loop', '-f', '/dev/null']);
  const ms = performance.now() - started;
  console.log(JSON.stringify({ phase, rows: Number(expected), seconds: ms / 1000, rows_per_s: rate(Number(expected), ms) }));
} else if (phase === 'source-snapshot') {
  const [expected] = rest;
  const config = configOf({ slot_name: 'bench_snapshot_slot' });
  const catalog = await catalogOf(config);
  const started = performance.now();
  let rows = 0;
  for await (const m of postgresSource.read(createConnectorContext({}), config, catalog, { streams: {} })) {
    if (m.kind === 'records') rows += m.records.length;
  }
  const ms = performance.now() - started;
  if (rows !== Number(expected)) throw new Error(`snapshot read ${rows} rows, expected ${expected}`);
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  await client.query(`SELECT pg_drop_replication_slot('bench_snapshot_slot')`);
  await client.end();
  console.log(JSON.stringify({ phase, rows, seconds: ms / 1000, rows_per_s: rate(rows, ms), peak_rss_mb: peakRssMb() }));
} else if (phase === 'reference-copy') {
  const [expected] = rest;
  const started = performance.now();
  await run('/usr/bin/psql', [server.url, '-q', '-c', 'COPY bench TO STDOUT', '-o', '/dev/null']);
  const ms = performance.now() - started;
  console.log(JSON.stringify({ phase, rows: Number(expected), seconds: ms / 1000, rows_per_s: rate(Number(expected), ms) }));
} else if (phase === 'writer') {
  const [perSecond, seconds] = rest.map(Number);
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const perTick = Math.max(1, Math.round(perSecond / 100)); // 100 transactions a second
  const until = Date.now() + seconds * 1000;
  let next = Date.now();
  let id = 10_000_000;
  while (Date.now() < until) {
    await client.query(`INSERT INTO bench SELECT g, 0, 'latency' FROM generate_series($1::int, $2::int) g`, [id, id + perTick - 1]);
    id += perTick;
    next += 10;
    const wait = next - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  await client.end();
  console.log(JSON.stringify({ phase, rows: id - 10_000_000 }));
} else if (phase === 'latency') {
  const [perSecond, seconds] = rest.map(Number);
  const config = configOf({ slot_name: 'bench_latency_slot', cdc_until: 'stopped', heartbeat_interval_ms: 1000 });
  const catalog = await catalogOf(config);
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const { rows: [slot] } = await client.query(`SELECT lsn::text FROM pg_create_logical_replication_slot('bench_latency_slot', 'pgoutput')`);
  const delivered = [];
  const committed = [];
  let pending = [];
  const warmupUntil = Date.now() + 1_000;
  // A destination that only measures: the latency from the commit in PostgreSQL to the
  // batch reaching the destination, and to the destination's commit (the checkpoint).
  const destination = defineDestination({
    name: 'null',
    delivery: 'append',
    spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append', 'append_dedup'] },
    async check() {},
    async open() {
      return {
        async write(batch) {
          const now = Date.now();
          for (const r of batch.records) {
            const at = Date.parse(r._tributary_commit_time);
            if (at < warmupUntil) continue;
            delivered.push(now - at);
            pending.push(at);
          }
        },
        async commit() {
          const now = Date.now();
          for (const at of pending) committed.push(now - at);
          pending = [];
        },
        async close() {},
      };
    },
  });
  const stop = new AbortController();
  const store = { location: 'memory:', state: undefined, async load() { return { streams: { 'public.bench': { cdc: 'streaming' } }, shared: { slot: 'bench_latency_slot', lsn: slot.lsn } }; }, async save() {}, async reset() {}, async list() { return []; }, async close() {} };
  const sync = runSync({ connection: 'latency', source: postgresSource, sourceConfig: config, destination, destinationConfig: {}, catalog, stateStore: store, batching: { maxAgeMs: 10, commitIntervalMs: 50 }, signal: stop.signal });
  const writer = spawn(process.execPath, [fileURLToPath(import.meta.url), 'writer', serverJson, String(perSecond), String(seconds + 1)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(writer, 'exit');
  await new Promise((resolve) => setTimeout(resolve, 500));
  stop.abort();
  const result = await sync;
  await client.query(`SELECT pg_drop_replication_slot('bench_latency_slot')`);
  await client.end();
  if (result.outcome === 'failed') throw new Error(result.error?.userMessage);
  delivered.sort((a, b) => a - b);
  committed.sort((a, b) => a - b);
  console.log(JSON.stringify({
    phase,
    rows_per_s: perSecond,
    rows: delivered.length,
    delivered_p50_ms: percentile(delivered, 50),
    delivered_p99_ms: percentile(delivered, 99),
    committed_p50_ms: percentile(committed, 50),
    committed_p99_ms: percentile(committed, 99),
    peak_rss_mb: peakRssMb(),
  }));
} else {
  throw new Error(`unknown phase ${phase}`);
}
process.exit(0);
