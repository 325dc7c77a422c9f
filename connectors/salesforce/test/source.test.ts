import { createServer, request as httpRequest } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { TributaryError, createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { salesforceSource, type SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, passwordCredentials, readAll, sync, useOrgs } from './helpers.js';

const org = useOrgs();

const ids = (records: RecordData[]): string[] => records.map((r) => String(r.Id));

/** response_idle_timeout_ms of the stalled-answer tests: small, so that a stall costs little time. */
const STALL_TIMEOUT_MS = 500;

describe('salesforce source: order, ties and resume', () => {
  it('resumes from a checkpoint inside a SystemModstamp tie: the rest of the tie exactly once', async () => {
    const sim = await org({ records: { Account: 60 }, tieGroup: 9, queryPageSize: 4 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const full = await readAll(config, catalog);
    expect(full.records).toHaveLength(60);
    // Checkpoints whose next record shares their SystemModstamp: a page ended inside a tie.
    const insideTies = full.checkpoints.filter(
      (c) => c.after > 0 && c.after < full.records.length && full.records[c.after - 1]!.SystemModstamp === full.records[c.after]!.SystemModstamp,
    );
    expect(insideTies.length).toBeGreaterThan(3);
    for (const c of insideTies) {
      const resumed = await readAll(config, catalog, c.state);
      expect(ids(resumed.records)).toEqual(ids(full.records.slice(c.after)));
    }
  });

  it('falls back to LastModifiedDate where SystemModstamp is not filterable (Opportunity)', async () => {
    const sim = await org({ records: { Opportunity: 25 }, tieGroup: 4, queryPageSize: 6 });
    const config = { ...credentials(sim), bulk: 'never', streams: ['Opportunity', 'Account'] };
    const catalog = await catalogOf(config, ['Opportunity']);
    expect(catalog.streams[0]!.cursor_field).toEqual(['LastModifiedDate']);
    const full = await readAll(config, catalog);
    expect(full.records).toHaveLength(25);
    const middle = full.checkpoints[2]!;
    const resumed = await readAll(config, catalog, middle.state);
    expect(ids(resumed.records)).toEqual(ids(full.records.slice(middle.after)));
  });

  it('names unknown objects of the streams list as a config error', async () => {
    const sim = await org({});
    const config = parseConfig(salesforceSource.spec.connectionSpecification, { ...credentials(sim), streams: ['Account', 'Invoice__c'] });
    const error = await salesforceSource.discover(createConnectorContext({}), config).catch((e: unknown) => e);
    expect(TributaryError.is(error, 'config')).toBe(true);
    expect((error as TributaryError).userMessage).toMatch(/Invoice__c/);
  });

  it('maps describe types to JSON Schema, compound fields included, and records validate', async () => {
    const sim = await org({ records: { Account: 5 } });
    const config = credentials(sim);
    const discovered = await salesforceSource.discover(createConnectorContext({}), parseConfig(salesforceSource.spec.connectionSpecification, config));
    const account = discovered.streams.find((s) => s.name === 'Account')!;
    const properties = account.json_schema.properties as Record<string, Record<string, unknown>>;
    expect(properties.Id).toEqual({ type: ['string', 'null'] });
    expect(properties.IsDeleted).toEqual({ type: 'boolean' });
    expect(properties.NumberOfEmployees).toEqual({ type: ['integer', 'null'] });
    expect(properties.AnnualRevenue).toEqual({ type: ['number', 'null'] });
    expect(properties.Health_Score__c).toEqual({ type: ['number', 'null'] });
    expect(properties.Renewal_Date__c).toEqual({ type: ['string', 'null'], format: 'date' });
    expect(properties.SystemModstamp).toEqual({ type: ['string', 'null'], format: 'date-time' });
    expect(properties.Tier__c).toEqual({ type: ['string', 'null'] });
    expect(properties.BillingAddress!.type).toEqual(['object', 'null']);
    expect(Object.keys(properties.BillingAddress!.properties as object)).toEqual(expect.arrayContaining(['street', 'city', 'postalCode', 'latitude', 'geocodeAccuracy']));
    expect(properties.HQ__c).toEqual({ type: ['object', 'null'], properties: { latitude: { type: ['number', 'null'] }, longitude: { type: ['number', 'null'] } } });
    expect(account.default_cursor_field).toEqual(['SystemModstamp']);
    expect(account.source_defined_primary_key).toEqual([['Id']]);

    const { records } = await readAll({ ...config, bulk: 'never' }, await catalogOf(config, ['Account']));
    const stored = sim.records('Account');
    const withAddress = records.find((r) => r.BillingCity !== null && r.BillingStreet !== null)!;
    const row = stored.find((r) => r.Id === withAddress.Id)!;
    expect(withAddress.BillingAddress).toMatchObject({ street: row.BillingStreet, city: row.BillingCity, latitude: row.BillingLatitude });
    expect(withAddress.SystemModstamp).toBe(row.SystemModstamp);
    expect(withAddress.SystemModstamp).toMatch(/Z$/);
  });
});

describe('salesforce source: late commits and deletions', () => {
  it('reads a row committed behind the cursor on the next sync, thanks to the look-back window', async () => {
    for (const lookback of [300, 0]) {
      const sim = await org({ records: { Account: 20 }, queryPageSize: 7 });
      const now = Date.now();
      // Committed before the sync's query (rows stamped in its own second do not move the position).
      sim.insert('Account', Array.from({ length: 10 }, (_, i) => ({ Name: `Fresh ${i}`, External_Id__c: `fresh-${i}` })), { stamp: now - 5_000 });
      const config = { ...credentials(sim), bulk: 'never', lookback_seconds: lookback, hard_deletes: false };
      const catalog = await catalogOf(config, ['Account']);
      const target = memoryTarget();
      const store = memoryStateStore();
      expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
      expect(target.rows.get('Account')!.size).toBe(30);
      // A long transaction commits now, stamped 30 s ago: behind the position already read.
      const [late] = sim.insert('Account', [{ Name: `Late ${lookback}`, External_Id__c: `late-${lookback}` }], { stamp: now - 30_000 });
      expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
      // With a look-back the late row arrives; without one it is lost — the reason for the window.
      expect(target.rows.get('Account')!.has(late!)).toBe(lookback > 0);
    }
  });

  it('emits soft deletes through queryAll and hard deletes through the deleted endpoint', async () => {
    const sim = await org({ records: { Account: 12 }, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const [softId, hardId, binnedThenPurgedId] = sim.records('Account').map((r) => String(r.Id));
    sim.softDelete('Account', [softId!]);
    sim.purge('Account', [hardId!]);
    sim.softDelete('Account', [binnedThenPurgedId!]);
    sim.purge('Account', [binnedThenPurgedId!]);
    const before = target.received.get('Account')!.length;
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const rows = target.rows.get('Account')!;
    expect(rows.get(softId!)).toMatchObject({ Id: softId, IsDeleted: true, Name: expect.any(String) });
    expect(rows.get(hardId!)).toMatchObject({ Id: hardId, IsDeleted: true });
    expect(rows.get(binnedThenPurgedId!)).toMatchObject({ Id: binnedThenPurgedId, IsDeleted: true });
    const second = target.received.get('Account')!.slice(before);
    // Each deletion arrives once: the soft one as a row, the purged ones as tombstones.
    expect(second.filter((r) => r.IsDeleted === true).map((r) => r.Id).sort()).toEqual([softId, hardId, binnedThenPurgedId].sort());
    // A full refresh (query, not queryAll) does not return deleted rows.
    const fullCatalog = await catalogOf(config, ['Account'], 'full_refresh');
    const full = await readAll(config, fullCatalog);
    expect(ids(full.records)).not.toContain(softId);
    expect(full.records).toHaveLength(9);
  });

  // A record deleted while a sync pages came back live (or not at all), but the deleted
  // endpoint of that same sync already lists it: it must still be reported once purged.
  const firstByModstamp = (sim: SalesforceSimulator): string =>
    String([...sim.records('Account')].sort((a, b) => String(a.SystemModstamp).localeCompare(String(b.SystemModstamp)) || String(a.Id).localeCompare(String(b.Id)))[0]!.Id);
  const onSecondPage = (sim: SalesforceSimulator, action: () => void): (() => void) => {
    let pages = 0;
    return sim.onRequest((r) => {
      if (r.path.includes('/query') && r.status === 200 && (r.rows ?? 0) > 0 && ++pages === 2) action();
    });
  };

  it('a record hard-deleted while the first sync pages (after it was read) is reported deleted by the next sync', async () => {
    const sim = await org({ records: { Account: 60 }, queryPageSize: 10, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    const victim = firstByModstamp(sim);
    const stop = onSecondPage(sim, () => sim.purge('Account', [victim]));
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    stop();
    expect(target.rows.get('Account')!.get(victim)).toMatchObject({ Id: victim, IsDeleted: false });
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    expect(target.rows.get('Account')!.get(victim)).toMatchObject({ Id: victim, IsDeleted: true });
  });

  it('a record moved to the recycle bin while a sync pages, then purged before the next sync, is reported deleted', async () => {
    const sim = await org({ records: { Account: 60 }, queryPageSize: 10, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    // Changes enough for the second sync to page; the victim is not among them.
    for (const id of sim.records('Account').map((r) => String(r.Id)).slice(0, 30)) sim.update('Account', id, { Name: `Changed ${id}` });
    const victim = firstByModstamp(sim);
    const stop = onSecondPage(sim, () => sim.softDelete('Account', [victim]));
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    stop();
    sim.purge('Account', [victim]);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    expect(target.rows.get('Account')!.get(victim)).toMatchObject({ Id: victim, IsDeleted: true });
  });

  it('a row updated while a sync pages, before its page is read, arrives with its new value and the sync completes', async () => {
    const sim = await org({ records: { Account: 60 }, queryPageSize: 10, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    // On the fourth page by (SystemModstamp, Id); changed while the second page is read, so its
    // new SystemModstamp is later than the rows served after it.
    const middle = [...sim.records('Account')].sort((a, b) => String(a.SystemModstamp).localeCompare(String(b.SystemModstamp)) || String(a.Id).localeCompare(String(b.Id)))[35]!;
    const victim = String(middle.Id);
    const stop = onSecondPage(sim, () => sim.update('Account', victim, { Name: 'Changed while paging' }));
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    stop();
    const rows = target.rows.get('Account')!;
    expect(rows.size).toBe(60);
    expect(rows.get(victim)).toMatchObject({ Name: 'Changed while paging' });
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    expect(rows.size).toBe(60);
    expect(rows.get(victim)).toMatchObject({ Name: 'Changed while paging' });
  });

  it('after more than 15 days without a sync, reads the deletions Salesforce still keeps and warns', async () => {
    const sim = await org({ records: { Account: 6 }, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const first = await readAll(config, catalog);
    const stale = JSON.parse(JSON.stringify(first.state)) as typeof first.state;
    stale.streams.Account = { ...stale.streams.Account, deleted_through: new Date(Date.now() - 20 * 86_400_000).toISOString() };
    const [purged] = sim.records('Account').map((r) => String(r.Id));
    sim.purge('Account', [purged!]);
    const second = await readAll(config, catalog, stale);
    expect(second.records).toEqual([expect.objectContaining({ Id: purged, IsDeleted: true })]);
    // Read up to the present; the next sync starts again at this read's horizon (now − the 300 s look-back).
    expect(second.state.streams.Account!.deleted_through).toBe(second.state.streams.Account!.horizon);
    expect(Date.parse(String(second.state.streams.Account!.deleted_through))).toBeGreaterThan(Date.now() - 300_000 - 60_000);
  });
});

describe('salesforce source: Bulk API 2.0', () => {
  it('pages CSV results by Sforce-Locator and yields the same records as REST, checkpoint per page', async () => {
    const sim = await org({ records: { Account: 130 }, tieGroup: 6, queryPageSize: 50 });
    const results: number[] = [];
    sim.onRequest((r) => {
      if (r.path.endsWith('/results')) results.push(r.rows ?? -1);
    });
    const base = { ...credentials(sim), bulk_poll_interval_ms: 0, hard_deletes: false };
    const catalog = await catalogOf(base, ['Account']);
    const rest = await readAll({ ...base, bulk: 'never' }, catalog);
    const bulk = await readAll({ ...base, bulk: 'always', bulk_page_size: 25 }, catalog);
    expect(results).toEqual([25, 25, 25, 25, 25, 5]);
    expect(bulk.records).toEqual(rest.records);
    expect(bulk.records.some((r) => String(r.Tier__c).includes(';'))).toBe(true);
    expect(bulk.checkpoints.length).toBeGreaterThanOrEqual(6);
    const middle = bulk.checkpoints[2]!;
    const resumed = await readAll({ ...base, bulk: 'always', bulk_page_size: 25 }, catalog, middle.state);
    expect(ids(resumed.records)).toEqual(ids(bulk.records.slice(middle.after)));
  });

  it('refuses a results page cut short (fewer rows than Sforce-NumberOfRecords) and fetches it again', async () => {
    const sim = await org({ records: { Account: 60 }, tieGroup: 4 });
    const base = { ...credentials(sim), bulk_poll_interval_ms: 0, hard_deletes: false };
    const catalog = await catalogOf(base, ['Account']);
    const rest = await readAll({ ...base, bulk: 'never' }, catalog);
    let served = 0;
    sim.onRequest((r) => {
      if (r.path.endsWith('/results') && ++served === 1) sim.cutNextBulkPage();
    });
    const warnings: string[] = [];
    const bulk = await readAll({ ...base, bulk: 'always', bulk_page_size: 25 }, catalog, undefined, warnings);
    expect(ids(bulk.records)).toEqual(ids(rest.records));
    expect(warnings.some((w) => /cut short \(24 of 25 rows\)/.test(w))).toBe(true);
  });

  it('auto mode picks Bulk from bulk_threshold rows to read', async () => {
    const sim = await org({ records: { Account: 40 } });
    let jobs = 0;
    sim.onRequest((r) => {
      if (r.method === 'POST' && r.path.endsWith('/jobs/query')) jobs++;
    });
    const base = { ...credentials(sim), bulk_poll_interval_ms: 0, hard_deletes: false };
    const catalog = await catalogOf(base, ['Account']);
    await readAll({ ...base, bulk: 'auto', bulk_threshold: 41 }, catalog);
    expect(jobs).toBe(0);
    await readAll({ ...base, bulk: 'auto', bulk_threshold: 40 }, catalog);
    expect(jobs).toBe(1);
  });
});

describe('salesforce source: sessions, limits and failures', () => {
  for (const [flow, creds] of [
    ['refresh token', credentials],
    ['username-password', passwordCredentials],
  ] as const) {
    it(`renews an access token that expires mid-sync (${flow} flow) and reads every row once`, async () => {
      const sim = await org({ records: { Account: 50 }, queryPageSize: 10 });
      let pages = 0;
      sim.onRequest((r) => {
        if (r.path.includes('/query') && r.status === 200 && ++pages === 2) sim.expireTokens();
      });
      const config = { ...creds(sim), bulk: 'never', hard_deletes: false };
      const catalog = await catalogOf(config, ['Account']);
      const tokensBefore = sim.stats.tokenRequests;
      const { records } = await readAll(config, catalog);
      expect(new Set(ids(records)).size).toBe(50);
      expect(records).toHaveLength(50);
      expect(sim.stats.byStatus[401]).toBe(1);
      expect(sim.stats.tokenRequests - tokensBefore).toBe(2);
    });
  }

  for (const [failure, inject] of [
    ['a 503 HTML page', (sim: SalesforceSimulator) => sim.failNextTokenRequests(1, 503)],
    ['an answer cut short', (sim: SalesforceSimulator) => sim.dropNextAnswer(1, '/services/oauth2/token')],
    ['an answer that stalls', (sim: SalesforceSimulator) => sim.stallNextAnswer(1, '/services/oauth2/token')],
  ] as const) {
    it(`retries a token refresh that fails with ${failure} mid-sync instead of failing as auth: every row once`, async () => {
      const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
      const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, response_idle_timeout_ms: STALL_TIMEOUT_MS };
      const catalog = await catalogOf(config, ['Account']);
      const expected = ids((await readAll(config, catalog)).records);
      let pages = 0;
      const stop = sim.onRequest((r) => {
        if (r.path.includes('/query') && r.status === 200 && ++pages === 1) {
          sim.expireTokens();
          inject(sim);
        }
      });
      const tokensBefore = sim.stats.tokenRequests;
      const { records } = await readAll(config, catalog);
      stop();
      expect(ids(records)).toEqual(expected);
      // The first sync's token, the failed refresh, and the refresh that worked.
      expect(sim.stats.tokenRequests - tokensBefore).toBe(3);
      await vi.waitFor(() => expect(sim.openStalledAnswers).toBe(0));
    }, 30_000);
  }

  it('retries the first token request of a sync when the login server answers a 503 HTML page', async () => {
    const sim = await org({ records: { Account: 12 } });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    sim.failNextTokenRequests(1, 503);
    const tokensBefore = sim.stats.tokenRequests;
    const { records } = await readAll(config, catalog);
    expect(records).toHaveLength(12);
    expect(sim.stats.tokenRequests - tokensBefore).toBe(2);
  });

  it('reports auth, without looping, when freshly issued tokens are refused too', async () => {
    const sim = await org({ records: { Account: 5 }, tokenTtlMs: 0 });
    const config = credentials(sim);
    const error = await salesforceSource.check(createConnectorContext({}), parseConfig(salesforceSource.spec.connectionSpecification, config)).catch((e: unknown) => e);
    expect(TributaryError.is(error, 'auth')).toBe(true);
    expect(sim.stats.tokenRequests).toBeLessThanOrEqual(4);
  });

  it('stops cleanly at max_api_usage with its state saved, then resumes: every row exactly once', async () => {
    const sim = await org({ records: { Account: 300 }, tieGroup: 7, queryPageSize: 20, dailyApiLimit: 20 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, max_api_usage: 0.5 };
    const catalog = await catalogOf(config, ['Account']);
    sim.setApiUsage(0);
    const target = memoryTarget();
    const store = memoryStateStore();
    const first = await sync(config, catalog, target, store);
    expect(first.outcome).toBe('failed');
    expect(first.error?.kind).toBe('rate_limited');
    expect(first.error?.userMessage).toMatch(/Stopped at 10 of the org's 20 daily Salesforce API requests.*resumes/);
    const got = target.received.get('Account')!.length;
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(300);
    expect(store.state?.streams.Account).toMatchObject({ cursor: expect.any(String), id: expect.any(String) });
    expect(sim.stats.byStatus[403]).toBeUndefined();
    // The daily window rolls over.
    sim.setApiUsage(0);
    sim.setDailyApiLimit(10_000);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const received = ids(target.received.get('Account')!);
    expect(received).toHaveLength(300);
    expect(new Set(received).size).toBe(300);
  });

  it('stops at once on 403 REQUEST_LIMIT_EXCEEDED (no retries), then resumes: every row exactly once', async () => {
    const sim = await org({ records: { Account: 200 }, queryPageSize: 20 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, max_api_usage: 1 };
    const catalog = await catalogOf(config, ['Account']);
    let pages = 0;
    const stop = sim.onRequest((r) => {
      if (r.path.includes('/query') && r.status === 200 && ++pages === 4) sim.setApiUsage(sim.apiUsage.limit);
    });
    const target = memoryTarget();
    const store = memoryStateStore();
    const first = await sync(config, catalog, target, store);
    stop();
    expect(first.outcome).toBe('failed');
    expect(first.error?.userMessage).toMatch(/daily API request limit/);
    expect(sim.stats.byStatus[403]).toBe(1);
    expect(target.received.get('Account')!.length).toBe(80);
    sim.setApiUsage(0);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const received = ids(target.received.get('Account')!);
    expect(received).toHaveLength(200);
    expect(new Set(received).size).toBe(200);
  });

  it('retries a query page answered 400 QUERY_TIMEOUT instead of failing the sync: every row once', async () => {
    const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const expected = ids((await readAll(config, catalog)).records);
    let served = 0;
    sim.onRequest((r) => {
      if (r.path.includes('/query') && r.status === 200 && ++served === 1) sim.failNext(1, 400, 'QUERY_TIMEOUT');
    });
    const { records } = await readAll(config, catalog);
    expect(ids(records)).toEqual(expected);
    expect(sim.stats.byStatus[400]).toBe(1);
  });

  it('retries a page whose connection drops mid-body (REST and Bulk) instead of hanging: every row once', async () => {
    const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
    const base = { ...credentials(sim), hard_deletes: false, bulk_poll_interval_ms: 0 };
    const catalog = await catalogOf(base, ['Account']);
    const expected = ids((await readAll({ ...base, bulk: 'never' }, catalog)).records);
    for (const [mode, page] of [['never', '/query'], ['always', '/results']] as const) {
      let served = 0;
      const stop = sim.onRequest((r) => {
        if (r.path.includes(page) && r.status === 200 && (r.rows ?? 0) > 0 && ++served === 1) sim.dropNextAnswer();
      });
      const warnings: string[] = [];
      const { records } = await readAll({ ...base, bulk: mode, bulk_page_size: 10 }, catalog, undefined, warnings);
      stop();
      expect(ids(records)).toEqual(expected);
      expect(warnings.filter((w) => /attempt 1 failed \(transient\): Connection problem/.test(w))).toHaveLength(1);
    }
  });

  // A stalled answer hangs for as long as nothing bounds it (Node's fetch alone gives up after
  // 300 s): the test's own timeout is the bound on that hang, far above STALL_TIMEOUT_MS.
  it('retries a page whose answer stalls after the headers (REST and Bulk) instead of hanging, and closes its connection: every row once', async () => {
    const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
    const base = { ...credentials(sim), hard_deletes: false, bulk_poll_interval_ms: 0, response_idle_timeout_ms: STALL_TIMEOUT_MS };
    const catalog = await catalogOf(base, ['Account']);
    const expected = ids((await readAll({ ...base, bulk: 'never' }, catalog)).records);
    for (const [mode, page, sent] of [
      ['never', '/query', 'half'],
      ['never', '/query', 'none'],
      ['always', '/results', 'half'],
    ] as const) {
      let served = 0;
      const stop = sim.onRequest((r) => {
        if (r.path.includes(page) && r.status === 200 && (r.rows ?? 0) > 0 && ++served === 1) sim.stallNextAnswer(1, '/services/data', sent);
      });
      const warnings: string[] = [];
      const { records } = await readAll({ ...base, bulk: mode, bulk_page_size: 10 }, catalog, undefined, warnings);
      stop();
      expect(ids(records)).toEqual(expected);
      expect(warnings.filter((w) => /attempt 1 failed \(transient\): Salesforce stopped sending its answer/.test(w))).toHaveLength(1);
      // The client closed the stalled connection when it gave up on it: no socket left behind.
      await vi.waitFor(() => expect(sim.openStalledAnswers).toBe(0));
    }
  }, 30_000);

  it('behind an http_proxy too: a stalled answer through the proxy is given up on and retried, every row once', async () => {
    const proxy = await startForwardProxy();
    const saved = Object.fromEntries(PROXY_ENV.map((name) => [name, process.env[name]]));
    for (const name of PROXY_ENV) delete process.env[name];
    process.env.http_proxy = proxy.url;
    try {
      const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
      const base = { ...credentials(sim), hard_deletes: false, bulk: 'never', response_idle_timeout_ms: STALL_TIMEOUT_MS };
      const catalog = await catalogOf(base, ['Account']);
      const expected = ids((await readAll(base, catalog)).records);
      let served = 0;
      const stop = sim.onRequest((r) => {
        if (r.path.includes('/query') && r.status === 200 && (r.rows ?? 0) > 0 && ++served === 1) sim.stallNextAnswer(1, '/services/data', 'half');
      });
      const warnings: string[] = [];
      const { records } = await readAll(base, catalog, undefined, warnings);
      stop();
      expect(ids(records)).toEqual(expected);
      expect(warnings.filter((w) => /attempt 1 failed \(transient\): Salesforce stopped sending its answer/.test(w))).toHaveLength(1);
      // Every request went through the proxy (token requests included).
      expect(proxy.requests).toBeGreaterThan(0);
      expect(proxy.requests).toBe(sim.stats.requests);
    } finally {
      for (const name of PROXY_ENV) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
      await proxy.close();
    }
  }, 30_000);

  it('retries 503s through the runtime policy only (jsforce retries off) and completes', async () => {
    const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const clean = sim.stats.requests;
    await readAll(config, catalog);
    const perRead = sim.stats.requests - clean;
    let served = 0;
    sim.onRequest((r) => {
      if (r.path.includes('/query') && ++served === 2) sim.failNext(2, 503);
    });
    const before = sim.stats.requests;
    const warnings: string[] = [];
    const { records } = await readAll(config, catalog, undefined, warnings);
    expect(records).toHaveLength(30);
    expect(sim.stats.byStatus[503]).toBe(2);
    // Both retries were the runtime's (ctx.call logs each), none jsforce's own.
    expect(warnings.filter((w) => /attempt \d failed \(transient\)/.test(w))).toHaveLength(2);
    expect(sim.stats.requests - before).toBe(perRead + 2);
  });
});

const PROXY_ENV = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'];

/**
 * A forward HTTP proxy on 127.0.0.1: tunnels CONNECT requests and forwards absolute-form
 * ones, counting the requests it carries (one per tunnelled request is not visible, so a
 * tunnel counts the HTTP requests it sees pass through it).
 */
async function startForwardProxy(): Promise<{ url: string; readonly requests: number; close(): Promise<void> }> {
  let requests = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests++;
    const target = new URL(req.url ?? '/');
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      // Count the requests inside the tunnel by their request lines.
      client.on('data', (chunk: Buffer) => {
        requests += (chunk.toString('latin1').match(/^(?:GET|POST|PATCH|PUT|DELETE|HEAD) \S+ HTTP\/1\.1\r$/gm) ?? []).length;
      });
      client.pipe(upstream);
      upstream.pipe(client);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
