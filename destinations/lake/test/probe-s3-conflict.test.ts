import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, lakeDestination, loadLakeState, openStore } from '../src/index.js';
import type { LogEntry } from '../src/commit-log.js';
import { clickStream, motoLakeConfig, startMoto, type MotoServer } from './helpers.js';

// S3 answers a conditional PUT 409 ConditionalRequestConflict while another conditional
// write to the same key is in flight, and asks for a retry. That other write can be this
// very request's earlier attempt (the SDK retried it after a timeout), landing after the
// 409: a proxy in front of moto answers the compaction's log PUT 409 and lets the held
// request reach moto right after the next request for that key has been answered.
let moto: MotoServer;
let proxy: Server;
let proxyEndpoint: string;
const bucket = 'lake-conflict';
let armed = false;

beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
  const target = new URL(moto.endpoint);
  const forward = (req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }));
      });
      upstream.on('error', reject);
      upstream.end(body);
    });
  /** The held conditional PUT, by its path: it lands once the next request for that path is answered. */
  const held = new Map<string, { req: IncomingMessage; body: Buffer }>();
  proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = (req.url ?? '').split('?')[0]!;
      if (armed && req.method === 'PUT' && req.headers['if-none-match'] === '*' && path.includes('_tributary/log/')) {
        armed = false;
        held.set(path, { req, body });
        res.writeHead(409, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource. Please try again.</Message></Error>');
        return;
      }
      void forward(req, body).then(async (answer) => {
        const late = held.get(path);
        if (late) {
          held.delete(path);
          await forward(late.req, late.body);
        }
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      });
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  if (proxy) await new Promise<void>((r) => proxy.close(() => r()));
  await moto?.stop();
});

const records = (...ids: number[]) => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }));

it('a conditional log PUT answered 409 while its own earlier attempt lands is that commit: the compaction succeeds and its removed files keep their grace period', async () => {
  const config = motoLakeConfig(moto.endpoint, bucket);
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [clickStream()]);
  for (const id of [1, 2, 3]) {
    await session.write({ stream: 'clicks', records: records(id), emittedAt: Date.now() });
    await session.commit();
  }
  await session.close({ completed: true });
  const store = openStore(parseConfig(lakeConfigSchema, config));
  try {
    const inputs = [...(await loadLakeState(store)).files.keys()];
    expect(inputs).toHaveLength(3);

    armed = true;
    const result = await compactLake(motoLakeConfig(proxyEndpoint, bucket), { minFiles: 2 }).catch((error: unknown) => error);
    expect(armed).toBe(false);
    const kinds: string[] = [];
    for (const key of await store.list('_tributary/log/')) kinds.push((JSON.parse(new TextDecoder().decode(await store.get(key))) as LogEntry).kind);
    expect(kinds).toEqual(['append', 'append', 'append', 'complete', 'compact']);

    // A sweep of orphans of any age (the inputs were published long ago, in a real lake),
    // within the grace period: the removed inputs stay for readers on the older snapshot.
    await compactLake(config, { minFiles: 1_000, orphanAgeMs: 0 });
    const left = await store.list('data/');
    expect(inputs.filter((k) => !left.includes(k))).toEqual([]);
    // And the compaction, whose entry is in the log, reported success.
    expect(result).toMatchObject({ partitions: 1, filesBefore: 3, filesAfter: 1 });
  } finally {
    store.close();
  }
});
