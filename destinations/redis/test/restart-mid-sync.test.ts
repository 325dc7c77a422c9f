import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { configureCatalog, createConnectorContext, createFileStateStore, parseConfig, runSync, type Destination, type RecordData } from '@tributary/core';
import { forEachSampleRecord, sampleSource } from '@tributary/source-sample';
import { decodeEntityHash, entityKey, featureShapesKey, readAllShapes, redisDestination } from '../src/index.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

// Redis runs with `appendonly yes` + `appendfsync always`: what it acknowledged is on disk,
// so a SIGKILL of the server loses nothing the destination committed (see the README).
let server: RedisServer;
let stateDir: string;
beforeAll(async () => {
  server = await startRedisServer({ persistent: true });
  stateDir = mkdtempSync(join(tmpdir(), 'tributary-redis-state-'));
});
afterAll(async () => {
  await server.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

const sourceConfig = { seed: 5, tenants: 3, counts: { companies: 2_000, contacts: 30_000, deals: 0, activities: 0 }, checkpoint_every: 500 };
const streams = ['companies', 'contacts'] as const;

/** Every record the source yields, per stream: what Redis must hold afterwards, exactly. */
async function expectedRecords(): Promise<Record<string, RecordData[]>> {
  const out: Record<string, RecordData[]> = {};
  await forEachSampleRecord(sourceConfig, streams, (stream, record) => (out[stream] ??= []).push(record));
  return out;
}

it('Redis killed and restarted mid-sync: the sync reconnects and continues, nothing lost or extra', async () => {
  let failures = 0;
  let resends = 0;
  // The destination itself, counting the write/commit errors the runtime retries.
  const destination: Destination = {
    ...redisDestination,
    async open(ctx, config, s) {
      const session = await redisDestination.open(ctx, config as Parameters<typeof redisDestination.open>[1], s);
      const counted =
        <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
        async (...a: A): Promise<R> => {
          try {
            return await f(...a);
          } catch (error) {
            failures++;
            throw error;
          }
        };
      return { write: counted(session.write), commit: counted(session.commit), close: session.close };
    },
  };

  let restart: Promise<void> | undefined;
  let restarted = false;
  let statesAfterRestart = 0;
  const ctx = createConnectorContext({});
  const discovered = await sampleSource.discover(ctx, parseConfig(sampleSource.spec.connectionSpecification, sourceConfig));
  const result = await runSync({
    connection: 'redis-restart',
    source: sampleSource,
    sourceConfig,
    destination,
    destinationConfig: { port: server.port, key_prefix: 'restart' },
    catalog: configureCatalog(discovered, streams.map((name) => ({ name, sync_mode: 'incremental' as const })), redisDestination.spec.supportedDestinationSyncModes),
    stateStore: createFileStateStore(stateDir),
    batching: { maxRecords: 500, commitIntervalMs: 20 },
    onEvent: (event) => {
      if (event.type === 'log' && event.message.includes('redis write failed')) resends++;
      if (event.type !== 'state') return;
      if (restarted) statesAfterRestart++;
      // At the first committed checkpoint: SIGKILL Redis, keep it down for a few of the
      // client's reconnection rounds (so queued writes fail, are re-sent by the session and,
      // once that fails too, retried by the runtime as transient errors), then restart it.
      restart ??= (async () => {
        await server.kill();
        await new Promise((r) => setTimeout(r, 4_000));
        await server.start();
        restarted = true;
      })();
    },
  });
  await restart;
  expect(result.error?.message ?? '').toBe('');
  expect(result.outcome).toBe('completed');
  expect(restarted).toBe(true);
  expect(statesAfterRestart).toBeGreaterThan(0);
  // The outage was seen: writes failed and were sent again (by the session, or by the runtime's retry).
  expect(failures + resends).toBeGreaterThan(0);

  const expected = await expectedRecords();
  const client = new Redis({ port: server.port, host: '127.0.0.1' });
  try {
    let total = 0;
    const shapes = await readAllShapes(client, featureShapesKey('restart'));
    for (const name of streams) {
      const records = expected[name]!;
      total += records.length;
      const missing: string[] = [];
      const different: string[] = [];
      for (let i = 0; i < records.length; i += 1_000) {
        const slice = records.slice(i, i + 1_000);
        const pipeline = client.pipeline();
        for (const r of slice) pipeline.hgetallBuffer(entityKey('restart', String(r.tenant_id), name, String(r.id)));
        const replies = (await pipeline.exec()) ?? [];
        slice.forEach((record, j) => {
          const group = decodeEntityHash(replies[j]![1] as Record<string, Buffer>, shapes).get(name);
          if (!group) missing.push(String(record.id));
          else if (JSON.stringify(group.features) !== JSON.stringify(record)) different.push(String(record.id));
        });
      }
      expect(missing, `${name}: records lost`).toEqual([]);
      expect(different, `${name}: records stored differently`).toEqual([]);
    }
    // Nothing besides those records (and the feature-shape registry): no stray or duplicated entity.
    expect(await client.dbsize()).toBe(total + 1);
  } finally {
    client.disconnect();
  }
});
