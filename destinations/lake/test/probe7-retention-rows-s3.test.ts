import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, type RecordData } from '@tributary/core';
import { applyRetention, lakeConfigSchema, loadLakeState, openStore, readStreamRows, type LakeFile } from '../src/index.js';
import { duckQuery, keyedStream, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

// Row-level retention on S3 (moto): a tenant's file holding rows on both sides of the cutoff
// is replaced by a file of its later rows (see probe7-retention-rows-local for the cases).
let moto: MotoServer;
let dir: string;
const bucket = 'retention-rows';
beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-probe7-rr-s3-'));
});
afterAll(async () => {
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const stream = keyedStream('orders', { amount: { type: 'integer' }, at: { type: 'string', format: 'date-time' } });
const order = (id: number, at: string, tenant: string): RecordData => ({ id, tenant_id: tenant, customer_id: `c${id}`, amount: 4_000_000_000_000 + id, at });
const days = ['2024-01-01T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-03T10:00:00Z', '2024-01-04T10:00:00Z'];

it('on S3: the straddling file of the run\'s tenant is rewritten without its expired rows; the other tenant\'s stays', async () => {
  const config = motoLakeConfig(moto.endpoint, bucket, { partitioning: 'tenant', streams: { orders: { event_time_field: 'at' } } });
  await writeSession(config, stream, [[...days.map((at, i) => order(i + 1, at, 't1')), ...days.map((at, i) => order(i + 11, at, 't2'))]]);
  const store = openStore(parseConfig(lakeConfigSchema, config));
  try {
    const files = async (): Promise<LakeFile[]> => [...(await loadLakeState(store)).files.values()].sort((a, b) => a.tenant.localeCompare(b.tenant));
    /** The independent reader: DuckDB over local copies of the objects the log names. */
    const duckRows = async (): Promise<Record<string, unknown>[]> => {
      const locals: string[] = [];
      for (const [i, f] of (await files()).entries()) {
        const local = join(dir, `${Date.now()}-${i}.parquet`);
        await writeFile(local, (await store.get(f.path))!);
        locals.push(`'${local}'`);
      }
      return duckQuery(`SELECT COLUMNS(*)::VARCHAR FROM read_parquet([${locals.join(', ')}], hive_partitioning = false) ORDER BY id::BIGINT`);
    };
    const [t1, t2] = await files();
    const before = await duckRows();

    const result = await applyRetention(config, { before: '2024-01-03T00:00:00Z', tenant: 't1', graceMs: 0 });
    expect((await readStreamRows(config, { stream: 'orders' })).map((r) => Number(r.payload.id)).sort((a, b) => a - b)).toEqual([3, 4, 11, 12, 13, 14]);
    expect(result).toMatchObject({ filesRemoved: 0, filesRewritten: 1, rowsRemoved: 2 });
    expect(await duckRows()).toEqual(before.filter((r) => Number(r.id) >= 3));
    const [r1, r2] = await files();
    expect(r2).toEqual(t2);
    expect(r1).toMatchObject({ tenant: 't1', partition: t1!.partition, rows: 2 });
    expect(r1!.path.slice(0, r1!.path.lastIndexOf('/'))).toBe(t1!.path.slice(0, t1!.path.lastIndexOf('/')));
    // The replaced object stays for the grace period (0 here): the next run deletes it.
    expect(await store.get(t1!.path)).toBeDefined();
    expect(await applyRetention(config, { before: '2024-01-03T00:00:00Z', tenant: 't1', graceMs: 0 })).toMatchObject({ filesDeleted: 1, filesRewritten: 0, rowsRemoved: 0 });
    expect(await store.get(t1!.path)).toBeUndefined();
    // No lease of the rewrite is left behind.
    expect(await store.list('_tributary/leases/')).toEqual([]);
  } finally {
    store.close();
  }
});
