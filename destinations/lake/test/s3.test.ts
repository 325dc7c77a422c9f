import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '@tributary/core';
import { compactLake, lakeConfigSchema, openStore, readLatestAsOf } from '../src/index.js';
import { duckQuery, runCli, startMoto, type MotoServer } from './helpers.js';

// The lake on a real S3 server (moto_server, started here): syncs and queries through the
// CLI binary, library calls in-process.
let moto: MotoServer;
let dir: string;
const bucket = 'lake-test';
beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-s3-'));
});
afterAll(async () => {
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const lakeConfig = (prefix: string) => ({
  target: 's3',
  bucket,
  prefix,
  endpoint: moto.endpoint,
  force_path_style: true,
  region: 'us-east-1',
  access_key_id: 'testing',
  secret_access_key: 'testing',
  source_system: 'sample',
  streams: { activities: { event_id_field: 'event_id' } },
});

const storeFor = (prefix: string) => openStore(parseConfig(lakeConfigSchema, lakeConfig(prefix)));


describe('lake on S3 (moto)', () => {
  it('conditional create: the second create of a commit-log key loses (If-None-Match: *)', async () => {
    const store = storeFor('probe/');
    try {
      const key = '_tributary/log/00000000000000000001.json';
      expect([await store.createIfAbsent(key, 'first'), await store.createIfAbsent(key, 'second')]).toEqual([true, false]);
      expect(new TextDecoder().decode(await store.get(key))).toBe('first');
    } finally {
      store.close();
    }
  });

  it('sample → S3 lake through the CLI: every row once, readable by DuckDB, tenant isolation, rerun adds nothing, compaction keeps rows', async () => {
    const counts = { companies: 300, contacts: 3000, deals: 0, activities: 12000 };
    const sync = join(dir, 's3-sync.json');
    await writeFile(
      sync,
      JSON.stringify({
        connection: 's3',
        source: { connector: 'sample', config: { seed: 3, tenants: 3, counts, checkpoint_every: 1000 } },
        destination: { connector: 'lake', config: lakeConfig('run1/') },
        streams: ['companies', 'contacts', 'activities'].map((name) => ({ name, sync_mode: 'incremental', destination_sync_mode: 'append_dedup' })),
        // A commit at every checkpoint (every 1,000 records of a stream), not on a timer: each
        // partition then has several files whatever the machine's speed, for the compaction below.
        batching: { max_records: 1000, commit_interval_ms: 0 },
      }),
    );
    const first = await runCli(['sync', sync], dir);
    expect(first.code, first.stderr).toBe(0);
    const again = await runCli(['sync', sync], dir);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/completed: 0 records committed/);

    const query = await runCli(['lake', 'query', 'select stream, count(*) as n, count(distinct event_id) as ids from events group by 1 order by 1', '--config', sync, '--format', 'jsonl'], dir);
    expect(query.code, query.stderr).toBe(0);
    expect(query.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { stream: 'activities', n: 12000, ids: 12000 },
      { stream: 'companies', n: 300, ids: 300 },
      { stream: 'contacts', n: 3000, ids: 3000 },
    ]);

    // Every data object in the bucket, read by a separate DuckDB: its rows belong to the tenant in its key.
    const store = storeFor('run1/');
    const objects: Array<{ key: string; path: string }> = [];
    try {
      for (const key of await store.list('data/')) objects.push({ key, path: await store.localCopy(key, join(dir, 'objects')) });
    } finally {
      store.close();
    }
    expect(objects.length).toBeGreaterThan(3);
    let rows = 0;
    for (const { key, path: local } of objects) {
      const tenant = decodeURIComponent(/tenant_id=([^/]+)/.exec(key)![1]!);
      const [r] = await duckQuery(`SELECT count(*) AS n, count(*) FILTER (WHERE tenant_id <> '${tenant}') AS foreign_rows FROM read_parquet('${local}')`);
      expect(r!.foreign_rows, key).toBe(0);
      rows += r!.n as number;
    }
    expect(rows).toBe(15300);

    const compacted = await compactLake(lakeConfig('run1/'), { minFiles: 2 });
    expect(compacted.partitions).toBeGreaterThan(0);
    expect(compacted.duplicatesDropped).toBe(0);
    const after = await runCli(['lake', 'query', 'select count(*) as n, count(distinct event_id) as ids from events', '--config', sync, '--format', 'jsonl'], dir);
    expect(JSON.parse(after.stdout.trim())).toEqual({ n: 15300, ids: 15300 });

    const asOf = await readLatestAsOf(lakeConfig('run1/'), { stream: 'companies', tenant: 'tenant_001' });
    expect(asOf.length).toBeGreaterThan(0);
    expect(asOf.every((r) => r.tenant_id === 'tenant_001' && r.payload.id === r.entity_key)).toBe(true);
  });
});
