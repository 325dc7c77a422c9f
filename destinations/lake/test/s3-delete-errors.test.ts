import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TributaryError } from '@tributary/core';
import { createS3Store } from '../src/storage/s3-store.js';

// S3's DeleteObjects answers HTTP 200 when keys failed to delete, listing each failure in
// the body (documented; moto never produces it). A local server gives that answer to the
// real AWS SDK: the store must not count those keys as deleted.
let server: Server;
let endpoint: string;
const requests: string[] = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      const keys = [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!);
      // The first key is deleted, every other one is refused.
      const errors = keys
        .slice(1)
        .map((k) => `<Error><Key>${k}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
        .join('');
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${errors}</DeleteResult>`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const store = () => createS3Store({ bucket: 'lake', prefix: 'p/', endpoint, forcePathStyle: true, region: 'us-east-1', accessKeyId: 'k', secretAccessKey: 's' });

it('a DeleteObjects answer listing failed keys rejects with the failure, classified by its code', async () => {
  const error = await store()
    .delete(['data/a.parquet', 'data/b.parquet', 'data/c.parquet'])
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(requests, JSON.stringify(requests)).toContainEqual(expect.stringMatching(/^POST \/lake\/?\?delete/));
  expect(TributaryError.is(error)).toBe(true);
  const e = error as TributaryError;
  expect(e.kind).toBe('auth');
  expect(e.internalMessage).toContain('p/data/b.parquet');
  expect(e.internalMessage).toContain('2 of 3 keys');
});

it('an answer without failures resolves', async () => {
  await expect(store().delete(['data/only.parquet'])).resolves.toBeUndefined();
});
