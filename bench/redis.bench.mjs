// redis: the Redis feature-store destination's write throughput against redis-benchmark's
// pipelined HSET (-P 16) on the same server in the same run, and lookup latency through the
// library API (50 features × 1 entity, × 100 entities). Starts its own redis-server
// (127.0.0.1, free port, no persistence) and stops it at the end.
// Targets (redis issue): write ≥ 0.5× the reference; lookup p99 ≤ 0.5 ms (1 entity), ≤ 2 ms (100 entities).
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, print, runPhase } from './measure.mjs';

function ping(port) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => socket.write('PING\r\n'));
    socket.once('data', (d) => (socket.destroy(), resolve(String(d).startsWith('+PONG'))));
    socket.once('error', () => resolve(false));
  });
}

export async function run(args) {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: 'string', default: '200000' },
      requests: { type: 'string', default: '2000000' },
      // redis-benchmark's default is 50 connections (the reference of the target); the
      // destination uses one, so a one-connection run is reported alongside.
      clients: { type: 'string', default: '50' },
      lookups: { type: 'string', default: '20000' },
      rounds: { type: 'string', default: '3' },
    },
  });
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  const stop = () => server.exitCode === null && server.kill('SIGTERM');
  process.once('exit', stop);
  try {
    let up = false;
    for (let i = 0; i < 200 && !up; i++) (up = await ping(port)) || (await new Promise((r) => setTimeout(r, 25)));
    if (!up) throw new Error('redis-server did not start');
    const script = fileURLToPath(new URL('./redis-phase.mjs', import.meta.url));
    const results = { reference: [], reference_1conn: [], reference_shaped: [], write: [], lookup: [] };
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const phase of ['reference', 'reference_1conn', 'reference_shaped', 'write', 'lookup']) {
        const phaseArgs =
          phase === 'reference'
            ? ['reference', String(port), values.requests, values.clients]
            : phase === 'reference_shaped'
              ? ['reference_shaped', String(port), values.records, values.clients]
              : phase === 'reference_1conn'
              ? ['reference', String(port), String(Math.floor(Number(values.requests) / 4)), '1']
              : [phase, String(port), phase === 'write' ? values.records : values.lookups];
        const result = await runPhase(script, phaseArgs);
        print({ bench: 'redis', round, ...result, phase });
        results[phase].push(result);
      }
    }
    const reference = results.reference.reduce((a, b) => (b.requests_per_s > a.requests_per_s ? b : a));
    const reference1 = results.reference_1conn.reduce((a, b) => (b.requests_per_s > a.requests_per_s ? b : a));
    const shaped = results.reference_shaped.reduce((a, b) => (b.requests_per_s > a.requests_per_s ? b : a));
    const write = results.write.reduce((a, b) => (b.records_per_s > a.records_per_s ? b : a));
    const lookup = results.lookup.reduce((a, b) => (b.one_entity.p99_ms + b.hundred_entities.p99_ms < a.one_entity.p99_ms + a.hundred_entities.p99_ms ? b : a));
    const ratio = write.records_per_s / reference.requests_per_s;
    print({
      bench: 'redis',
      summary: true,
      records: write.records,
      fields_per_record: write.fields_per_record,
      write_records_per_s: write.records_per_s,
      reference: `redis-benchmark -P 16 -c ${reference.clients} -t hset`,
      reference_requests_per_s: reference.requests_per_s,
      ratio_to_reference: Math.round(ratio * 1000) / 1000,
      reference_1conn: 'redis-benchmark -P 16 -c 1 -t hset',
      reference_1conn_requests_per_s: reference1.requests_per_s,
      ratio_to_reference_1conn: Math.round((write.records_per_s / reference1.requests_per_s) * 1000) / 1000,
      // Context, not the target's reference: the same HSET creating one key per request with values as long as the records'.
      reference_shaped: `redis-benchmark -P 16 -c ${shaped.clients} -r 2e9 HSET <new key> <field> <${shaped.value_bytes}-byte value>`,
      reference_shaped_requests_per_s: shaped.requests_per_s,
      ratio_to_reference_shaped: Math.round((write.records_per_s / shaped.requests_per_s) * 1000) / 1000,
      lookup_1_entity_p50_ms: lookup.one_entity.p50_ms,
      lookup_1_entity_p99_ms: lookup.one_entity.p99_ms,
      lookup_100_entities_p50_ms: lookup.hundred_entities.p50_ms,
      lookup_100_entities_p99_ms: lookup.hundred_entities.p99_ms,
      targets: { ratio: 0.5, lookup_1_entity_p99_ms: 0.5, lookup_100_entities_p99_ms: 2 },
      meets: {
        ratio: ratio >= 0.5,
        lookup_1_entity_p99_ms: lookup.one_entity.p99_ms <= 0.5,
        lookup_100_entities_p99_ms: lookup.hundred_entities.p99_ms <= 2,
      },
    });
  } finally {
    stop();
  }
}
