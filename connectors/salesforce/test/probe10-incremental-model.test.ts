/**
 * A randomized model test of incremental reads: the simulator (over HTTP, through the real
 * jsforce client) is the model. Seeded scenarios cluster SystemModstamps so that many rows tie
 * and ties straddle query-locator pages; between syncs and between the page requests of a
 * running sync they insert, update (sometimes to a tied, earlier stamp: a late commit within
 * the look-back window), move to the recycle bin, undelete and purge rows; some syncs meet
 * released query locators, REQUEST_LIMIT_EXCEEDED storms (concurrent-request ones, retried) and
 * the daily limit (the sync stops), and some crash at a random request and resume from the
 * committed state in a file state store.
 *
 * After a last quiet sync the destination, reduced to the latest version per Id, must hold
 * every row the simulator still has (binned ones with IsDeleted = true) with its current
 * values, every purged row it ever received as deleted, and nothing that never existed.
 *
 * Default seeds: PROBE10_DEFAULT_SEEDS; `PROBE10_SEEDS=1-40` (or `1,5,9`) runs others. A seed
 * fixes every random choice; stamps and second boundaries still come from the wall clock, so
 * a failing seed may need a few runs to fail again (the report lists each row's history).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TributaryError, createFileStateStore, defineDestination, runSync, seededRandom, type RecordData, type StateStore } from '@tributary/core';
import { salesforceSource, type SalesforceSimulator } from '../src/index.js';
import { catalogOf, credentials, useOrgs } from './helpers.js';
import { seedList } from '@tributary/conformance';

const org = useOrgs();

const PROBE10_DEFAULT_SEEDS = [1, 2, 3];

/** The fields compared per object (besides Id, IsDeleted and SystemModstamp). */
const VALUE_FIELDS: Record<string, string[]> = { Account: ['Name', 'NumberOfEmployees'], Contact: ['LastName', 'Email'] };
const OBJECTS = Object.keys(VALUE_FIELDS);

function project(object: string, row: Record<string, unknown>): string {
  const picked: Record<string, unknown> = { Id: row.Id, IsDeleted: row.IsDeleted, SystemModstamp: row.SystemModstamp };
  for (const f of VALUE_FIELDS[object]!) picked[f] = row[f] ?? null;
  return JSON.stringify(picked);
}

const secondsOf = (ms: number): number => Math.floor(ms / 1000) * 1000;

/**
 * The simulator plus a log of every version each row ever had (projected) and every id ever
 * deleted: what the source may emit.
 */
class World {
  readonly versions = new Map<string, Set<string>>();
  readonly deleted = new Set<string>();
  /** Every change made, for the report of a failing seed. */
  readonly log: string[] = [];
  private counter = 0;

  constructor(
    readonly sim: SalesforceSimulator,
    readonly random: () => number,
    /** How far back a late commit's stamp may be (well inside the look-back window). */
    readonly lateMs: number,
  ) {}

  private rows(object: string): Array<Record<string, unknown>> {
    return this.sim.records(object, { all: true });
  }

  note(what: string): void {
    this.log.push(`${new Date().toISOString()} ${what}`);
  }

  private remember(object: string, ids: string[]): void {
    this.note(`${object} ${ids.join(',')} now ${ids.map((id) => project(object, this.rows(object).find((r) => r.Id === id) ?? {})).join(' ')}`);
    const wanted = new Set(ids);
    for (const row of this.rows(object)) {
      if (!wanted.has(String(row.Id))) continue;
      const key = `${object}:${String(row.Id)}`;
      const set = this.versions.get(key) ?? new Set<string>();
      set.add(project(object, row));
      this.versions.set(key, set);
    }
  }

  pickOf<T>(values: T[]): T {
    return values[Math.floor(this.random() * values.length)]!;
  }

  private pick<T>(values: T[]): T | undefined {
    return values.length === 0 ? undefined : values[Math.floor(this.random() * values.length)];
  }

