/**
 * A model-based randomized check of the lake under CDC histories with crashes and replays.
 *
 * Each seed generates (`generateCdcHistory` of @tributary/conformance, conformance/src/cdc-model.ts)
 * the change history of a simulated PostgreSQL table `items (id integer primary key,
 * tenant_id, customer_id, v integer, big text)` in the Tributary change format (connectors/postgres/src/records.ts): an initial
 * snapshot, then transactions of inserts, updates (a large `big` the update does not change
 * is TOASTed: left out and listed in `_tributary_unchanged`), deletes, key moves (an update
 * changing `id`) and, while the table is under REPLICA IDENTITY FULL, tenant moves (an
 * update changing `tenant_id`, the whole old row as before-image). Under the default replica
 * identity a delete and a key move carry the old key alone. An in-memory copy of the table,
 * versioned by commit time, is the oracle.
 *
 * The history is delivered (`planCdcDelivery`) in random batches over several sessions with several commits
 * each. A session may crash (closed with `completed: false`, its last batches staged but not
 * committed); the next one resumes from a random earlier point no earlier than the end of the
 * last completed session (a checkpoint), so it replays what was already stored. Compaction
 * (merging small files) runs between sessions at random. Retention is left out of this model
 * (it removes rows the oracle would have to expire too); a narrower test below adds it.
 *
 * After the last, completed session: (a) no event id is stored twice; (b) every change is
 * stored exactly once (tenant, key, position, op, customer), with the delete synthesized for
 * each key or tenant move, deletes attributed to the deleted row's customer and tenant;
 * (c) point-in-time reads at the end and at random earlier times (commit times, and between
 * them) return the oracle's table: the live keys per tenant, their customer, `v` and `big`
 * (TOASTed values filled by the read); (d) the same per tenant with `tenant` set, except
 * `big` of rows whose value is only in another tenant's rows (a tenant-restricted read
 * cannot see those, a known limitation); (e) at the end, with `includeDeleted`, every
 * (tenant, key) ever stored, deleted unless live; by `customer_id`, per tenant and customer
 * the latest stored row in change order.
 *
 * Seeds and sizes: PROBE9_SEEDS, PROBE9_FIRST_SEED, PROBE9_TRANSACTIONS,
 * PROBE9_RETENTION_SEEDS; PROBE9_DEBUG=1 prints each seed's delivery plan and records. The
 * defaults (8 model seeds, 4 retention seeds: about 25 s on two cores) keep the suite short;
 * sweeps of 60–100 seeds in several variants passed when the test was written.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, createLogger, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { applyRetention, compactLake, lakeDestination, readLatestAsOf, readStreamRows } from '../src/index.js';
import {
  CDC_MODEL_FIRST_COMMIT_MS,
  CDC_MODEL_TENANTS,
  cdcModelProperties,
  generateCdcHistory,
  modelRandom,
  planCdcDelivery,
  tableAsOf,
  type CdcHistory,
  type CdcModelRow,
  type CdcSessionPlan,
} from '@tributary/conformance';
import { keyedStream } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-model-cdc-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

/** The stream as the PostgreSQL source declares it: nullable columns and its change fields. */
const stream: DestinationStream = keyedStream('items', cdcModelProperties());

/** What the seeds exercised (checked at the end, so that a change to the generator cannot quietly make it trivial). */
const coverage = { crashes: 0, replayedRows: 0, mergedFiles: 0, keyMoves: 0, tenantMoves: 0, leftOut: 0, retentions: 0 };

/** A stored row as the checks compare it: [tenant, key, position, op, customer]. */
type StoredRow = [string, string, string, string, string];

const TENANTS = CDC_MODEL_TENANTS;

/** The model history of a seed: the default replica identity and FULL, no `updated_at`. */
const generateHistory = (seed: number, transactions: number): CdcHistory => generateCdcHistory(seed, { transactions, identities: ['default', 'full'] });

