/**
 * A sync whose lake (on S3) cannot be opened at the first attempt, because the listing of
 * its commit log (its checkpoints first) lost its connection more times than the AWS SDK
 * retries, is opened again by the runtime and completes: before, the whole sync failed
 * (S3 request failed (list _tributary/checkpoints/)), though nothing had been read or
 * written. Real moto_server behind a proxy that drops the answers of the first three list
 * requests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkpoint, createFileStateStore, defineSource, parseConfig, record, runSync, type SourceMessage } from '@tributary/core';
import { lakeDestination, readStreamRows } from '../src/index.js';
import { motoLakeConfig, startMoto, startS3Proxy, type MotoServer, type S3Proxy } from './helpers.js';

let moto: MotoServer;
let proxy: S3Proxy;
let dir: string;
let listsDropped = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-open-retry-'));
  moto = await startMoto();
  await moto.createBucket('open-retry');
  proxy = await startS3Proxy(moto.endpoint, {
    onAnswer(req) {
      // ListObjectsV2 (GET ?list-type=2): the first three answers are lost (the SDK tries three times).
      if (req.method === 'GET' && req.url?.includes('list-type=2') && listsDropped < 3) {
        listsDropped++;
        return 'drop';
      }
      return 'pass';
    },
  });
});
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
  await rm(dir, { recursive: true, force: true });
});

const itemsStream = { name: 'items', json_schema: { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' } } }, supported_sync_modes: ['incremental' as const], source_defined_primary_key: [['id']] };

const source = defineSource({
  name: 'items',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [itemsStream] };
  },
  async *read(): AsyncGenerator<SourceMessage> {
    for (let id = 1; id <= 3; id++) yield record('items', { id, tenant_id: 't1', customer_id: `c${id}` });
    yield checkpoint('items', { id: 3 });
  },
});

it('a lake whose commit log cannot be listed at the first open attempt is opened again and the sync completes', async () => {
  const config = parseConfig(lakeDestination.spec.connectionSpecification, motoLakeConfig(proxy.endpoint, 'open-retry'));
  const stateStore = createFileStateStore(join(dir, 'state'));
  const result = await runSync({
    connection: 'open-retry',
    source,
    sourceConfig: {},
    destination: lakeDestination,
    destinationConfig: config,
    catalog: { streams: [{ stream: itemsStream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', primary_key: [['id']] }] },
    stateStore,
  });
  await stateStore.close();
  expect(listsDropped).toBe(3);
  expect(result.outcome).toBe('completed');
  expect((await readStreamRows(config, { stream: 'items' })).map((r) => r.entity_key).sort()).toEqual(['1', '2', '3']);
});
