/**
 * Salesforce purges its delete log when it grows past 15,000 entries per license (entries
 * older than two hours go first), and the `deleted` endpoint then answers 400
 * INVALID_REPLICATION_DATE to a window starting before what is left. A sync must not fail on
 * it — nor every sync after it, since the saved start of that window never moves.
 */
import { describe, expect, it } from 'vitest';
import { agedDeletionWindow, catalogOf, credentials, memoryStateStore, memoryTarget, readAll, sync, useOrgs } from './helpers.js';

const org = useOrgs();


describe('source: a delete log Salesforce purged since the last sync', () => {
  it('the sync completes, reads the following streams, reports the deletions still logged and warns about the others', async () => {
    const sim = await org({ records: { Account: 20, Contact: 5 }, replicationGranularityMs: 1 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account', 'Contact']);
    const target = memoryTarget();
    const store = memoryStateStore();
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
    // The last sync ran five hours ago; since then the log's cleanup dropped the entries older
    // than three hours (it drops only entries older than two).
    agedDeletionWindow(store.state!, 5);
    sim.truncateDeleteLog('Account', Date.now() - 3 * 3_600_000);
    const [account] = sim.records('Account').map((r) => String(r.Id));
    const [contact] = sim.records('Contact').map((r) => String(r.Id));
    sim.purge('Account', [account!]);
    sim.purge('Contact', [contact!]);

    const warnings: string[] = [];
    const direct = await readAll(config, catalog, store.state, warnings);
    expect(direct.records.map((r) => `${String(r.Id)}:${String(r.IsDeleted)}`).sort()).toEqual([`${account}:true`, `${contact}:true`].sort());
    expect(warnings.filter((w) => /purged its delete log/.test(w)).map((w) => w.split(':')[0])).toEqual(['Account']);

    const second = await sync(config, catalog, target, store);
    expect(second.outcome).toBe('completed');
    expect(target.rows.get('Account')!.get(account!)).toMatchObject({ IsDeleted: true });
    expect(target.rows.get('Contact')!.get(contact!)).toMatchObject({ IsDeleted: true });
    // The window moved on: the next sync does not run into the purged log again.
    expect(Date.parse(String(store.state!.streams.Account!.deleted_through))).toBeGreaterThan(Date.now() - 3_600_000);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
  });

  it('a first sync completes too when the log was cleaned up within the last day', async () => {
    const sim = await org({ records: { Account: 10 }, replicationGranularityMs: 1 });
    sim.truncateDeleteLog('Account', Date.now() - 3 * 3_600_000);
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const warnings: string[] = [];
    const first = await readAll(config, catalog, undefined, warnings);
    expect(first.records).toHaveLength(10);
    expect(first.state.streams.Account!.deleted_through).toBeDefined();
    // Nothing was reported deleted, so nothing is said about deletions it could not read.
    expect(warnings.filter((w) => /delete log/.test(w))).toEqual([]);
  });
});