/** The rows the lake must store, in change order, each with its event time (a snapshot row's: -Infinity, as its ingest time is before every commit time). */
function expectedRows(history: CdcHistory): { expected: StoredRow[]; expectedTimes: number[] } {
  const expected = history.changes.map(({ row, position, op }): StoredRow => [row.tenant_id, String(row.id), position, op, row.customer_id]);
  return { expected, expectedTimes: history.changes.map((x) => x.commitMs) };
}

/** Runs one session; a refused record fails it, unless `refused` is given (then it collects them). */
async function runSession(config: Record<string, unknown>, plan: CdcSessionPlan, refused?: RecordData[]): Promise<void> {
  const logger = createLogger((_level, message) => {
    const replays = /([0-9]+) replayed row\(s\)/.exec(message);
    if (replays) coverage.replayedRows += Number(replays[1]);
  });
  const session = await lakeDestination.open(createConnectorContext({ logger }), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  for (const [i, records] of plan.batches.entries()) {
    const rejected = (await session.write({ stream: stream.key, records, emittedAt: Date.now() }))?.rejected ?? [];
    if (refused !== undefined) refused.push(...rejected.map((x) => records[x.index]!));
    else if (rejected.length > 0) throw new Error(`records refused: ${JSON.stringify(rejected.map((x) => x.reason))}`);
    if (plan.commitAfter.has(i)) await session.commit();
  }
  // A crash: closed without committing what was staged after the last commit.
  await session.close({ completed: plan.completed });
  if (!plan.completed) coverage.crashes++;
}

/** Delivers the plan into a fresh lake; returns its config. */
async function deliver(name: string, plans: readonly CdcSessionPlan[]): Promise<Record<string, unknown>> {
  const config = { path: join(root, name) };
  for (const plan of plans) {
    await runSession(config, plan);
    if (plan.compactAfter) coverage.mergedFiles += (await compactLake(config, { minFiles: 2, graceMs: 0 })).filesBefore;
  }
  return config;
}

type LiveRow = [string, string, string, number, string | null];

const sortRows = <T>(rows: T[]): T[] => rows.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

const liveOf = (table: ReadonlyMap<number, CdcModelRow>): LiveRow[] => sortRows([...table.values()].map((row) => [row.tenant_id, String(row.id), row.customer_id, row.v, row.big]));

/** The points in time the reads are checked at: the end, before the first commit, some commit times and times between. */
function checkTimes(seed: number, history: CdcHistory): number[] {
  const r = modelRandom(seed ^ 0x5bd1e995);
  const times = [history.endMs, CDC_MODEL_FIRST_COMMIT_MS - 3_600_000];
  for (let i = 0; i < 4; i++) {
    const v = r.pick(history.versions);
    times.push(r.chance(0.5) ? v.timeMs : v.timeMs + 500);
  }
  return times;
}

/** Runs one seed and returns the differences from the oracle (empty: none). */
async function checkSeed(seed: number, transactions: number): Promise<string[]> {
  const history = generateHistory(seed, transactions);
  const { expected } = expectedRows(history);
  for (const x of history.records) {
    if (Array.isArray(x._tributary_unchanged)) coverage.leftOut++;
    const before = x._tributary_before as Record<string, unknown> | null;
    if (x._tributary_op !== 'u' || before === null) continue;
    if (before.id !== x.id) coverage.keyMoves++;
    else if (before.tenant_id !== x.tenant_id) coverage.tenantMoves++;
  }
  const plans = planCdcDelivery(seed, history.records);
  // For minimising a failing seed: its delivery plan and its records.
  if (process.env.PROBE9_DEBUG) {
    for (const p of plans) console.log(JSON.stringify({ completed: p.completed, compact: p.compactAfter, commits: [...p.commitAfter], batches: p.batches.map((b) => b.map((x) => `${x._tributary_op}${x.id}@${x._tributary_position}`)) }));
    for (const x of history.records) console.log(JSON.stringify(x).replace(/x{20,}/g, 'x…'));
  }
  const config = await deliver(`seed-${seed}`, plans);
  const problems: string[] = [];
  const stored = await readStreamRows(config, { stream: 'items' });
  const ids = new Map<string, number>();
  for (const row of stored) ids.set(row.event_id, (ids.get(row.event_id) ?? 0) + 1);
  const twice = [...ids].filter(([, n]) => n > 1);
  if (twice.length > 0) problems.push(`event ids stored more than once: ${JSON.stringify(twice)}`);
  const got = sortRows(stored.map((row): StoredRow => [row.tenant_id, row.entity_key, String(row.source_position), row.op, row.customer_id]));
  const want = sortRows([...expected]);
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    const key = (x: StoredRow): string => JSON.stringify(x);
    const count = (rows: StoredRow[]): Map<string, number> => rows.reduce((m, x) => m.set(key(x), (m.get(key(x)) ?? 0) + 1), new Map<string, number>());
    const g = count(got);
    const w = count(want);
    const extra = [...g].filter(([k, n]) => n > (w.get(k) ?? 0)).map(([k]) => k);
    const missing = [...w].filter(([k, n]) => n > (g.get(k) ?? 0)).map(([k]) => k);
    problems.push(`stored rows differ: extra ${extra.join(' ')}; missing ${missing.join(' ')}`);
  }
  for (const [n, timeMs] of checkTimes(seed, history).entries()) {
    const { table, bigFromOtherTenant: cross } = tableAsOf(history, timeMs);
    const asOf = new Date(timeMs).toISOString();
    const rows = await readLatestAsOf(config, { stream: 'items', asOf: timeMs });
    const read = sortRows(rows.map((row): LiveRow => [row.tenant_id, row.entity_key, row.customer_id, row.payload.v as number, (row.payload.big as string | null) ?? null]));
    const oracle = liveOf(table);
    if (JSON.stringify(read) !== JSON.stringify(oracle)) problems.push(`as of ${asOf}: read ${JSON.stringify(read)}, table ${JSON.stringify(oracle)}`);
    // Per tenant at the end and at one earlier time (each read opens the lake anew).
    for (const tenant of n === 0 || n === 2 ? TENANTS : []) {
      const own = await readLatestAsOf(config, { stream: 'items', asOf: timeMs, tenant });
      const tenantRead = sortRows(own.map((row): LiveRow => [row.tenant_id, row.entity_key, row.customer_id, row.payload.v as number, cross.has(Number(row.entity_key)) ? '?' : ((row.payload.big as string | null) ?? null)]));
      const tenantOracle = liveOf(table)
        .filter((x) => x[0] === tenant)
        .map((x): LiveRow => (cross.has(Number(x[1])) ? [x[0], x[1], x[2], x[3], '?'] : x));
      if (JSON.stringify(tenantRead) !== JSON.stringify(tenantOracle)) problems.push(`as of ${asOf}, tenant ${tenant}: read ${JSON.stringify(tenantRead)}, table ${JSON.stringify(tenantOracle)}`);
    }
  }
  // With deletes: every (tenant, key) the lake ever stored, deleted unless live at the end.
  const final = history.final;
  const withDeleted = sortRows((await readLatestAsOf(config, { stream: 'items', includeDeleted: true, asOf: checkTimes(seed, history)[0]! })).map((row) => [row.tenant_id, row.entity_key, row.op === 'delete' ? 'deleted' : 'live']));
  const everKeys = sortRows(
    [...new Set(expected.map(([tenant, key]) => JSON.stringify([tenant, key])))].map((x) => {
      const [tenant, key] = JSON.parse(x) as [string, string];
      return [tenant, key, final.get(Number(key))?.tenant_id === tenant ? 'live' : 'deleted'];
    }),
  );
  if (JSON.stringify(withDeleted) !== JSON.stringify(everKeys)) problems.push(`with deletes: read ${JSON.stringify(withDeleted)}, expected ${JSON.stringify(everKeys)}`);
  // By customer id: per tenant and customer the latest stored row (in change order; at a move's
  // position the delete of the old key first), left out when it is a delete.
  const lsn = (position: string): bigint => position.split('/').reduce((n, part) => n * 2n ** 32n + BigInt(`0x${part}`), 0n);
  const latestByCustomer = new Map<string, StoredRow>();
  const inOrder = expected.map((row, i) => ({ row, i })).sort((a, b) => (lsn(a.row[2]) < lsn(b.row[2]) ? -1 : lsn(a.row[2]) > lsn(b.row[2]) ? 1 : a.i - b.i));
  for (const { row } of inOrder) latestByCustomer.set(JSON.stringify([row[0], row[4]]), row);
  const byCustomer = sortRows([...latestByCustomer.values()].filter((row) => row[3] !== 'delete').map((row) => [row[0], row[4], row[1], row[2], row[3]]));
  const readByCustomer = sortRows((await readLatestAsOf(config, { stream: 'items', key: 'customer_id', asOf: checkTimes(seed, history)[0]! })).map((row) => [row.tenant_id, row.customer_id, row.entity_key, String(row.source_position), row.op]));
  if (JSON.stringify(readByCustomer) !== JSON.stringify(byCustomer)) problems.push(`by customer id: read ${JSON.stringify(readByCustomer)}, expected ${JSON.stringify(byCustomer)}`);
  await rm(config.path as string, { recursive: true, force: true });
  return problems.map((p) => `seed ${seed}: ${p}`);
}

