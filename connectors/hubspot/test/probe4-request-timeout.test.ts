// A HubSpot answer that never comes (a stalled connection: a proxy or load balancer that
// swallowed the request, a half-open socket) must not hang a sync: the request is abandoned
// after `request_timeout_seconds` without a byte and retried, and a stop (SIGTERM) ends a
// read blocked on one. Against the simulator through the real @hubspot/api-client, with a
// real HTTP hop in between that holds chosen requests without answering.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  TributaryError,
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  type ConfiguredAirbyteCatalog,
  type SourceMessage,
} from '@tributary/core';
import { hubspotSource, hubspotWriter } from '../src/index.js';
import { seedHubspot, startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';

/** An HTTP hop to the simulator that never answers the next `stall` requests matching `matches`. */
interface StallingProxy {
  url: string;
  stall(count: number, matches: (method: string, path: string) => boolean): void;
  /** Requests held so far. */
  held: number;
  close(): Promise<void>;
}

async function stallingProxy(target: string): Promise<StallingProxy> {
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  let pending = 0;
  let matcher: (method: string, path: string) => boolean = () => false;
  const proxy: StallingProxy = {
    url: '',
    held: 0,
    stall(count, matches) {
      pending = count;
      matcher = matches;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (pending > 0 && matcher(req.method ?? '', req.url ?? '')) {
      pending--;
      proxy.held++;
      req.resume(); // read the request, never answer it
      return;
    }
    const forwarded = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function setUp(): Promise<{ sim: HubspotSimulator; proxy: StallingProxy }> {
  const sim = await startHubspotSimulator({ searchLagMs: 0 });
  cleanups.push(() => sim.close());
  const proxy = await stallingProxy(sim.url);
  cleanups.push(() => proxy.close());
  return { sim, proxy };
}

async function catalogOf(config: never): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await hubspotSource.discover(createConnectorContext({}), config);
  const stream = discovered.streams.find((s) => s.name === 'contacts')!;
  return { streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append', cursor_field: ['updatedAt'], primary_key: [['id']] }] };
}

async function readIds(config: never, catalog: ConfiguredAirbyteCatalog, signal?: AbortSignal): Promise<{ ids: string[]; error?: unknown }> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 }, ...(signal ? { signal } : {}) });
  const ids: string[] = [];
  try {
    for await (const m of expandRecordPages(hubspotSource.read(ctx, config, catalog, { streams: {} }) as AsyncIterable<SourceMessage>)) {
      if (m.kind === 'record') ids.push(String(m.data.id));
    }
  } catch (error) {
    return { ids, error };
  }
  return { ids };
}

describe('hubspot: a stalled HubSpot answer', () => {
  it('is abandoned after request_timeout_seconds and retried: the read completes with every record once', async () => {
    const { sim, proxy } = await setUp();
    seedHubspot(sim, { contacts: 450 });
    const config = parseConfig(hubspotSource.spec.connectionSpecification, {
      access_token: sim.token,
      base_url: proxy.url,
      object_types: ['contacts'],
      associations: [],
      search_lag_seconds: 0,
      request_timeout_seconds: 1,
    }) as never;
    const catalog = await catalogOf(config);
    // The second search of the read gets no answer at all.
    let searches = 0;
    proxy.stall(1, (method, path) => method === 'POST' && path.endsWith('/search') && ++searches === 2);
    const out = await readIds(config, catalog);
    expect(out.error).toBeUndefined();
    expect(proxy.held).toBe(1);
    expect(new Set(out.ids).size).toBe(out.ids.length);
    expect(out.ids.sort()).toEqual(sim.objects('contacts').map((c) => String(c.id)).sort());
  }, 30_000);

  it('does not keep a stopped read waiting: the stop ends it while a request hangs', async () => {
    const { sim, proxy } = await setUp();
    seedHubspot(sim, { contacts: 50 });
    // The default timeout (60 s) is far away: only the stop can end this wait.
    const config = parseConfig(hubspotSource.spec.connectionSpecification, {
      access_token: sim.token,
      base_url: proxy.url,
      object_types: ['contacts'],
      associations: [],
      search_lag_seconds: 0,
    }) as never;
    const catalog = await catalogOf(config);
    const stop = new AbortController();
    proxy.stall(1, (method, path) => {
      const match = method === 'POST' && path.endsWith('/search');
      if (match) setImmediate(() => stop.abort(new Error('SIGTERM')));
      return match;
    });
    const out = await readIds(config, catalog, stop.signal);
    expect(proxy.held).toBe(1);
    expect(out.error).toBeUndefined();
    expect(out.ids).toEqual([]);
  }, 30_000);

  it('in the writer, is abandoned and answered as a retryable failure instead of hanging the write', async () => {
    const { sim, proxy } = await setUp();
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: proxy.url, request_timeout_seconds: 1 }) as never;
    const session = await hubspotWriter.open(createConnectorContext({}), config);
    try {
      proxy.stall(1, (method, path) => method === 'POST' && path.endsWith('/batch/upsert'));
      const outcome = await session
        .write({ object: 'contacts', idProperty: 'email', mode: 'upsert', dryRun: false, records: [{ idempotencyKey: 'k1', key: 'a@example.com', fields: { firstname: 'A' } }] })
        .then(
          (results) => ({ results }),
          (error: unknown) => ({ error }),
        );
      expect(proxy.held).toBe(1);
      // The runtime retries a transient write (the writer reads before it upserts: idempotent).
      expect('error' in outcome).toBe(true);
      const error = (outcome as { error: unknown }).error;
      expect(TributaryError.is(error, 'transient')).toBe(true);
      expect((error as TributaryError).userMessage).toMatch(/batch\/upsert timed out: HubSpot sent no answer within request_timeout_seconds/);
    } finally {
      await session.close();
    }
  }, 30_000);
});
