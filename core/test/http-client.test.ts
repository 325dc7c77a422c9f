import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TributaryError, createConnectorContext, createHttpClient, parseRetryAfter, readRateLimitHeaders, type HttpClient, type RetryPolicy } from '@tributary/core';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Server clock when the request was fully received. */
  at: number;
}

interface TestServer {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** A real HTTP peer on 127.0.0.1:0; `handle` answers each request (index = arrival order). */
async function startServer(handle: (req: Seen, res: ServerResponse, index: number) => void): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      seen.push(entry);
      handle(entry, res, seen.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const TOKEN = 'tok_live_5ecret_value_9f8e7d';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function setup(
  handle: (req: Seen, res: ServerResponse, index: number) => void,
  retry = { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 5 },
): Promise<{ server: TestServer; client: HttpClient; ctx: ReturnType<typeof createConnectorContext> }> {
  const server = await startServer(handle);
  const ctx = createConnectorContext({ retry });
  const client = createHttpClient(ctx, { baseUrl: `${server.url}/v1`, headers: { authorization: `Bearer ${TOKEN}` } });
  cleanups.push(server.close, client.close);
  return { server, client, ctx };
}

/** The TributaryError `promise` rejects with (fails the test if it resolves). */
async function failureOf(promise: Promise<unknown>): Promise<TributaryError> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(outcome).toBeInstanceOf(TributaryError);
  return outcome as TributaryError;
}

function everyText(error: TributaryError): string {
  return JSON.stringify({ message: error.message, user: error.userMessage, internal: error.internalMessage, stack: error.stack, cause: String(error.cause) });
}

describe('createHttpClient', () => {
  it('sends JSON, builds the query under the base path and parses JSON answers', async () => {
    const { server, client } = await setup((req, res) => json(res, 200, { echo: JSON.parse(req.body) as unknown, url: req.url }));
    const response = await client.request<{ echo: unknown; url: string }>({
      method: 'POST',
      path: '/items',
      query: { a: 1, b: ['x', 'y'], skip: undefined, none: null },
      body: { name: 'Ada' },
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ echo: { name: 'Ada' }, url: '/v1/items?a=1&b=x&b=y' });
    expect(response.headers['content-type']).toBe('application/json');
    expect(server.seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(server.seen[0]?.headers['content-type']).toBe('application/json');
  });

  it('rides out a 429 storm: retries and never calls before Retry-After elapsed', async () => {
    const sent429: number[] = [];
    const { server, client, ctx } = await setup((_req, res, index) => {
      if (index < 3) {
        sent429.push(Date.now());
        json(res, 429, { message: 'too many' }, { 'retry-after': '1' });
      } else {
        json(res, 200, { ok: true });
      }
    });
    const pauses: number[] = [];
    ctx.limiter.onPause((until) => pauses.push(until));
    const response = await client.request<{ ok: boolean }>({ method: 'GET', path: '/contacts' });
    expect(response.body).toEqual({ ok: true });
    expect(server.seen).toHaveLength(4);
    for (let i = 1; i < 4; i++) {
      expect(server.seen[i]!.at - sent429[i - 1]!).toBeGreaterThanOrEqual(1000);
    }
    expect(pauses).toHaveLength(3);
  });

  it('a 429 on one call pauses every other call sharing the context', async () => {
    let limitedAt = 0;
    const { server, client, ctx } = await setup((req, res) => {
      if (req.url === '/v1/a' && limitedAt === 0) {
        limitedAt = Date.now();
        json(res, 429, {}, { 'retry-after': '1' });
      } else {
        json(res, 200, { url: req.url });
      }
    });
    const paused = new Promise<void>((resolve) => ctx.limiter.onPause(() => resolve()));
    const a = client.request({ method: 'GET', path: '/a' });
    await paused;
    const b = await client.request<{ url: string }>({ method: 'GET', path: '/b' });
    await a;
    expect(b.body.url).toBe('/v1/b');
    const bSeen = server.seen.find((s) => s.url === '/v1/b');
    expect(bSeen!.at - limitedAt).toBeGreaterThanOrEqual(1000);
  });

  it('takes Retry-After as an HTTP date', async () => {
    let notBefore = 0;
    const { server, client } = await setup((_req, res, index) => {
      if (index === 0) {
        const date = new Date(Date.now() + 2000).toUTCString(); // second precision
        notBefore = Date.parse(date);
        json(res, 429, {}, { 'retry-after': date });
      } else json(res, 200, {});
    });
    await client.request({ method: 'GET', path: '/x' });
    expect(server.seen).toHaveLength(2);
    expect(server.seen[1]!.at).toBeGreaterThanOrEqual(notBefore);
  });

  it('pauses before a 429 when the rate-limit headers say the budget is spent', async () => {
    let exhaustedAt = 0;
    const { server, client } = await setup((_req, res, index) => {
      if (index === 0) {
        exhaustedAt = Date.now();
        json(res, 200, { n: index }, { 'ratelimit-limit': '10', 'ratelimit-remaining': '0', 'ratelimit-reset': '1' });
      } else json(res, 200, { n: index });
    });
    await client.request({ method: 'GET', path: '/x' });
    const second = await client.request<{ n: number }>({ method: 'GET', path: '/x' });
    expect(second.body.n).toBe(1);
    expect(server.seen[1]!.at - exhaustedAt).toBeGreaterThanOrEqual(1000);
  });

  it('maps 401 to auth without retrying and never leaks the Authorization header', async () => {
    const { server, client } = await setup((req, res) => json(res, 401, { error: 'invalid token', got: req.headers.authorization }));
    const error = await failureOf(client.request({ method: 'GET', path: '/me' }));
    expect(error).toBeInstanceOf(TributaryError);
    expect(error.kind).toBe('auth');
    expect(server.seen).toHaveLength(1);
    expect(error.internalMessage).toContain('invalid token');
    expect(everyText(error)).not.toContain(TOKEN);
  });

  it('maps 400/404/409/422 to skippable with the peer body in internalMessage', async () => {
    const statuses = [400, 404, 409, 422];
    const { server, client } = await setup((req, res, index) =>
      json(res, statuses[index] ?? 500, { message: `Property "shoe_size" does not exist (${statuses[index]})`, auth: req.headers.authorization }),
    );
    for (const status of statuses) {
      const error = await failureOf(client.request({ method: 'PATCH', path: '/objects/1', body: { shoe_size: 44 } }));
      expect(error.kind).toBe('skippable');
      expect(error.userMessage).toBe(`PATCH /v1/objects/1 failed (HTTP ${status})`);
      expect(error.internalMessage).toContain(`Property \\"shoe_size\\" does not exist (${status})`);
      expect(everyText(error)).not.toContain(TOKEN);
    }
    expect(server.seen).toHaveLength(4); // none retried
  });

  it('retries a 500 and succeeds', async () => {
    const { server, client } = await setup((_req, res, index) => (index === 0 ? json(res, 500, { error: 'oops' }) : json(res, 200, { fine: true })));
    const response = await client.request({ method: 'GET', path: '/x' });
    expect(response.body).toEqual({ fine: true });
    expect(server.seen).toHaveLength(2);
  });

  it('gives up on persistent 5xx as transient, after maxAttempts requests', async () => {
    const { server, client } = await setup((_req, res) => json(res, 503, { error: 'maintenance' }), { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 });
    const error = await failureOf(client.request({ method: 'GET', path: '/x' }));
    expect(error.kind).toBe('transient');
    expect(error.internalMessage).toContain('maintenance');
    expect(error.internalMessage).toContain('gave up after 3 attempts');
    expect(server.seen).toHaveLength(3);
  });

  it('keeps API keys in the query out of errors', async () => {
    const { client } = await setup((req, res) => json(res, 400, { error: `bad request to ${req.url}` }));
    const error = await failureOf(client
      .request({ method: 'GET', path: '/x', query: { hapikey: 'qs-secret-4242', q: 'visible' } }));
    expect(error.kind).toBe('skippable');
    expect(error.internalMessage).toContain('q=visible');
    expect(everyText(error)).not.toContain('qs-secret-4242');
  });

  it('maps connection failures to transient', async () => {
    const server = await startServer(() => {});
    const url = server.url;
    await server.close();
    const ctx = createConnectorContext({ retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 } });
    const client = createHttpClient(ctx, { baseUrl: url, headers: { authorization: `Bearer ${TOKEN}` } });
    cleanups.push(client.close);
    const error = await failureOf(client.request({ method: 'GET', path: '/x' }));
    expect(error).toBeInstanceOf(TributaryError);
    expect(error.kind).toBe('transient');
    expect(everyText(error)).not.toContain(TOKEN);
  });

  it('times out a slow peer as transient', async () => {
    const server = await startServer((_req, res) => setTimeout(() => json(res, 200, {}), 2000));
    const ctx = createConnectorContext({ retry: { maxAttempts: 1 } });
    const client = createHttpClient(ctx, { baseUrl: server.url, timeoutMs: 100 });
    cleanups.push(server.close, client.close);
    const error = await failureOf(client.request({ method: 'GET', path: '/slow' }));
    expect(error.kind).toBe('transient');
    expect(error.userMessage).toBe('GET /slow timed out after 100 ms');
  });
});

/** Closes the connection without an answer, after the whole request was received. */
function drop(res: ServerResponse): void {
  res.socket?.destroy();
}

describe('createHttpClient: retries and idempotency', () => {
  const retry = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 };

  it('a POST or PATCH whose connection drops after it was sent is sent once, and fails fatal as possibly applied', async () => {
    const { server, client } = await setup((_req, res) => drop(res), retry);
    for (const method of ['POST', 'PATCH'] as const) {
      const error = await failureOf(client.request({ method, path: '/contacts', body: { email: 'ada@example.com' } }));
      expect(server.seen.filter((s) => s.method === method).length, `${method}s received`).toBe(1);
      // Not `transient`: neither ctx.call nor a runtime retrying a writer's batch may repeat it.
      expect(error.kind).toBe('fatal');
      expect(error.retryable).toBe(false);
      // "other side closed" (UND_ERR_SOCKET), or a reset if the close raced the request.
      expect(error.userMessage).toMatch(new RegExp(`^${method} /v1/contacts failed: (UND_ERR_SOCKET|ECONNRESET); it may have been applied, so it was not retried \\(a repeat could apply it twice\\)$`));
      expect(error.internalMessage).toContain('idempotent: true');
      expect(everyText(error)).not.toContain(TOKEN);
    }
    expect(server.seen.map((s) => s.method)).toEqual(['POST', 'PATCH']);
  });

  it('a GET, a PUT or a DELETE whose connection drops is retried', async () => {
    const { server, client } = await setup((_req, res, index) => (index % 2 === 0 ? drop(res) : json(res, 200, { n: index })), retry);
    for (const method of ['GET', 'PUT', 'DELETE'] as const) {
      const response = await client.request<{ n: number }>({ method, path: '/contacts/1', ...(method === 'PUT' ? { body: { email: 'a@example.com' } } : {}) });
      expect(response.status).toBe(200);
    }
    expect(server.seen.map((s) => s.method)).toEqual(['GET', 'GET', 'PUT', 'PUT', 'DELETE', 'DELETE']);
  });

  it('a POST marked idempotent, or carrying an Idempotency-Key, is retried after a drop', async () => {
    const { server, client } = await setup((_req, res, index) => (index % 2 === 0 ? drop(res) : json(res, 200, { ok: true })), retry);
    await client.request({ method: 'POST', path: '/contacts/search', body: { query: 'ada' }, idempotent: true });
    await client.request({ method: 'POST', path: '/payments', body: { amount: 5 }, headers: { 'Idempotency-Key': 'k-1' } });
    expect(server.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'POST /v1/contacts/search',
      'POST /v1/contacts/search',
      'POST /v1/payments',
      'POST /v1/payments',
    ]);
    expect(server.seen[3]?.headers['idempotency-key']).toBe('k-1');
  });

