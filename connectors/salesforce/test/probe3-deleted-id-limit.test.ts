/**
 * The `deleted` endpoint lists at most 600,000 ids per answer; past that it answers 400
 * EXCEEDED_ID_LIMIT and asks for start and end dates closer together. The window's start is
 * the saved state, so a sync that fails on it fails forever: the source must split the window.
 * The simulator's limit is lowered so that a few deletions pass it.
 */
import { describe, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { agedDeletionWindow, catalogOf, credentials, memoryStateStore, memoryTarget, readAll, sync, useOrgs } from './helpers.js';

const org = useOrgs();


const MINUTE = 60_000;

/** Tombstones per id among the records a destination received. */
function tombstoneCounts(records: RecordData[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of records) if (record.IsDeleted === true) counts.set(String(record.Id), (counts.get(String(record.Id)) ?? 0) + 1);
  return counts;
}

describe('source: more deletions in the window than the deleted endpoint lists at once', () => {
  it('splits the window: the sync completes and reports every purge exactly once, and the next window starts later', async () => {
    // Salesforce's replication windows are whole minutes (the default granularity).
    const sim = await org({ records: { Account: 30 }, deletedIdLimit: 3 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');

    // The last sync ran five hours ago; since then 12 records were purged, two of them in the
    // same minute more than once, so no window of the whole period lists 3 or fewer.
    agedDeletionWindow(store.state!, 5);
    const now = Date.now();
    const minutesAgo = [240, 240, 200, 150, 150, 100, 60, 30, 10, 5, 3, 2];
    const victims = sim.records('Account').slice(0, minutesAgo.length).map((r) => String(r.Id));
    victims.forEach((id, i) => sim.purge('Account', [id], { deletedAt: now - minutesAgo[i]! * MINUTE - 1000 }));

    const warnings: string[] = [];
    const direct = await readAll(config, catalog, store.state, warnings);
    expect([...tombstoneCounts(direct.records)].sort()).toEqual(victims.map((id) => [id, 1]).sort());
    expect(warnings).toEqual([]);

    const second = await sync(config, catalog, target, store);
    expect(second.outcome).toBe('completed');
    const received = target.received.get('Account')!;
    expect([...tombstoneCounts(received)].sort()).toEqual(victims.map((id) => [id, 1]).sort());
    // The window moved on to the read's horizon (5 minutes before it): the next sync asks
    // for the last minutes only, and completes.
    expect(Date.parse(String(store.state!.streams.Account!.deleted_through))).toBeGreaterThan(Date.now() - 3_600_000);
    expect((await sync(config, catalog, target, store)).outcome).toBe('completed');
  });

  it('a single minute with too many deletions is skipped with a warning; the rest of the window is reported', async () => {
    const sim = await org({ records: { Account: 20 }, deletedIdLimit: 3 });
    const config = { ...credentials(sim), bulk: 'never' };
    const catalog = await catalogOf(config, ['Account']);
    const first = await readAll(config, catalog);
    agedDeletionWindow(first.state, 5);
    const now = Date.now();
    const crowdedMinute = Math.floor((now - 120 * MINUTE) / MINUTE) * MINUTE;
    const ids = sim.records('Account').map((r) => String(r.Id));
    const crowded = ids.slice(0, 4);
    const others = ids.slice(4, 7);
    crowded.forEach((id, i) => sim.purge('Account', [id], { deletedAt: crowdedMinute + 5000 + i * 1000 }));
    others.forEach((id, i) => sim.purge('Account', [id], { deletedAt: now - (200 - i * 90) * MINUTE }));

    const warnings: string[] = [];
    const second = await readAll(config, catalog, first.state, warnings);
    expect([...tombstoneCounts(second.records).keys()].sort()).toEqual([...others].sort());
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`Account: .*600,000.*${new Date(crowdedMinute).toISOString()}`));
  });
});
