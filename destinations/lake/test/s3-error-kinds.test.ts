import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TributaryError } from '@tributary/core';
import { createS3Store } from '../src/storage/s3-store.js';

// How S3 failures reach the runtime: `transient` and `rate_limited` are retried, `auth` and
// `config` fail the sync at once and ask the user to act. A local server gives the real AWS
// SDK S3's documented error answers (moto does not check credentials or regions).
let server: Server;
let endpoint: string;
let answer = { status: 500, code: 'InternalError' };
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(answer.status, { 'content-type': 'application/xml' });
      // HEAD answers carry no body (as S3's): the SDK then knows the status only.
      res.end(req.method === 'HEAD' ? undefined : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.code}</Code><Message>refused</Message></Error>`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  if (server) await new Promise<void>((r) => server.close(() => r()));
});

const kindOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'ok',
    (error: unknown) => (TributaryError.is(error) ? error.kind : `untyped ${String(error)}`),
  );

it('expired or invalid session tokens are auth errors and a wrong region or endpoint a config error, not transient ones to retry', async () => {
  const store = createS3Store({ bucket: 'lake', endpoint, forcePathStyle: true, accessKeyId: 'a', secretAccessKey: 's', sessionToken: 't' });
  try {
    const kinds: Record<string, string> = {};
    for (const [status, code] of [
      [400, 'ExpiredToken'],
      [400, 'InvalidToken'],
      [400, 'AuthorizationHeaderMalformed'],
      [301, 'PermanentRedirect'],
      [500, 'InternalError'],
      [503, 'SlowDown'],
    ] as const) {
      answer = { status, code };
      kinds[code] = await kindOf(store.put('k', 'x'));
    }
    expect(kinds).toEqual({ ExpiredToken: 'auth', InvalidToken: 'auth', AuthorizationHeaderMalformed: 'config', PermanentRedirect: 'config', InternalError: 'transient', SlowDown: 'rate_limited' });
  } finally {
    store.close();
  }
});

it('no credentials anywhere (no config, no environment, no profile, no instance role) is an auth error', async () => {
  const saved = { ...process.env };
  for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
  Object.assign(process.env, { AWS_EC2_METADATA_DISABLED: 'true', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials', AWS_CONFIG_FILE: '/nonexistent/config' });
  const store = createS3Store({ bucket: 'lake', endpoint, forcePathStyle: true });
  try {
    answer = { status: 500, code: 'InternalError' };
    expect(await kindOf(store.put('k', 'x'))).toBe('auth');
  } finally {
    store.close();
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  }
});

it('check: throttling and 5xx stay retryable; a missing bucket (bare 404) and a refused request (400) are config errors', async () => {
  const store = createS3Store({ bucket: 'lake', endpoint, forcePathStyle: true, accessKeyId: 'a', secretAccessKey: 's' });
  try {
    const kinds: Record<number, string> = {};
    for (const status of [503, 500, 404, 400, 403]) {
      answer = { status, code: '' };
      kinds[status] = await kindOf(store.check());
    }
    expect(kinds).toEqual({ 503: 'rate_limited', 500: 'transient', 404: 'config', 400: 'config', 403: 'auth' });
  } finally {
    store.close();
  }
});