  private values(object: string): Record<string, unknown> {
    const n = ++this.counter;
    return object === 'Account' ? { Name: `Account ${n}`, NumberOfEmployees: n } : { LastName: `Contact ${n}`, Email: `c${n}@example.com` };
  }

  /**
   * A late commit's stamp: one another row already has (a tie), else a second of the last
   * `lateMs`, no earlier than `notBefore` (a row's stamp never goes back). A transaction that
   * started then commits now: inside the look-back window, so no row may be missed for it.
   */
  private lateStamp(object: string, notBefore: number): number | undefined {
    const now = Date.now();
    const from = Math.max(notBefore, now - this.lateMs);
    const tied = this.rows(object)
      .map((r) => Date.parse(String(r.SystemModstamp)))
      .filter((s) => s >= from && s <= now);
    if (tied.length > 0 && this.random() < 0.7) return this.pick(tied);
    const stamp = secondsOf(now - Math.floor(this.random() * this.lateMs));
    return stamp >= notBefore ? stamp : undefined;
  }

  insert(object: string, stamp?: number): void {
    const ids = this.sim.insert(object, [this.values(object)], stamp === undefined ? undefined : { stamp });
    this.remember(object, ids);
  }

  /** One random change to one random object. */
  mutate(): void {
    const object = this.pick(OBJECTS)!;
    const all = this.rows(object);
    const live = all.filter((r) => r.IsDeleted !== true);
    const binned = all.filter((r) => r.IsDeleted === true);
    const roll = this.random();
    if (roll < 0.25 || live.length === 0) {
      const tied = this.random() < 0.5 ? this.lateStamp(object, 0) : undefined;
      this.insert(object, tied);
      return;
    }
    const row = this.pick(live)!;
    const id = String(row.Id);
    if (roll < 0.6) {
      const tied = this.random() < 0.4 ? this.lateStamp(object, Date.parse(String(row.SystemModstamp))) : undefined;
      this.sim.update(object, id, this.values(object), tied === undefined ? undefined : { stamp: tied });
      this.remember(object, [id]);
    } else if (roll < 0.75) {
      this.sim.softDelete(object, [id]);
      this.deleted.add(`${object}:${id}`);
      this.remember(object, [id]);
    } else if (roll < 0.85 && binned.length > 0) {
      const back = String(this.pick(binned)!.Id);
      this.sim.undelete(object, [back]);
      this.remember(object, [back]);
    } else {
      // Hard delete: a row from the recycle bin (emptied) or a live one.
      const victim = this.random() < 0.6 && binned.length > 0 ? String(this.pick(binned)!.Id) : id;
      this.sim.purge(object, [victim]);
      this.note(`${object} ${victim} purged`);
      this.deleted.add(`${object}:${victim}`);
    }
  }
}

/** What the recording destination holds: committed records per stream, in arrival order. */
interface Recorded {
  committed: Map<string, RecordData[]>;
}

/**
 * An upsert destination in memory: batches are pending until `commit`. A crash (the `crash`
 * flag) fails every later write and commit, as a killed process would: pending batches are
 * lost, or kept (`keepPending`: a destination whose writes are durable before the commit).
 */
function recordingDestination(recorded: Recorded, control: { crash: boolean; keepPending: boolean }) {
  return defineDestination({
    name: 'probe10-memory',
    spec: { connectionSpecification: { type: 'object', properties: {} } as const, supportedDestinationSyncModes: ['append_dedup'] },
    delivery: 'upsert',
    async check() {},
    async open() {
      let pending: Array<{ stream: string; records: RecordData[] }> = [];
      const flush = (): void => {
        for (const { stream, records } of pending) {
          const list = recorded.committed.get(stream) ?? [];
          list.push(...records);
          recorded.committed.set(stream, list);
        }
        pending = [];
      };
      const crashed = (): TributaryError => {
        if (control.keepPending) flush();
        pending = [];
        return new TributaryError('fatal', { userMessage: 'probe10: simulated crash' });
      };
      return {
        async write(batch) {
          if (control.crash) throw crashed();
          pending.push({ stream: batch.stream, records: batch.records.map((r) => ({ ...r })) });
        },
        async commit() {
          if (control.crash) throw crashed();
          flush();
        },
        async close() {},
      };
    },
  });
}