const SEEDS = Number(process.env.PROBE9_SEEDS ?? 8);
const FIRST_SEED = Number(process.env.PROBE9_FIRST_SEED ?? 1);
/** Transactions per history (more for longer sweeps: `PROBE9_SEEDS=200 PROBE9_TRANSACTIONS=40`). */
const TRANSACTIONS = Number(process.env.PROBE9_TRANSACTIONS ?? 25);

for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
  it(`seed ${seed}: a random CDC history with crashes, replays and compactions reads back as the model table`, async () => {
    expect(await checkSeed(seed, TRANSACTIONS)).toEqual([]);
  }, 60_000);
}

/**
 * Retention between a crash and its resume (a cutoff moving forward, at commit times of
 * records already delivered), then once more after the last, completed session. Retention
 * removes rows legitimately, so the checks are narrower: (a) no event id stored twice; (b)
 * the stored rows are the expected rows from the cutoff on, each once — but for a delete
 * whose entity had no row from the cutoff until it (its rows expired before it was written:
 * refused, or dropped when synthesized for a move, or stored when written before the
 * retention; refused records are deletes only); (c) point-in-time reads at the end return the
 * model table's rows changed from the cutoff on (customer and `v`; `big` may be in expired rows).
 */
async function checkSeedWithRetention(seed: number, transactions: number): Promise<string[]> {
  const history = generateHistory(seed, transactions);
  const { expected, expectedTimes } = expectedRows(history);
  const plans = planCdcDelivery(seed, history.records);
  const r = modelRandom(seed ^ 0x2545f491);
  const config = { path: join(root, `retention-${seed}`) };
  const refused: RecordData[] = [];
  let cutoffMs = -Infinity;
  let sent = 0;
  const retention = async (): Promise<void> => {
    coverage.retentions += (await applyRetention(config, { before: cutoffMs, graceMs: 0 })).rowsRemoved > 0 ? 1 : 0;
  };
  for (const plan of plans) {
    await runSession(config, plan, refused);
    for (const batch of plan.batches) for (const record of batch) sent = Math.max(sent, history.records.indexOf(record) + 1);
    if (plan.compactAfter) await compactLake(config, { minFiles: 2, graceMs: 0 });
    if (r.chance(plan.completed ? 0.15 : 0.7)) {
      const times = history.records.slice(0, sent).map((x) => x._tributary_commit_time).filter((t): t is string => typeof t === 'string');
      if (times.length === 0) continue;
      cutoffMs = Math.max(cutoffMs, Date.parse(r.pick(times)));
      await retention();
    }
  }
  // At least once, and again after the last sync completed (files it deferred are removed now).
  if (cutoffMs === -Infinity) cutoffMs = history.versions[r.int(history.versions.length)]!.timeMs;
  await retention();
  const problems: string[] = [];
  const notDeletes = refused.filter((x) => x._tributary_op !== 'd');
  if (notDeletes.length > 0) problems.push(`refused records that are not deletes: ${JSON.stringify(notDeletes)}`);
  const stored = await readStreamRows(config, { stream: 'items' });
  const ids = new Map<string, number>();
  for (const row of stored) ids.set(row.event_id, (ids.get(row.event_id) ?? 0) + 1);
  const twice = [...ids].filter(([, n]) => n > 1);
  if (twice.length > 0) problems.push(`event ids stored more than once: ${JSON.stringify(twice)}`);
  const key = (x: readonly unknown[]): string => JSON.stringify(x);
  const got = new Map<string, number>();
  for (const row of stored) {
    const k = key([row.tenant_id, row.entity_key, String(row.source_position), row.op, row.customer_id]);
    got.set(k, (got.get(k) ?? 0) + 1);
  }
  const entity = (x: StoredRow): string => key([x[0], x[1]]);
  for (const [i, row] of expected.entries()) {
    const at = expectedTimes[i]!;
    const n = got.get(key(row)) ?? 0;
    got.delete(key(row));
    if (at < cutoffMs) {
      if (n > 0) problems.push(`expired row still stored: ${key(row)}`);
      continue;
    }
    // A delete whose entity had no row from the cutoff until it: its earlier rows may have expired before it was written.
    const orphan = row[3] === 'delete' && !expected.some((other, j) => j < i && entity(other) === entity(row) && expectedTimes[j]! >= cutoffMs);
    if (n > 1 || (n === 0 && !orphan)) problems.push(`row stored ${n} times: ${key(row)}`);
  }
  if (got.size > 0) problems.push(`rows stored that no change made: ${[...got.keys()].join(' ')}`);
  const lastChange = new Map<string, number>();
  for (const [i, row] of expected.entries()) lastChange.set(entity(row), expectedTimes[i]!);
  const finalTime = history.endMs;
  const read = sortRows((await readLatestAsOf(config, { stream: 'items', asOf: finalTime })).map((row) => [row.tenant_id, row.entity_key, row.customer_id, row.payload.v]));
  const oracle = sortRows(
    [...history.final.values()]
      .filter((row) => lastChange.get(key([row.tenant_id, String(row.id)]))! >= cutoffMs)
      .map((row) => [row.tenant_id, String(row.id), row.customer_id, row.v]),
  );
  if (key(read) !== key(oracle)) problems.push(`at the end: read ${key(read)}, table ${key(oracle)}`);
  await rm(config.path, { recursive: true, force: true });
  return problems.map((p) => `seed ${seed} (retention): ${p}`);
}

