import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type * as S3 from '@aws-sdk/client-s3';
import { createS3Store } from '../src/storage/s3-store.js';
import { startMoto, type MotoServer } from './helpers.js';

// A data file larger than one part goes up as a multipart upload (S3 takes at most 5 GB in
// one PUT, and Node reads no file over 2 GiB into one buffer: a compaction of a large
// partition failed on every run). Parts are lowered to S3's 5 MiB minimum here.
let moto: MotoServer;
let dir: string;
const bucket = 'lake-multipart';
beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-multipart-'));
});
afterAll(async () => {
  await moto?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('a file larger than one part is uploaded in parts and reads back byte for byte; a smaller one in one PUT', async () => {
  const options = { bucket, prefix: 'lake/', endpoint: moto.endpoint, forcePathStyle: true, region: 'us-east-1', accessKeyId: 'testing', secretAccessKey: 'testing' };
  const partBytes = 5 * 1024 * 1024;
  const store = createS3Store({ ...options, partBytes });
  const sdk = createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof S3;
  const client = new sdk.S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  try {
    const big = randomBytes(2 * partBytes + 12_345);
    const small = randomBytes(1000);
    await writeFile(join(dir, 'big.parquet'), big);
    await writeFile(join(dir, 'small.parquet'), small);
    await store.putFile('data/s/big.parquet', join(dir, 'big.parquet'));
    await store.putFile('data/s/small.parquet', join(dir, 'small.parquet'));
    expect(Buffer.from((await store.get('data/s/big.parquet'))!).equals(big)).toBe(true);
    expect(Buffer.from((await store.get('data/s/small.parquet'))!).equals(small)).toBe(true);
    // A multipart object's ETag ends with its part count.
    const etag = async (key: string) => (await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: `lake/${key}` }))).ETag ?? '';
    expect(await etag('data/s/big.parquet')).toMatch(/-3"?$/);
    expect(await etag('data/s/small.parquet')).not.toMatch(/-\d+"?$/);
    // No upload is left pending.
    expect((await client.send(new sdk.ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual([]);
  } finally {
    client.destroy();
    store.close();
  }
});