/** The source with a test-speed retry policy (the simulator's failures need no real back-off). */
const source = { ...salesforceSource, retry: { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 5 } };

const CONCURRENT_LIMIT = 'ConcurrentRequests (Concurrent API Requests) Limit exceeded.';

/** Per served API request of one sync: the chance of each injected event, and when it crashes. */
interface Chaos {
  mutations: number;
  locators: number;
  limitStorms: number;
  dailyLimit: number;
  crashAt?: number;
}

/** lookback_seconds of a scenario: the default, a short one, or none. */
function lookbackFor(roll: number): number {
  return roll < 0.4 ? 300 : roll < 0.7 ? 60 : 0;
}

/** Sync failures the README documents for the chaos injected (crashes are the test's own). */
const DOCUMENTED_STOPS = [
  /daily API request limit/, // 403 REQUEST_LIMIT_EXCEEDED TotalRequests
  /daily Salesforce API requests/, // max_api_usage reached
  /INVALID_QUERY_LOCATOR/, // "A locator released again before the position moved fails the sync"
];

async function runScenario(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const sim = await org({ queryPageSize: int(3, 9), replicationGranularityMs: 1, bulkPollsToComplete: 1 });
  // Without a look-back there are no late commits (only writes stamped now), but time passes
  // between syncs beyond the window.
  const lookbackSeconds = lookbackFor(random());
  const world = new World(sim, random, (lookbackSeconds * 1000) / 2);
  // Seed rows: stamps clustered on a few seconds, so that ties are many and straddle pages;
  // some clusters lie before the look-back window (a resume must not rely on the window to
  // find them again), some inside it.
  const now = secondsOf(Date.now());
  const clusters = [now - 7_200_000, now - 3_600_000, now - 20_000];
  for (const object of OBJECTS) for (let i = int(15, 40); i > 0; i--) world.insert(object, world.pickOf(clusters) + int(0, 3) * 1000);

  const bulk = random() < 0.2;
  const config = {
    ...credentials(sim),
    bulk: bulk ? 'always' : 'never',
    bulk_page_size: int(3, 9),
    bulk_poll_interval_ms: 0,
    lookback_seconds: lookbackSeconds,
    streams: OBJECTS,
  };
  const catalog = await catalogOf(config, OBJECTS);
  const dir = await mkdtemp(join(tmpdir(), 'probe10-sf-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const store: StateStore = createFileStateStore(dir);
  cleanups.push(() => store.close());
  const recorded: Recorded = { committed: new Map() };
  const control = { crash: false, keepPending: false };
  const outcomes: string[] = [];
  const unexpected: string[] = [];

  const runOne = async (chaos: Chaos | undefined): Promise<void> => {
    control.crash = false;
    control.keepPending = random() < 0.5;
    let served = 0;
    const stop = sim.onRequest((r) => {
      if (chaos === undefined || !r.path.startsWith('/services/data')) return;
      served++;
      if (chaos.crashAt !== undefined && served >= chaos.crashAt) control.crash = true;
      if (random() < chaos.mutations) for (let i = int(1, 3); i > 0; i--) world.mutate();
      if (random() < chaos.locators) sim.expireQueryLocators();
      // A storm of at most 3 refusals, started only by an answered request: within the retries.
      if (r.status === 200 && random() < chaos.limitStorms) sim.failNext(int(1, 3), 403, 'REQUEST_LIMIT_EXCEEDED', CONCURRENT_LIMIT);
      if (random() < chaos.dailyLimit) sim.setApiUsage(sim.apiUsage.limit);
    });
    try {
      const result = await runSync({
        connection: 'probe10',
        source,
        sourceConfig: config,
        destination: recordingDestination(recorded, control),
        destinationConfig: {},
        catalog,
        stateStore: store,
        batching: { maxRecords: int(2, 12), commitIntervalMs: 0 },
      });
      const outcome = result.outcome === 'completed' ? 'completed' : `${result.outcome} (${result.error?.kind}: ${result.error?.userMessage})`;
      outcomes.push(outcome);
      world.note(`sync ${outcome}, state ${JSON.stringify(result.state.streams)}`);
      const explained = control.crash || DOCUMENTED_STOPS.some((pattern) => pattern.test(result.error?.userMessage ?? ''));
      if (result.outcome !== 'completed' && !explained) unexpected.push(outcome);
    } finally {
      stop();
      control.crash = false;
      sim.setApiUsage(0);
    }
  };

  const rounds = int(3, 6);
  for (let round = 0; round < rounds; round++) {
    for (let i = int(0, 6); i > 0; i--) world.mutate();
    const chaos: Chaos = {
      mutations: random() * 0.5,
      locators: random() < 0.5 ? random() * 0.3 : 0,
      limitStorms: random() < 0.4 ? random() * 0.2 : 0,
      dailyLimit: random() < 0.25 ? random() * 0.05 : 0,
    };
    if (random() < 0.4) chaos.crashAt = int(1, 30);
    await runOne(chaos);
  }
  // The last, quiet sync.
  await runOne(undefined);
  const context = `seed ${seed} (syncs: ${outcomes.join(' | ')})`;
  expect(outcomes.at(-1), context).toBe('completed');
  checkAgainstModel(context, world, recorded);
  expect(unexpected, `${context}: failed syncs nothing explains`).toEqual([]);
}

function checkAgainstModel(context: string, world: World, recorded: Recorded): void {
  for (const object of OBJECTS) {
    const received = recorded.committed.get(object) ?? [];
    const latest = new Map<string, RecordData>();
    for (const record of received) {
      const id = String(record.Id);
      latest.set(id, record);
      // Never a version that did not exist: a row version, or a tombstone of a deleted id.
      const key = `${object}:${id}`;
      const isTombstone = Object.keys(record).sort().join(',') === 'Id,IsDeleted,SystemModstamp';
      if (isTombstone) {
        expect(world.deleted.has(key) && record.IsDeleted === true, `${context}: tombstone of ${key}, never deleted`).toBe(true);
      } else {
        expect([...(world.versions.get(key) ?? [])], `${context}: ${key} emitted a version that never existed`).toContain(project(object, record));
      }
    }
    const stored = new Map(world.sim.records(object, { all: true }).map((r) => [String(r.Id), r]));
    const problems: string[] = [];
    for (const [id, row] of stored) {
      const got = latest.get(id);
      if (got === undefined) problems.push(`${id} missing (${project(object, row)})`);
      else if (project(object, got) !== project(object, row)) problems.push(`${id} stale: got ${project(object, got)}, is ${project(object, row)}`);
    }
    for (const [id, got] of latest) {
      if (!stored.has(id) && got.IsDeleted !== true) problems.push(`${id} purged but live in the destination (${project(object, got)})`);
    }
    const history = problems.map((p) => p.split(' ')[0]!).flatMap((id) => world.log.filter((line) => line.includes(id)));
    if (problems.length > 0) throw new Error(`${context}: ${object}\n${problems.join('\n')}\nhistory:\n${history.join('\n')}`);
  }
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('salesforce source: randomized incremental model (probe10)', () => {
  for (const seed of seedList(process.env.PROBE10_SEEDS, PROBE10_DEFAULT_SEEDS)) {
    it(`seed ${seed}: the destination ends equal to the org`, async () => {
      await runScenario(seed);
    }, 60_000);
  }
});
