/**
 * Salesforce releases a REST query locator after 15 minutes without use, or when the same
 * user opens an eleventh cursor; the locator then answers 400 INVALID_QUERY_LOCATOR for good.
 * A read must query again from the position it reached, not fail the sync.
 */
import { describe, expect, it } from 'vitest';
import { Connection, OAuth2 } from 'jsforce';
import type { RecordData } from '@tributary/core';
import type { SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, readAll, sync, useOrgs } from './helpers.js';

const org = useOrgs();

const ids = (records: RecordData[]): string[] => records.map((r) => String(r.Id));

/** Releases every query cursor once the `n`th query page (with rows) has been served. */
function releaseLocatorsAfterPage(sim: SalesforceSimulator, n: number): () => void {
  let pages = 0;
  return sim.onRequest((r) => {
    if (r.path.includes('/query') && r.status === 200 && (r.rows ?? 0) > 0 && ++pages === n) sim.expireQueryLocators();
  });
}

describe('simulator: query locators', () => {
  it('releases the oldest cursor when the user opens an eleventh: its locator answers 400 INVALID_QUERY_LOCATOR', async () => {
    const sim = await org({ records: { Account: 30 }, queryPageSize: 10 });
    const conn = new Connection({ loginUrl: sim.url, version: sim.version, oauth2: new OAuth2({ loginUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret }) });
    await conn.login(sim.username, sim.password);
    const opened = [];
    for (let i = 0; i < 11; i++) opened.push(await conn.query<{ Id: string }>('SELECT Id FROM Account ORDER BY Id'));
    const error = await Promise.resolve(conn.queryMore(opened[0]!.nextRecordsUrl!)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as { errorCode?: string }).errorCode).toBe('INVALID_QUERY_LOCATOR');
    expect((await conn.queryMore(opened[1]!.nextRecordsUrl!)).records).toHaveLength(10);
  });
});

describe('source: a query locator released mid-read', () => {
  it('queries again from the position reached: every row once, in order, and the read completes', async () => {
    const sim = await org({ records: { Account: 60 }, tieGroup: 7, queryPageSize: 10 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const expected = await readAll(config, catalog);
    const stop = releaseLocatorsAfterPage(sim, 2);
    const warnings: string[] = [];
    const read = await readAll(config, catalog, undefined, warnings);
    stop();
    expect(ids(read.records)).toEqual(ids(expected.records));
    // The same position as a read that was not interrupted (the horizon depends on the clock).
    const { cursor, id } = read.state.streams.Account as Record<string, unknown>;
    expect({ cursor, id }).toEqual({ cursor: expected.state.streams.Account!.cursor, id: expected.state.streams.Account!.id });
    expect(sim.stats.byStatus[400]).toBe(1);
    expect(warnings.some((w) => /INVALID_QUERY_LOCATOR/.test(w))).toBe(true);
  });

  it('through the runtime: the sync completes with every row once while the locators keep being released', async () => {
    const sim = await org({ records: { Account: 45 }, tieGroup: 9, queryPageSize: 10 });
    const config = { ...credentials(sim), bulk: 'never', hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const target = memoryTarget();
    const store = memoryStateStore();
    // Released after every other page: each restart makes progress, so the read goes on.
    let pages = 0;
    const stop = sim.onRequest((r) => {
      if (r.path.includes('/query') && r.status === 200 && (r.rows ?? 0) > 0 && ++pages % 2 === 0) sim.expireQueryLocators();
    });
    const result = await sync(config, catalog, target, store);
    stop();
    expect(result.outcome).toBe('completed');
    const received = ids(target.received.get('Account')!);
    expect(received).toHaveLength(45);
    expect(new Set(received).size).toBe(45);
  });
});