const RETENTION_SEEDS = Number(process.env.PROBE9_RETENTION_SEEDS ?? 4);

for (let seed = FIRST_SEED; seed < FIRST_SEED + RETENTION_SEEDS; seed++) {
  it(`seed ${seed}: retention between crashes and resumes removes expired rows only, and stores no replay twice`, async () => {
    expect(await checkSeedWithRetention(seed, TRANSACTIONS)).toEqual([]);
  }, 60_000);
}

it('the seeds exercised crashes, replays, compactions, key and tenant moves, left-out fields and retention', () => {
  if (process.env.PROBE9_DEBUG) console.log(JSON.stringify(coverage));
  if (SEEDS < 8 || RETENTION_SEEDS < 4) return;
  expect(coverage.crashes).toBeGreaterThan(SEEDS);
  expect(coverage.replayedRows).toBeGreaterThan(SEEDS * 5);
  expect(coverage.mergedFiles).toBeGreaterThan(SEEDS);
  expect(coverage.keyMoves).toBeGreaterThan(SEEDS);
  expect(coverage.tenantMoves).toBeGreaterThan(SEEDS / 2);
  expect(coverage.leftOut).toBeGreaterThan(SEEDS * 3);
  expect(coverage.retentions).toBeGreaterThan(RETENTION_SEEDS);
});
