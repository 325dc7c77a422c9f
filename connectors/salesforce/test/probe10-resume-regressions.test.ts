/**
 * Regressions found by the randomized model test (probe10-incremental-model.test.ts), each
 * reduced to a deterministic scenario against the simulator through the real jsforce client.
 */
import { describe, expect, it } from 'vitest';
import { Connection, OAuth2 } from 'jsforce';
import type { SyncState } from '@tributary/core';
import type { SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, sync, useOrgs } from './helpers.js';

const org = useOrgs();

const secondsOf = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** Runs `action` once, when the `n`th query page with rows has been served. */
function afterQueryPage(sim: SalesforceSimulator, n: number, action: () => void): () => void {
  let pages = 0;
  return sim.onRequest((r) => {
    if (r.path.includes('/query') && r.status === 200 && (r.rows ?? 0) > 0 && ++pages === n) action();
  });
}

describe('source: a late commit served in its old place while a read pages', () => {
  it('does not move the position past rows not read yet: the sync completes and no row is lost', async () => {
    const sim = await org({ queryPageSize: 3, replicationGranularityMs: 1 });
    // Rows from two hours ago, before the 300 s look-back: pages [1 2 3] [4 5 R] [X 8 9].
    const old = secondsOf(Date.now()) - 7_200_000;
    const rows = (n: number, stamp: number): string[] => sim.insert('Account', Array.from({ length: n }, (_, i) => ({ Name: `Old ${stamp}-${i}` })), { stamp });
    const ids = [...rows(3, old), ...rows(3, old + 1000), ...rows(3, old + 2000)];
    const late = ids[5]!;
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false, streams: ['Account'] };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    // A transaction that started 10 s ago (before the sync's query) commits an update of R
    // while the first page is read: the query locator serves R in its old place on page 2,
    // stamped 10 s ago — later than the rows of page 3, which were never read yet.
    const stop = afterQueryPage(sim, 1, () => sim.update('Account', late, { Name: 'Late commit' }, { stamp: secondsOf(Date.now()) - 10_000 }));
    const first = await sync(config, catalog, target, store);
    stop();
    expect(first.error?.userMessage).toBeUndefined();
    expect(first.outcome).toBe('completed');
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    const got = target.rows.get('Account')!;
    expect([...got.keys()].sort()).toEqual([...ids].sort());
    expect(got.get(late)).toMatchObject({ Name: 'Late commit' });
  });
});

/** The saved state as if its sync had run `ms` earlier: its horizon and deletion window move back. */
function agedBy(state: SyncState, ms: number): void {
  for (const stream of Object.values(state.streams) as Array<Record<string, unknown>>) {
    for (const key of ['horizon', 'deleted_through']) {
      if (typeof stream[key] === 'string') stream[key] = new Date(Date.parse(stream[key] as string) - ms).toISOString();
    }
  }
}

describe('source: a first sync that stops before its end', () => {
  it('the sync that resumes it reports a record it delivered and that was purged since', async () => {
    const sim = await org({ records: { Account: 60 }, queryPageSize: 10, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never', streams: ['Account'] };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    // The org's daily API limit is reached after the second page: the first sync stops.
    const stop = afterQueryPage(sim, 2, () => sim.setApiUsage(sim.apiUsage.limit));
    const first = await sync(config, catalog, target, store);
    stop();
    expect(first.outcome).toBe('failed');
    const delivered = [...target.rows.get('Account')!.keys()];
    expect(delivered).toHaveLength(20);
    // It stopped two hours ago; one of the records it delivered was purged an hour ago.
    agedBy(store.state!, 2 * 3_600_000);
    sim.purge('Account', [delivered[0]!], { deletedAt: Date.now() - 3_600_000 });
    sim.setApiUsage(0);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    expect(target.rows.get('Account')!.size).toBe(60);
    expect(target.rows.get('Account')!.get(delivered[0]!)).toMatchObject({ Id: delivered[0], IsDeleted: true });
  });
});

describe('simulator: hard-deleting a record that was undeleted', () => {
  it('dates the deletion at the purge, not at the earlier delete the undelete undid', async () => {
    const sim = await org({ records: { Account: 3 }, replicationGranularityMs: 1 });
    const conn = new Connection({ loginUrl: sim.url, version: sim.version, oauth2: new OAuth2({ loginUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret }) });
    await conn.login(sim.username, sim.password);
    const [id] = sim.records('Account').map((r) => String(r.Id));
    sim.softDelete('Account', [id!]);
    // Later than the soft delete, so that the two deletions fall on different milliseconds.
    await new Promise((resolve) => setTimeout(resolve, 5));
    sim.undelete('Account', [id!]);
    const purgedFrom = Date.now();
    sim.purge('Account', [id!]);
    const window = `start=${encodeURIComponent(new Date(purgedFrom).toISOString())}&end=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`;
    const answer = await conn.request<{ deletedRecords: Array<{ id: string; deletedDate: string }> }>(`/services/data/v${sim.version}/sobjects/Account/deleted/?${window}`);
    expect(answer.deletedRecords.map((d) => d.id)).toEqual([id]);
    expect(Date.parse(answer.deletedRecords[0]!.deletedDate.replace('+0000', 'Z'))).toBeGreaterThanOrEqual(purgedFrom);
  });
});
