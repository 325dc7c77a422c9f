/**
 * Transactions that run longer than the look-back window (lookback_seconds, default 300).
 * Salesforce stamps their writes with a SystemModstamp earlier than the window, and makes them
 * visible only when they commit. The `updated` endpoint's `latestDateCovered` stays at the
 * start of a running long transaction (GetUpdatedResult, SOAP API Developer Guide); the
 * simulator models both (`beginTransaction`). Real jsforce against the simulator over HTTP.
 */
import { describe, expect, it } from 'vitest';
import { Connection, OAuth2 } from 'jsforce';
import type { SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, sync, useOrgs } from './helpers.js';

const org = useOrgs();

const secondsOf = (ms: number): number => Math.floor(ms / 1000) * 1000;
const TEN_MINUTES = 600_000;

/** Runs `action` once, when the `n`th query page with rows has been served. */
function afterQueryPage(sim: SalesforceSimulator, n: number, action: () => void): () => void {
  let pages = 0;
  return sim.onRequest((r) => {
    if (r.path.includes('/query') && r.status === 200 && (r.rows ?? 0) > 0 && ++pages === n) action();
  });
}

/** `perStamp` rows per second over `seconds` seconds, from `ago` ms ago. */
function rowsFrom(sim: SalesforceSimulator, ago: number, seconds: number, perStamp: number): string[] {
  const first = secondsOf(Date.now()) - ago;
  const ids: string[] = [];
  for (let s = 0; s < seconds; s++) {
    const stamp = first + s * 1000;
    ids.push(...sim.insert('Account', Array.from({ length: perStamp }, (_, i) => ({ Name: `Row ${ago}-${s}-${i}` })), { stamp }));
  }
  return ids;
}

/** Rows stamped two hours ago and 7.5 minutes ago: between a ten-minute transaction's start and a 300 s look-back. */
function rowsAroundTheLookback(sim: SalesforceSimulator): string[] {
  return [...rowsFrom(sim, 7_200_000, 3, 3), ...rowsFrom(sim, 450_000, 1, 3)];
}

describe('source: a transaction longer than the look-back window', () => {
  it('delivers the rows it commits after a sync, stamped before that sync\'s look-back', async () => {
    const sim = await org({ queryPageSize: 3, replicationGranularityMs: 1 });
    const ids = rowsAroundTheLookback(sim);
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, streams: ['Account'] };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    // Batch processing started ten minutes ago (twice the look-back) and is still running.
    const batch = sim.beginTransaction({ stamp: secondsOf(Date.now()) - TEN_MINUTES });
    batch.insert('Account', [{ Name: 'Batch insert' }]);
    batch.update('Account', ids[4]!, { Name: 'Batch update' });
    const first = await sync(config, catalog, target, store);
    expect(first.outcome).toBe('completed');
    expect(target.rows.get('Account')!.size).toBe(12);
    // It commits after the first sync: its rows appear stamped ten minutes ago.
    const [inserted] = batch.commit();
    const second = await sync(config, catalog, target, store);
    expect(second.error?.userMessage).toBeUndefined();
    expect(second.outcome).toBe('completed');
    const got = target.rows.get('Account')!;
    expect([...got.keys()].sort()).toEqual([...ids, inserted!].sort());
    expect(got.get(inserted!)).toMatchObject({ Name: 'Batch insert' });
    expect(got.get(ids[4]!)).toMatchObject({ Name: 'Batch update' });
  });

  it('a commit served in its old place while a read pages neither fails the sync nor loses rows', async () => {
    const sim = await org({ queryPageSize: 3, replicationGranularityMs: 1 });
    // Pages [1 2 3] [4 5 R] [X 8 9] [10 11 12]: R is updated by the long transaction while page
    // 1 is read; the query locator serves it in its old place, stamped ten minutes ago.
    const ids = rowsAroundTheLookback(sim);
    const late = ids[5]!;
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, streams: ['Account'] };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    const batch = sim.beginTransaction({ stamp: secondsOf(Date.now()) - TEN_MINUTES });
    batch.update('Account', late, { Name: 'Batch update' });
    const stop = afterQueryPage(sim, 1, () => batch.commit());
    const first = await sync(config, catalog, target, store);
    stop();
    expect(first.error?.userMessage).toBeUndefined();
    expect(first.outcome).toBe('completed');
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const got = target.rows.get('Account')!;
    expect([...got.keys()].sort()).toEqual([...ids].sort());
    expect(got.get(late)).toMatchObject({ Name: 'Batch update' });
  });

  it('the same through Bulk API 2.0: rows committed after the job ran are read by the next sync', async () => {
    const sim = await org({ queryPageSize: 3, bulkPageSize: 4, replicationGranularityMs: 1, bulkPollsToComplete: 1 });
    const ids = rowsAroundTheLookback(sim);
    const config = { ...credentials(sim), bulk: 'always', bulk_poll_interval_ms: 0, page_size: 200, hard_deletes: false, streams: ['Account'] };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    const batch = sim.beginTransaction({ stamp: secondsOf(Date.now()) - TEN_MINUTES });
    batch.insert('Account', [{ Name: 'Batch insert' }]);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const [inserted] = batch.commit();
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    expect([...target.rows.get('Account')!.keys()].sort()).toEqual([...ids, inserted!].sort());
  });
});

describe('simulator: the updated endpoint while a long transaction runs', () => {
  it('answers latestDateCovered no later than the start of the transaction, until it commits', async () => {
    const sim = await org({ replicationGranularityMs: 1 });
    const started = secondsOf(Date.now()) - TEN_MINUTES;
    const batch = sim.beginTransaction({ stamp: started });
    batch.insert('Account', [{ Name: 'Batch insert' }]);
    const conn = new Connection({ loginUrl: sim.url, version: sim.version, oauth2: new OAuth2({ loginUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret }) });
    await conn.login(sim.username, sim.password);
    const ask = (): Promise<{ ids: string[]; latestDateCovered: string }> => {
      const window = `start=${encodeURIComponent(new Date(started - TEN_MINUTES).toISOString())}&end=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`;
      return conn.request(`/services/data/v${sim.version}/sobjects/Account/updated/?${window}`);
    };
    const running = await ask();
    expect(running.ids).toEqual([]);
    expect(Date.parse(running.latestDateCovered.replace('+0000', 'Z'))).toBe(started);
    const [inserted] = batch.commit();
    const done = await ask();
    expect(done.ids).toEqual([inserted]);
    expect(Date.parse(done.latestDateCovered.replace('+0000', 'Z'))).toBeGreaterThan(started);
  });
});
