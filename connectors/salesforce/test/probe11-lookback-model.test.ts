/**
 * A seeded model test of transactions longer than the look-back window, against the simulator
 * over HTTP through the real jsforce client. Each scenario seeds rows on stamps before, inside
 * and between the windows and starts long transactions (`beginTransaction`) up to four
 * look-back windows ago, before the first sync (a transaction is running from its start on:
 * one starting later starts now). Then syncs run while those transactions insert and update
 * rows and commit — between syncs or while a sync pages — and transactions started since and
 * ordinary writes land too. REST or Bulk API 2.0; look-back 300 s or 60 s. After every transaction committed and a last sync, the destination (latest version
 * per Id) must equal the org, and every sync must have completed.
 *
 * Default seeds: PROBE11_LOOKBACK_DEFAULT_SEEDS; `PROBE11_LOOKBACK_SEEDS=1-40` runs others.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '@tributary/core';
import { seedList } from '@tributary/conformance';
import type { SalesforceSimulator, SimTransaction } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, memoryTarget, sync, useOrgs } from './helpers.js';

const org = useOrgs();

const PROBE11_LOOKBACK_DEFAULT_SEEDS = [1, 2, 3, 4, 5, 6];

const secondsOf = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** A running long transaction and the rows it holds (locked by it: no other write touches them). */
interface Running {
  tx: SimTransaction;
  holds: Set<string>;
}

async function runScenario(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const sim: SalesforceSimulator = await org({ queryPageSize: int(3, 7), bulkPageSize: int(3, 7), replicationGranularityMs: random() < 0.5 ? 1 : 60_000, bulkPollsToComplete: 1 });
  const lookbackMs = (random() < 0.5 ? 300 : 60) * 1000;
  const now = secondsOf(Date.now());
  let names = 0;
  const insertAt = (stamp: number): void => void sim.insert('Account', [{ Name: `Row ${++names}` }], { stamp });
  // Rows two hours ago, and between one and four windows ago: behind a long transaction's stamp or not.
  for (let i = int(6, 12); i > 0; i--) insertAt(now - 7_200_000 + int(0, 2) * 1000);
  for (let i = int(6, 12); i > 0; i--) insertAt(now - int(1, 4) * lookbackMs - int(0, 20) * 1000);

  const running: Running[] = [];
  const held = (): Set<string> => new Set(running.flatMap((r) => [...r.holds]));
  /** Starts a transaction `ago` ms ago (only before the first sync may that be in the past). */
  const begin = (ago: number): void => {
    const stamp = secondsOf(Date.now() - ago);
    const tx = sim.beginTransaction({ stamp });
    const holds = new Set<string>();
    for (let i = int(0, 2); i > 0; i--) tx.insert('Account', [{ Name: `Batch ${++names}` }]);
    // It updates rows that existed when it started (a row's stamp never goes back) and that no other transaction holds.
    const taken = held();
    const candidates = sim.records('Account').filter((r) => Date.parse(String(r.SystemModstamp)) <= stamp && !taken.has(String(r.Id)));
    for (let i = int(0, 2); i > 0 && candidates.length > 0; i--) {
      const [row] = candidates.splice(int(0, candidates.length - 1), 1);
      holds.add(String(row!.Id));
      tx.update('Account', String(row!.Id), { Name: `Batch update ${++names}` });
    }
    running.push({ tx, holds });
  };
  const commitOne = (): void => {
    const [done] = running.splice(int(0, running.length - 1), 1);
    done?.tx.commit();
  };
  /** An ordinary write, stamped now: an insert, or an update of a row no transaction holds. */
  const write = (): void => {
    const taken = held();
    const free = sim.records('Account').filter((r) => !taken.has(String(r.Id)));
    if (random() < 0.5 || free.length === 0) sim.insert('Account', [{ Name: `Row ${++names}` }]);
    else sim.update('Account', String(free[int(0, free.length - 1)]!.Id), { Name: `Update ${++names}` });
  };

  const config = { ...credentials(sim), bulk: random() < 0.3 ? 'always' : 'never', bulk_poll_interval_ms: 0, lookback_seconds: lookbackMs / 1000, hard_deletes: false, streams: ['Account'] };
  const catalog = await catalogOf(config, ['Account']);
  const target = memoryTarget();
  const store = memoryStateStore();
  const outcomes: string[] = [];
  const runOne = async (duringPages: number): Promise<void> => {
    const stop = sim.onRequest((r) => {
      if (!r.path.startsWith('/services/data') || random() >= duringPages) return;
      const roll = random();
      if (roll < 0.4 && running.length > 0) commitOne();
      else if (roll < 0.6) begin(0);
      else write();
    });
    try {
      const result = await sync(config, catalog, target, store);
      outcomes.push(result.outcome === 'completed' ? 'completed' : `${result.outcome} (${result.error?.userMessage})`);
    } finally {
      stop();
    }
  };

  for (let i = int(1, 4); i > 0; i--) begin(int(1, 4) * lookbackMs + int(1, 30) * 1000);
  for (let round = int(3, 6); round > 0; round--) {
    for (let i = int(0, 1); i > 0; i--) begin(0);
    for (let i = int(0, 3); i > 0; i--) write();
    if (running.length > 0 && random() < 0.5) commitOne();
    await runOne(random() * 0.5);
  }
  while (running.length > 0) commitOne();
  await runOne(0);

  const context = `seed ${seed} (look-back ${lookbackMs / 1000} s, ${config.bulk}; syncs: ${outcomes.join(' | ')})`;
  expect(outcomes.filter((o) => o !== 'completed'), context).toEqual([]);
  const got = target.rows.get('Account') ?? new Map();
  const problems: string[] = [];
  for (const row of sim.records('Account')) {
    const record = got.get(String(row.Id));
    if (record === undefined) problems.push(`${String(row.Id)} missing (${String(row.Name)}, ${String(row.SystemModstamp)})`);
    else if (record.Name !== row.Name) problems.push(`${String(row.Id)} stale: ${String(record.Name)} instead of ${String(row.Name)} (${String(row.SystemModstamp)})`);
  }
  expect(problems, context).toEqual([]);
  expect(got.size, context).toBe(sim.records('Account').length);
}

describe('salesforce source: transactions longer than the look-back window, seeded (probe11)', () => {
  for (const seed of seedList(process.env.PROBE11_LOOKBACK_SEEDS, PROBE11_LOOKBACK_DEFAULT_SEEDS)) {
    it(`seed ${seed}: every sync completes and the destination ends equal to the org`, async () => {
      await runScenario(seed);
    }, 60_000);
  }
});
