import { spawn } from 'node:child_process';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData, type RejectedRecord } from '@tributary/core';
import { freePort, runCli } from '@tributary/conformance';
import { lakeDestination } from '../src/index.js';

export { freePort, runCli, type CliResult } from '@tributary/conformance';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** SQL over Parquet files with a fresh DuckDB: the independent reader of what the lake wrote. */
export async function duckQuery(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const rows = (await connection.runAndReadAll(sql)).getRowObjectsJS();
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])));
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/**
 * Writes `dir/sync.json` (sample contacts → a lake in `dir/lake`, monthly partitions, a
 * commit every 250 records: many small files per partition, for compaction and retention)
 * and runs it through the CLI.
 */
export async function syncSmallCommitsLake(dir: string, options: { connection: string; seed: number; contacts: number }): Promise<void> {
  await writeFile(
    join(dir, 'sync.json'),
    JSON.stringify({
      connection: options.connection,
      source: { connector: 'sample', config: { seed: options.seed, tenants: 2, counts: { companies: 0, contacts: options.contacts, deals: 0, activities: 0 }, checkpoint_every: 500, page_size: 250 } },
      destination: { connector: 'lake', config: { path: './lake', partitioning: 'tenant_month' } },
      streams: [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_records: 250, commit_interval_ms: 1 },
    }),
  );
  const sync = await runCli(['sync', 'sync.json'], dir);
  if (sync.code !== 0) throw new Error(`sync failed (${sync.code}): ${sync.stderr}`);
}

export interface MotoServer {
  endpoint: string;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `moto_server` (PyPI `moto[server]`) on 127.0.0.1 and a free port. */
export async function startMoto(): Promise<MotoServer> {
  const port = await freePort();
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}): ${stderr.slice(-2000)} — install it with: python3 -m pip install 'moto[server]'`);
    const up = await fetch(`${endpoint}/moto-api/`).then(
      () => true,
      () => false,
    );
    if (up) break;
    if (i > 300) throw new Error(`moto_server did not start: ${stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    async createBucket(name) {
      const response = await fetch(`${endpoint}/${name}`, { method: 'PUT' });
      if (!response.ok) throw new Error(`create bucket ${name}: HTTP ${response.status}`);
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface S3Proxy {
  /** The proxy's endpoint: an S3 endpoint for `motoLakeConfig`. */
  endpoint: string;
  close(): Promise<void>;
}

export interface S3ProxyHooks {
  /** Runs before a request is passed on to the target; the request waits for it. */
  beforeForward?(req: IncomingMessage): Promise<void> | void;
  /** Runs with the target's answer status; `'drop'` resets the client's connection instead of answering (a lost answer). */
  onAnswer?(req: IncomingMessage, status: number): Promise<'drop' | 'pass'> | 'drop' | 'pass';
}

/**
 * An HTTP proxy on 127.0.0.1 in front of `target` (moto), for injecting faults the real
 * server cannot: each request is read whole, may be held (`beforeForward`), is passed on,
 * and its answer relayed or dropped (`onAnswer`).
 */
export async function startS3Proxy(target: string, hooks: S3ProxyHooks): Promise<S3Proxy> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        await hooks.beforeForward?.(req);
        const forwarded = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          const body: Buffer[] = [];
          answer.on('data', (c: Buffer) => body.push(c));
          answer.on('end', () => {
            void (async () => {
              const status = answer.statusCode ?? 502;
              // A hook that throws drops the answer too, and its error stays unhandled (the test fails).
              const verdict = await Promise.resolve(hooks.onAnswer?.(req, status)).catch((error: unknown) => {
                req.socket.destroy();
                throw error;
              });
              if (verdict === 'drop') {
                req.socket.destroy();
                return;
              }
              res.writeHead(status, answer.headers);
              res.end(Buffer.concat(body));
            })();
          });
        });
        forwarded.end(Buffer.concat(chunks));
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A lake config on moto's S3 (`bucket` at `endpoint`, the test credentials), plus `extra` settings. */
export function motoLakeConfig(endpoint: string, bucket: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { target: 's3', bucket, prefix: 'lake/', endpoint, force_path_style: true, region: 'us-east-1', access_key_id: 'testing', secret_access_key: 'testing', ...extra };
}

/** An incremental, keyed click stream (id, tenant_id, customer_id, event_time) named `key`. */
export function clickStream(key = 'clicks'): DestinationStream {
  return keyedStream(key, { event_time: { type: 'string', format: 'date-time' } });
}

/** Stream-schema properties of the fields a CDC source adds (`_tributary_op`, position, commit time, before-image, unchanged TOASTed columns). */
export const cdcFields = {
  _tributary_op: { type: 'string' },
  _tributary_position: { type: 'string' },
  _tributary_commit_time: { type: 'string' },
  _tributary_before: { type: ['object', 'null'] },
  _tributary_unchanged: { type: ['array', 'null'] },
};

/** An incremental, deduplicated stream keyed by `id`, with `tenant_id`, `customer_id` and the `properties` given. */
export function keyedStream(key: string, properties: Record<string, unknown> = {}, overrides: Partial<DestinationStream> = {}): DestinationStream {
  return {
    key,
    name: key,
    syncMode: 'incremental',
    destinationSyncMode: 'append_dedup',
    primaryKey: [['id']],
    cursorField: [],
    jsonSchema: { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, ...properties } },
    resuming: false,
    ...overrides,
  };
}

/**
 * One lake session over `stream`: writes each batch, commits, closes (`completed: false`
 * leaves it replayable, as a crash after the commit would). Returns the records refused.
 * `connection`: the sync's connection name, as runSync gives it (default: none).
 */
export async function writeSession(config: Record<string, unknown>, stream: DestinationStream, batches: RecordData[][], completed = true, connection?: string): Promise<RejectedRecord[]> {
  const ctx = createConnectorContext(connection !== undefined ? { connection } : {});
  const session = await lakeDestination.open(ctx, parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  const rejected: RejectedRecord[] = [];
  for (const records of batches) rejected.push(...((await session.write({ stream: stream.key, records, emittedAt: Date.now() }))?.rejected ?? []));
  await session.commit();
  await session.close({ completed });
  return rejected;
}
