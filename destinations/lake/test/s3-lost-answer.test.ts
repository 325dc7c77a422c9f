import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, lakeDestination, openLakeReader, openStore } from '../src/index.js';
import type { LogEntry } from '../src/commit-log.js';
import { clickStream, motoLakeConfig, startMoto, startS3Proxy, type MotoServer, type S3Proxy } from './helpers.js';

// A commit-log entry whose conditional PUT reached S3 but whose answer was lost (connection
// reset): the AWS SDK retries the PUT, and S3 answers the retry 412 — the key now exists,
// created by the first attempt. A proxy in front of moto drops that answer, after letting a
// compaction commit in between (it merges the files the entry just added).
let moto: MotoServer;
let proxy: S3Proxy;
let proxyEndpoint: string;
const bucket = 'lake-lost-answer';
/** Runs once the next conditional log PUT has been stored; its answer is then dropped. */
let beforeDroppingAnswer: (() => Promise<void>) | undefined;

beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
  proxy = await startS3Proxy(moto.endpoint, {
    async onAnswer(req, status) {
      const hook = beforeDroppingAnswer;
      if (!hook || req.method !== 'PUT' || req.headers['if-none-match'] !== '*' || !req.url?.includes('_tributary/log/') || status !== 200) return 'pass';
      beforeDroppingAnswer = undefined;
      await hook();
      return 'drop';
    },
  });
  proxyEndpoint = proxy.endpoint;
});
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
});

const lakeConfig = (endpoint: string) => motoLakeConfig(endpoint, bucket);
const stream = clickStream();
const records = (...ids: number[]) => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }));

it('a retried log PUT that finds its own first attempt is that commit, not a lost race: no second entry, no resurrected file', async () => {
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, lakeConfig(proxyEndpoint)), [stream]);
  await session.write({ stream: 'clicks', records: records(1, 2), emittedAt: Date.now() });
  await session.commit();
  beforeDroppingAnswer = async () => void (await compactLake(lakeConfig(moto.endpoint), { minFiles: 2 }));
  await session.write({ stream: 'clicks', records: records(3, 4), emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  expect(beforeDroppingAnswer).toBeUndefined();

  const store = openStore(parseConfig(lakeConfigSchema, lakeConfig(moto.endpoint)));
  try {
    const kinds: string[] = [];
    for (const key of await store.list('_tributary/log/')) kinds.push((JSON.parse(new TextDecoder().decode(await store.get(key))) as LogEntry).kind);
    expect(kinds).toEqual(['append', 'append', 'compact', 'complete']);
  } finally {
    store.close();
  }
  // Past the grace period the compaction's inputs are deleted: the log must not name them.
  await compactLake(lakeConfig(moto.endpoint), { graceMs: 0 });
  const reader = await openLakeReader(lakeConfig(moto.endpoint));
  try {
    expect(await reader.query('SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS ids FROM events')).toEqual([{ n: 4, ids: 4 }]);
  } finally {
    await reader.close();
  }
});