  it('idempotent: false makes a failed GET unknown too: sent once', async () => {
    const { server, client } = await setup((_req, res) => drop(res), retry);
    const error = await failureOf(client.request({ method: 'GET', path: '/queue/pop', idempotent: false }));
    expect(server.seen).toHaveLength(1);
    expect(error.kind).toBe('fatal');
  });

  it('a POST refused before anything was sent (connection refused) is retried', async () => {
    const closed = await startServer(() => {});
    await closed.close();
    const base = createConnectorContext({ retry });
    let attempts = 0;
    const ctx = { ...base, call: <T>(request: (attempt: number) => Promise<T>, policy?: RetryPolicy) => base.call((n) => (attempts++, request(n)), policy) };
    const client = createHttpClient(ctx, { baseUrl: closed.url });
    cleanups.push(client.close);
    const error = await failureOf(client.request({ method: 'POST', path: '/contacts', body: {} }));
    expect(error.kind).toBe('transient');
    expect(error.userMessage).toBe('POST /contacts failed: ECONNREFUSED');
    expect(attempts).toBe(retry.maxAttempts);
  });

  it('a POST answered 429, or 503 with Retry-After, is retried: the server said it did not take it', async () => {
    const answers = [
      (res: ServerResponse) => json(res, 429, { error: 'slow down' }, { 'retry-after': '0' }),
      (res: ServerResponse) => json(res, 503, { error: 'maintenance' }, { 'retry-after': '0' }),
      (res: ServerResponse) => json(res, 408, { error: 'request timeout' }),
      (res: ServerResponse) => json(res, 201, { id: 7 }),
    ];
    const { server, client } = await setup((_req, res, index) => answers[index]!(res), retry);
    const response = await client.request<{ id: number }>({ method: 'POST', path: '/contacts', body: { email: 'ada@example.com' } });
    expect(response.body).toEqual({ id: 7 });
    expect(server.seen).toHaveLength(4);
  });

