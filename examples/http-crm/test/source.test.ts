import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  TributaryError,
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  toErrorTrace,
  type RecordData,
  type StateBlob,
  type SyncState,
} from '@tributary/core';
import { SIMULATOR_REQUESTS_PER_SECOND, startSimulator, type CrmSimulator, type SimulatorOptions } from '../src/simulator.js';
import { httpCrmSource } from '../src/source.js';
import { httpCrmWriter } from '../src/writer.js';
import { configFor, contactsCatalog, readMessages, recordsOf, syncHarness } from './support/memory.js';

const running: CrmSimulator[] = [];
async function simulator(options: SimulatorOptions): Promise<CrmSimulator> {
  const started = await startSimulator(options);
  running.push(started);
  return started;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const ids = (records: readonly RecordData[]): number[] => records.map((r) => Number(r.id));

describe('http-crm source', () => {
  it('declares the rate limit the API documents', () => {
    expect(httpCrmSource.rateLimit).toEqual({ requests: SIMULATOR_REQUESTS_PER_SECOND, perMs: 1000 });
    expect(httpCrmWriter.rateLimit.requests).toBe(SIMULATOR_REQUESTS_PER_SECOND);
  });

  it('ties on updated_at across page boundaries: resuming from every checkpoint misses and repeats nothing', async () => {
    const crm = await simulator({ contacts: 45, sameUpdatedAt: 8 });
    const config = parseConfig(httpCrmSource.spec.connectionSpecification, configFor(crm, { page_size: 5 }));
    const catalog = await contactsCatalog();
    // Each run reads one page, stops at its checkpoint (as a crash right after a commit
    // would), and the next run resumes from that checkpoint.
    let state: SyncState = { streams: {} };
    const read: RecordData[] = [];
    const checkpoints: StateBlob[] = [];
    for (let run = 0; run < 50; run++) {
      const ctx = createConnectorContext({ rateLimit: { requests: SIMULATOR_REQUESTS_PER_SECOND, perMs: 1000 } });
      let records = 0;
      for await (const message of expandRecordPages(httpCrmSource.read(ctx, config, catalog, structuredClone(state)))) {
        if (message.kind === 'record') {
          read.push(message.data);
          records++;
        }
        if (message.kind === 'checkpoint') {
          checkpoints.push(message.state);
          state = { streams: { contacts: message.state } };
          break;
        }
      }
      if (records === 0) break;
    }
    expect(ids(read)).toEqual(crm.contacts().map((c) => c.id));
    // The case is only meaningful if checkpoints fell inside groups of equal updated_at.
    const all = crm.contacts();
    const splitTies = checkpoints.filter((cp) => {
      const next = all.findIndex((c) => c.id === cp.id) + 1;
      return next > 0 && next < all.length && all[next]!.updated_at === cp.cursor;
    });
    expect(splitTies.length).toBeGreaterThanOrEqual(3);
  });

  it('stays within the budget on its own: a 30-page read draws no 429', async () => {
    const crm = await simulator({ contacts: 60 });
    const records = recordsOf(await readMessages(configFor(crm, { page_size: 2 })));
    expect(records).toHaveLength(60);
    expect(crm.stats.requests).toBe(30);
    expect(crm.stats.byStatus[429]).toBeUndefined();
  });

  it('a 429 storm mid-read: completes, reports RATE_LIMITED, and never calls before Retry-After elapsed', async () => {
    const crm = await simulator({ contacts: 30 });
    const stop = crm.onServed((request) => {
      if (request.status === 200) {
        stop();
        crm.throttle(3);
      }
    });
    const harness = await syncHarness(crm, { page_size: 10 });
    const result = await harness.sync();
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect([...harness.table.rows.keys()].map(Number).sort((a, b) => a - b)).toEqual(crm.contacts().map((c) => c.id).sort((a, b) => a - b));
    expect(crm.stats.byStatus[429]).toBe(3);
    expect(crm.stats.ignoredRetryAfter).toBe(0);
    const rateLimited = harness.events.filter((e) => e.type === 'status' && e.reasons?.some((r) => r.type === 'RATE_LIMITED'));
    expect(rateLimited.length).toBeGreaterThanOrEqual(1);
  });

  it('occasional 503s are retried by the client: every contact exactly once', async () => {
    const crm = await simulator({ contacts: 30, unavailableEvery: 3 });
    const records = recordsOf(await readMessages(configFor(crm, { page_size: 5 })));
    expect(ids(records)).toEqual(crm.contacts().map((c) => c.id));
    expect(crm.stats.byStatus[503]).toBeGreaterThanOrEqual(2);
  });

  it('a bad token is an auth error (config_error), not retried, and never echoed', async () => {
    const crm = await simulator({ contacts: 3 });
    const bad = configFor(crm, { api_token: 'wrong-token-0123' });
    const config = parseConfig(httpCrmSource.spec.connectionSpecification, bad);
    const checked = await httpCrmSource.check(createConnectorContext(), config).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(TributaryError.is(checked, 'auth')).toBe(true);
    expect(toErrorTrace(checked).failure_type).toBe('config_error');
    expect(JSON.stringify(toErrorTrace(checked))).not.toContain('wrong-token-0123');

    const harness = await syncHarness(crm, { api_token: 'wrong-token-0123' });
    const result = await harness.sync();
    expect(result.outcome).toBe('failed');
    expect(result.error?.kind).toBe('auth');
    expect(crm.stats.byStatus[401]).toBe(2);
    expect(crm.stats.requests).toBe(2);
  });

  it('writes during a sync: those behind the reader are picked up by the next incremental run', async () => {
    const crm = await simulator({ contacts: 20 });
    // After every page the API serves, someone edits a contact already read and adds one.
    let writes = 0;
    let lastWrite: string[] = [];
    const stop = crm.onServed((request) => {
      if (request.method !== 'GET' || request.status !== 200) return;
      writes++;
      lastWrite = ['contact1@example.com', `new${writes}@example.com`];
      crm.upsert([
        { email: 'contact1@example.com', properties: { first_name: `Renamed ${writes}` } },
        { email: `new${writes}@example.com`, properties: { first_name: 'New' } },
      ]);
    });
    const harness = await syncHarness(crm, { page_size: 5 });
    const first = await harness.sync();
    stop();
    expect(first.outcome).toBe('completed');
    // The writes made after the first sync fetched its last page are exactly what the next
    // run reads (earlier ones landed ahead of the reader and were read in the first run).
    const second = await harness.sync();
    expect(second.outcome).toBe('completed');
    expect(harness.table.received[1]!.map((r) => r.email).sort()).toEqual([...lastWrite].sort());
    expect(harness.table.received[1]!.find((r) => r.email === 'contact1@example.com')?.first_name).toBe(`Renamed ${writes}`);
    const third = await harness.sync();
    expect(harness.table.received[2]).toEqual([]);
    expect(third.outcome).toBe('completed');
    // The destination now mirrors the API, row for row.
    expect([...harness.table.rows.values()].sort((a, b) => Number(a.id) - Number(b.id))).toEqual(
      [...crm.contacts()].sort((a, b) => a.id - b.id),
    );
  });

  it('stopping during a Retry-After wait ends the sync interrupted, and the next run reads exactly the rest', async () => {
    const crm = await simulator({ contacts: 30 });
    const controller = new AbortController();
    let pages = 0;
    const stop = crm.onServed((request) => {
      if (request.status === 200 && ++pages === 2) crm.throttle(1);
      if (request.status === 429) {
        stop();
        controller.abort();
      }
    });
    const harness = await syncHarness(crm, { page_size: 5 });
    const first = await harness.sync({ signal: controller.signal });
    expect(first.outcome).toBe('interrupted');
    expect(first.error).toBeUndefined();
    expect(harness.table.received[0]).toHaveLength(10);
    const second = await harness.sync();
    expect(second.outcome).toBe('completed');
    expect(harness.table.received[1]).toHaveLength(20);
    expect(harness.table.rows.size).toBe(30);
  });

  it('an incremental sync after an interrupted full refresh starts over: no record is skipped', async () => {
    const crm = await simulator({ contacts: 30 });
    const all = crm.contacts().map((c) => c.id).sort((a, b) => a - b);
    // A full refresh stopped after its second page: its checkpoint is saved, its generation
    // staged but never published (the destination replaces its rows only when one completes).
    const controller = new AbortController();
    let pages = 0;
    const stop = crm.onServed((request) => {
      if (request.status === 200 && ++pages === 2) {
        stop();
        controller.abort();
      }
    });
    const harness = await syncHarness(crm, { page_size: 5 });
    const refresh = await harness.sync({ syncMode: 'full_refresh', signal: controller.signal });
    expect(refresh.outcome).toBe('interrupted');
    expect(refresh.state.streams.contacts).toMatchObject({ full_refresh: true, cursor: expect.any(String) });
    expect(harness.table.rows.size).toBe(0);
    // The stream is then synced incrementally: the refresh's position is no cursor for it.
    const incremental = await harness.sync();
    expect(incremental.outcome, incremental.error?.userMessage).toBe('completed');
    expect([...harness.table.rows.keys()].map(Number).sort((a, b) => a - b)).toEqual(all);
    expect(harness.table.received[1]).toHaveLength(30);
    expect(incremental.state.streams.contacts?.full_refresh).toBeUndefined();
    const warnings = harness.events.filter((e) => e.type === 'log' && e.level === 'WARN').map((e) => (e.type === 'log' ? e.message : ''));
    expect(warnings).toContainEqual(expect.stringContaining('a full refresh that did not complete'));
  });

  it('a page token the API already returned ends the read with a fatal error instead of paging forever', async () => {
    // An API that answers every request with an empty page pointing at the same token: no
    // record ever comes back, so only the token itself can reveal the loop.
    const controller = new AbortController();
    let requests = 0;
    const server = createServer((_req, res) => {
      // Guard for the test itself: without the check the source would never stop.
      if (++requests === 25) controller.abort();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: [], next: 'same-token' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const read = readMessages({ base_url: `http://127.0.0.1:${port}`, api_token: 'any-token-1234' }, { streams: {} }, controller.signal);
      const error = await read.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(TributaryError.is(error, 'fatal'), String(error)).toBe(true);
      expect(requests).toBe(2);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
