import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, openLakeReader, openStore } from '../src/index.js';
import { clickStream, duckQuery, motoLakeConfig, startMoto, startS3Proxy, writeSession, type MotoServer, type S3Proxy } from './helpers.js';

// A reader on S3 copies the files of the snapshot it loaded before it answers anything. Files
// a compaction removed are deleted once their grace period ends; a download that outlasts it
// (a large lake) found a file gone and the reader failed. A proxy in front of moto holds the
// reader's first data-file download while a compaction merges the files and a second one,
// its grace period over (`graceMs: 0`), deletes them: the reader must read the newer snapshot.
let moto: MotoServer;
let proxy: S3Proxy;
let proxyEndpoint: string;
const bucket = 'lake-reader-snapshot';
/** Runs before the next GET of a data file is passed on to moto. */
let beforeDataGet: (() => Promise<void>) | undefined;

beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
  proxy = await startS3Proxy(moto.endpoint, {
    async beforeForward(req) {
      const hook = beforeDataGet;
      if (!hook || req.method !== 'GET' || !req.url?.includes('/data/') || !req.url.includes('.parquet')) return;
      beforeDataGet = undefined;
      await hook();
    },
  });
  proxyEndpoint = proxy.endpoint;
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
});

const stream = clickStream();
const clicks = (...ids: number[]) => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }));

it('a reader whose download outlasts the grace period of files compacted meanwhile reads the newer snapshot instead of failing', async () => {
  const direct = motoLakeConfig(moto.endpoint, bucket);
  for (let i = 0; i < 4; i++) await writeSession(direct, stream, [clicks(2 * i, 2 * i + 1)]);
  let merged = 0;
  let deleted = 0;
  beforeDataGet = async () => {
    merged = (await compactLake(direct, { minFiles: 2 })).filesBefore;
    deleted = (await compactLake(direct, { graceMs: 0 })).filesDeleted;
  };
  const reader = await openLakeReader(motoLakeConfig(proxyEndpoint, bucket));
  try {
    expect({ merged, deleted }).toEqual({ merged: 4, deleted: 4 });
    expect(reader.state.files.size).toBe(1);
    const rows = await reader.query('SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS ids FROM events');
    expect(rows).toEqual([{ n: 8, ids: 8 }]);
    // The independent reader, over a copy of the one file the log now names: the same rows.
    const store = openStore(parseConfig(lakeConfigSchema, direct));
    const work = await mkdtemp(join(tmpdir(), 'probe4-reader-'));
    try {
      const copy = await store.localCopy([...reader.state.files.keys()][0]!, work);
      expect(await duckQuery(`SELECT count(DISTINCT event_id)::INT AS ids FROM read_parquet('${copy}')`)).toEqual([{ ids: 8 }]);
    } finally {
      store.close();
      await rm(work, { recursive: true, force: true });
    }
  } finally {
    await reader.close();
  }
}, 120_000);