  it('a POST answered 500, 502, 504 or 503 without Retry-After is not retried; a GET is', async () => {
    for (const status of [500, 502, 503, 504]) {
      const { server, client } = await setup((_req, res) => json(res, status, { error: 'upstream' }), retry);
      const error = await failureOf(client.request({ method: 'POST', path: '/contacts', body: {} }));
      expect(server.seen.length, `POSTs received after HTTP ${status}`).toBe(1);
      expect(error.kind).toBe('fatal');
      expect(error.userMessage).toBe(`POST /v1/contacts failed (HTTP ${status}); it may have been applied, so it was not retried (a repeat could apply it twice)`);
      expect(error.internalMessage).toContain('upstream');
      const read = await failureOf(client.request({ method: 'GET', path: '/contacts' }));
      expect(read.kind).toBe('transient');
      expect(server.seen).toHaveLength(1 + retry.maxAttempts);
    }
  });

  it('a POST whose 2xx answer is cut short or not JSON is not retried (it was applied); a GET is', async () => {
    const { server, client } = await setup((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', ...(req.url === '/v1/cut' ? { 'content-length': '100' } : {}) });
      if (req.url === '/v1/cut') res.write('{"id":');
      else res.end('{"id": 7');
      if (req.url === '/v1/cut') setTimeout(() => drop(res), 10);
    }, retry);
    for (const path of ['/cut', '/garbled']) {
      const error = await failureOf(client.request({ method: 'POST', path, body: {} }));
      expect(server.seen.filter((s) => s.url === `/v1${path}`).length, `POSTs to ${path} received`).toBe(1);
      expect(error.kind, path).toBe('fatal');
      expect(error.userMessage).toContain('it may have been applied');
    }
    const read = await failureOf(client.request({ method: 'GET', path: '/garbled' }));
    expect(read.kind).toBe('transient');
    expect(server.seen).toHaveLength(2 + retry.maxAttempts);
  });
});

describe('rate-limit header parsing', () => {
  const now = 1_700_000_000_000;
  it('reads Retry-After in seconds or as a date', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
  it('reads the X-RateLimit, IETF RateLimit and HubSpot families', () => {
    expect(readRateLimitHeaders({ 'x-ratelimit-remaining': '0', 'x-ratelimit-limit': '5000', 'x-ratelimit-reset': String(now / 1000 + 30) }, now)).toEqual({
      remaining: 0,
      limit: 5000,
      resetInMs: 30_000,
    });
    expect(readRateLimitHeaders({ 'ratelimit-remaining': '7', 'ratelimit-limit': '100, 100;w=60', 'ratelimit-reset': '12' }, now)).toEqual({
      remaining: 7,
      limit: 100,
      resetInMs: 12_000,
    });
    expect(
      readRateLimitHeaders({ 'x-hubspot-ratelimit-remaining': '99', 'x-hubspot-ratelimit-max': '100', 'x-hubspot-ratelimit-interval-milliseconds': '10000' }, now),
    ).toEqual({ remaining: 99, limit: 100, resetInMs: 10_000 });
    expect(readRateLimitHeaders({ 'content-type': 'application/json' }, now)).toBeUndefined();
  });
});
