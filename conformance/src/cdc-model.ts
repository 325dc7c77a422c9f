import { seededRandom, type RecordData } from '@tributary/core';

/**
 * A seeded model of a PostgreSQL table under change data capture, for model-based tests of
 * destinations: a random change history, the table it leaves at every commit (the oracle),
 * and a random delivery of the history with crashes and replays.
 *
 * The table: `items (id integer primary key, tenant_id text, customer_id text, v integer,
 * big text[, updated_at timestamptz])`, ids 1..CDC_MODEL_IDS, tenants CDC_MODEL_TENANTS,
 * customers CDC_MODEL_CUSTOMERS; `big` is null, short, or longer than
 * CDC_MODEL_TOAST_THRESHOLD (then TOASTed). Every column is always set in a row.
 *
 * `generateCdcHistory(seed, options)` returns, for the same seed and options, the same
 * records on every machine, in the Tributary change format of the PostgreSQL source
 * (connectors/postgres/src/records.ts), in source order:
 * - a snapshot: op `r`, every column, all at one position (the slot's restart point), no
 *   txid, commit time or before-image;
 * - then `options.transactions` transactions, each of 1–3 changes at strictly increasing
 *   positions (`X/Y` hex, at least `minPositionGap` apart), sharing a txid and a commit time
 *   (commit times increase, from CDC_MODEL_FIRST_COMMIT_MS on; some gaps are ~20 hours):
 *   inserts (`c`), updates (`u`), deletes (`d`), key moves (a `u` changing `id`, sometimes
 *   `tenant_id` with it) and tenant moves (a `u` changing `tenant_id` only).
 * - An update or move whose `big` is TOASTed and unchanged leaves `big` out and lists it in
 *   `_tributary_unchanged`; no other record has `_tributary_unchanged`.
 * - The replica identity is one of `options.identities` (the first at the start; before each
 *   transaction it moves to the next, cyclically, with `identitySwitchChance`). It decides
 *   `_tributary_before` and a delete's columns: `full` the whole old row; `index` (a unique
 *   index on (id, tenant_id)) the old `id` and `tenant_id`; `default` the old `id` alone. A
 *   delete carries exactly its before-image's columns. A plain update has a before-image
 *   under `full` only (null otherwise); a move always has one. Tenant moves happen only
 *   while the identity carries the tenant (`full` or `index`).
 * - With `updatedAt`, `updated_at` (ISO 8601) is the event time the application sets:
 *   snapshot rows are dated a day or two before the first commit; a written row usually gets
 *   its commit time, but an update or move sometimes keeps the old value and some rows are
 *   back-dated by a day or two. Stores must order versions by position, not by it.
 *
 * The oracle: `history.versions[i]` is the table after transaction i (its commit time, the
 * number of records up to it, the rows by id), `history.snapshot` the table before any
 * commit, `tableAsOf(history, t)` the table a point-in-time read as of `t` must return (the
 * last version committed at or before `t`). `history.changes` lists, per record and in order,
 * the rows a store keyed by (tenant, id) keeps: the written row (`snapshot`, `insert`,
 * `update`), the ended row (`delete`) — a key or tenant move gives the `delete` of the old
 * (tenant, id) first, then the `update` — with the commit time (snapshot: -Infinity).
 * `bigFromOtherTenant` names the live ids whose current `big` was last sent in full by a row
 * of another tenant (moved since with `big` left out): a read restricted to the row's tenant
 * cannot fill it.
 *
 * `planCdcDelivery(seed, records)` splits records into sessions: random batches, commits after
 * some, up to 12 sessions crash (`completed: false`, sometimes with uncommitted batches at
 * their end); the next session resumes at a random point between the last completed
 * session's end (the checkpoint) and what the crash committed, so it replays stored records.
 * The last session completes, and every record is delivered by a completed or committed
 * session at least once. `compactAfter` suggests compacting after a session.
 */

/** Tenants, customers and the id range of the model table. */
export const CDC_MODEL_TENANTS: readonly string[] = ['t1', 't2', 't3'];
export const CDC_MODEL_CUSTOMERS: readonly string[] = ['c1', 'c2', 'c3', 'c4'];
export const CDC_MODEL_IDS = 12;
/** Longer than this, `big` is TOASTed: an update that does not change it leaves it out. */
export const CDC_MODEL_TOAST_THRESHOLD = 100;
/** The commit time of the first transaction is after this; snapshot rows are before it. */
export const CDC_MODEL_FIRST_COMMIT_MS = Date.parse('2031-03-01T00:00:00Z');

/** A row of the model table; `updated_at` only with the `updatedAt` option. */
export interface CdcModelRow {
  id: number;
  tenant_id: string;
  customer_id: string;
  v: number;
  big: string | null;
  updated_at?: string;
}

/** The old row's columns a change carries: all (`full`), `id` and `tenant_id` (`index`), `id` (`default`). */
export type CdcReplicaIdentity = 'default' | 'full' | 'index';

export interface CdcHistoryOptions {
  /** Transactions after the snapshot. */
  transactions: number;
  /** The replica identities the table switches between; the first is the one at the start. */
  identities: readonly [CdcReplicaIdentity, ...CdcReplicaIdentity[]];
  /** The chance, before each transaction, of switching to the next identity (default 0.15). */
  identitySwitchChance?: number;
  /** Whether the table has `updated_at` (default false). */
  updatedAt?: boolean;
  /** The least difference between two changes' positions (default 1; 2 leaves room for a position between them). */
  minPositionGap?: number;
}

/** The table at one point of the history. */
export interface CdcTableVersion {
  /** Its commit time (the snapshot's: -Infinity). */
  timeMs: number;
  /** The number of records up to it. */
  records: number;
  /** The live rows by id. */
  table: ReadonlyMap<number, CdcModelRow>;
  /** Live ids whose `big` only rows of another tenant hold (see the header). */
  bigFromOtherTenant: ReadonlySet<number>;
}

/** A row a store keyed by (tenant, id) keeps for a record (see the header). */
export interface CdcEntityChange {
  op: 'snapshot' | 'insert' | 'update' | 'delete';
  /** The row written, or for `delete` the row ended. */
  row: CdcModelRow;
  position: string;
  /** The record's commit time; -Infinity for the snapshot. */
  commitMs: number;
}

export interface CdcHistory {
  records: RecordData[];
  snapshot: CdcTableVersion;
  /** After each transaction, in commit order. */
  versions: CdcTableVersion[];
  /** The table after the last transaction. */
  final: ReadonlyMap<number, CdcModelRow>;
  changes: CdcEntityChange[];
  /** An hour after the last commit. */
  endMs: number;
}

/** A seeded stream of random choices (mulberry32, `seededRandom` of @tributary/core). */
export interface ModelRandom {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

export function modelRandom(seed: number): ModelRandom {
  const next = seededRandom(seed);
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, chance: (p) => next() < p, pick: (items) => items[int(items.length)]! };
}

/** The table a point-in-time read as of `timeMs` must return: the last version committed at or before it. */
export function tableAsOf(history: CdcHistory, timeMs: number): CdcTableVersion {
  let version = history.snapshot;
  for (const v of history.versions) {
    if (v.timeMs > timeMs) break;
    version = v;
  }
  return version;
}

/** Generates a history (see the header). */
export function generateCdcHistory(seed: number, options: CdcHistoryOptions): CdcHistory {
  const r = modelRandom(seed);
  const withUpdatedAt = options.updatedAt ?? false;
  const gap = options.minPositionGap ?? 1;
  let bigs = 0;
  const newBig = (): string | null => {
    const kind = r.int(4);
    if (kind === 0) return null;
    const tag = `b${seed}-${++bigs}:`;
    return kind === 1 ? tag : tag + 'x'.repeat(CDC_MODEL_TOAST_THRESHOLD + r.int(50));
  };
  const toasted = (big: string | null): boolean => big !== null && big.length > CDC_MODEL_TOAST_THRESHOLD;
  let hi = 0;
  let lo = 0x100;
  const nextPosition = (): string => {
    if (r.chance(0.05)) {
      hi += 1;
      lo = r.int(0x20);
    }
    lo += gap + r.int(0x61 - gap);
    return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
  };
  const table = new Map<number, CdcModelRow>();
  const records: RecordData[] = [];
  const changes: CdcEntityChange[] = [];
  const crossTenant = new Set<number>();
  let commitMs = -Infinity;
  const store = (row: CdcModelRow, position: string, op: CdcEntityChange['op']): void => {
    changes.push({ op, row, position, commitMs });
  };

  const restart = nextPosition();
  for (let i = 0, n = 2 + r.int(5); i < n; i++) {
    const id = 1 + r.int(CDC_MODEL_IDS);
    if (table.has(id)) continue;
    const updatedAt = withUpdatedAt ? new Date(CDC_MODEL_FIRST_COMMIT_MS - 86_400_000 - r.int(86_400_000)).toISOString() : undefined;
    const row: CdcModelRow = { id, tenant_id: r.pick(CDC_MODEL_TENANTS), customer_id: r.pick(CDC_MODEL_CUSTOMERS), v: r.int(1000), big: newBig() };
    if (updatedAt !== undefined) row.updated_at = updatedAt;
    table.set(id, row);
    records.push({ ...row, _tributary_op: 'r', _tributary_position: restart, _tributary_txid: null, _tributary_commit_time: null, _tributary_before: null });
    store(row, restart, 'snapshot');
  }
  const snapshot: CdcTableVersion = { timeMs: -Infinity, records: records.length, table: new Map(table), bigFromOtherTenant: new Set() };
  const versions: CdcTableVersion[] = [];
  let identityIndex = 0;
  let timeMs = CDC_MODEL_FIRST_COMMIT_MS;
  for (let t = 0; t < options.transactions; t++) {
    if (r.chance(options.identitySwitchChance ?? 0.15)) identityIndex = (identityIndex + 1) % options.identities.length;
    const identity = options.identities[identityIndex]!;
    timeMs += r.chance(0.2) ? 20 * 3_600_000 + r.int(3_600_000) : 1000 + r.int(600_000);
    const commitTime = new Date(timeMs).toISOString();
    commitMs = timeMs;
    const txid = 1000 + t;
    const change = (fields: Record<string, unknown>, op: string, before: Record<string, unknown> | null, unchanged: string[], position: string): RecordData => ({
      ...fields,
      _tributary_op: op,
      _tributary_position: position,
      _tributary_txid: txid,
      _tributary_commit_time: commitTime,
      _tributary_before: before,
      ...(unchanged.length > 0 ? { _tributary_unchanged: unchanged } : {}),
    });
    /** The new row as the update sends it: `big` left out when TOASTed and unchanged. */
    const sent = (row: CdcModelRow, bigChanged: boolean): { fields: Record<string, unknown>; unchanged: string[] } => {
      if (!bigChanged && toasted(row.big)) {
        const { big: _big, ...rest } = row;
        return { fields: rest, unchanged: ['big'] };
      }
      return { fields: { ...row }, unchanged: [] };
    };
    /** Sets `updated_at` of a row written now (with the option): usually the commit time, sometimes kept or back-dated. */
    const stamp = (row: CdcModelRow, old?: CdcModelRow): CdcModelRow => {
      if (!withUpdatedAt) return row;
      const kept = old !== undefined && r.chance(0.25) ? old.updated_at : undefined;
      row.updated_at = kept ?? (r.chance(0.1) ? new Date(timeMs - 86_400_000 - r.int(86_400_000)).toISOString() : commitTime);
      return row;
    };
    const oldImage = (row: CdcModelRow): Record<string, unknown> => (identity === 'full' ? { ...row } : identity === 'index' ? { id: row.id, tenant_id: row.tenant_id } : { id: row.id });
    for (let c = 0, n = 1 + r.int(3); c < n; c++) {
      const position = nextPosition();
      const live = [...table.keys()].sort((a, b) => a - b);
      const free = Array.from({ length: CDC_MODEL_IDS }, (_, i) => i + 1).filter((id) => !table.has(id));
      const roll = r.int(100);
      if (live.length === 0 || (roll < 20 && free.length > 0)) {
        const row = stamp({ id: r.pick(free), tenant_id: r.pick(CDC_MODEL_TENANTS), customer_id: r.pick(CDC_MODEL_CUSTOMERS), v: r.int(1000), big: newBig() });
        table.set(row.id, row);
        crossTenant.delete(row.id);
        records.push(change({ ...row }, 'c', null, [], position));
        store(row, position, 'insert');
      } else if (roll < 60) {
        const old = table.get(r.pick(live))!;
        const bigChanged = r.chance(0.3);
        const row = stamp({ ...old, v: old.v + 1 + r.int(10), customer_id: r.chance(0.1) ? r.pick(CDC_MODEL_CUSTOMERS) : old.customer_id, big: bigChanged ? newBig() : old.big }, old);
        table.set(row.id, row);
        const { fields, unchanged } = sent(row, bigChanged);
        if (unchanged.length === 0) crossTenant.delete(row.id);
        records.push(change(fields, 'u', identity === 'full' ? { ...old } : null, unchanged, position));
        store(row, position, 'update');
      } else if (roll < 75) {
        const old = table.get(r.pick(live))!;
        table.delete(old.id);
        crossTenant.delete(old.id);
        records.push(change(oldImage(old), 'd', oldImage(old), [], position));
        store(old, position, 'delete');
      } else if (roll < 90 && free.length > 0) {
        // Key move, sometimes with the tenant.
        const old = table.get(r.pick(live))!;
        const bigChanged = r.chance(0.2);
        const row = stamp({ ...old, id: r.pick(free), v: old.v + 1 + r.int(10), tenant_id: r.chance(0.2) ? r.pick(CDC_MODEL_TENANTS) : old.tenant_id, big: bigChanged ? newBig() : old.big }, old);
        table.delete(old.id);
        table.set(row.id, row);
        const wasCross = crossTenant.delete(old.id);
        const { fields, unchanged } = sent(row, bigChanged);
        if (unchanged.length > 0 && (wasCross || row.tenant_id !== old.tenant_id)) crossTenant.add(row.id);
        records.push(change(fields, 'u', oldImage(old), unchanged, position));
        store(old, position, 'delete');
        store(row, position, 'update');
      } else if (identity !== 'default') {
        // Tenant move: only an identity that carries the tenant sends the old one.
        const old = table.get(r.pick(live))!;
        const bigChanged = r.chance(0.2);
        const row = stamp({ ...old, v: old.v + 1 + r.int(10), tenant_id: r.pick(CDC_MODEL_TENANTS.filter((x) => x !== old.tenant_id)), big: bigChanged ? newBig() : old.big }, old);
        table.set(row.id, row);
        const { fields, unchanged } = sent(row, bigChanged);
        if (unchanged.length > 0) crossTenant.add(row.id);
        else crossTenant.delete(row.id);
        records.push(change(fields, 'u', oldImage(old), unchanged, position));
        store(old, position, 'delete');
        store(row, position, 'update');
      } else {
        c--;
      }
    }
    versions.push({ timeMs, records: records.length, table: new Map(table), bigFromOtherTenant: new Set(crossTenant) });
  }
  return { records, snapshot, versions, final: new Map(table), changes, endMs: timeMs + 3_600_000 };
}

/** One session of a delivery plan: its records in batches, the batches after which it commits, whether it completes. */
export interface CdcSessionPlan {
  batches: RecordData[][];
  commitAfter: Set<number>;
  completed: boolean;
  /** Whether to compact (merge small files) after the session, where the store has it. */
  compactAfter: boolean;
}

/** Plans the delivery of `records` over sessions with crashes and replays (see the header). */
export function planCdcDelivery(seed: number, records: readonly RecordData[]): CdcSessionPlan[] {
  const r = modelRandom(seed ^ 0x9e3779b9);
  const plans: CdcSessionPlan[] = [];
  let checkpoint = 0;
  let next = 0;
  /** The furthest record the crashed sessions since the last completed one committed. */
  let reached = 0;
  for (let s = 0; next < records.length || plans.length === 0 || !plans[plans.length - 1]!.completed; s++) {
    const crash = s < 12 && r.chance(0.4);
    const batches: RecordData[][] = [];
    const commitAfter = new Set<number>();
    let at = next;
    let committed = next;
    // A session reads a random stretch (all that is left when it completes the last time). One
    // that completes reads at least what the crashed ones stored: the source has them again.
    const stretch = Math.min(records.length, at + 1 + r.int(30));
    const end = crash ? stretch : r.chance(0.5) ? Math.max(stretch, reached) : records.length;
    while (at < end) {
      const size = Math.min(end - at, 1 + r.int(8));
      batches.push(records.slice(at, at + size));
      at += size;
      if (r.chance(0.5) || at === end) {
        // A crash loses the batches after its last commit: sometimes the last ones are never committed.
        if (crash && at === end && batches.length > 1 && r.chance(0.5)) break;
        commitAfter.add(batches.length - 1);
        committed = at;
      }
    }
    plans.push({ batches, commitAfter, completed: !crash, compactAfter: r.chance(0.3) });
    if (crash) {
      reached = Math.max(reached, committed);
      next = checkpoint + r.int(committed - checkpoint + 1);
    } else {
      checkpoint = at;
      next = at;
    }
  }
  return plans;
}

/** The stream-schema properties of the model table as the PostgreSQL source declares it in CDC mode: nullable columns and its change fields. */
export function cdcModelProperties(options: { updatedAt?: boolean } = {}): Record<string, Record<string, unknown>> {
  return {
    id: { type: 'integer' },
    tenant_id: { type: ['string', 'null'] },
    customer_id: { type: ['string', 'null'] },
    v: { type: ['integer', 'null'] },
    big: { type: ['string', 'null'] },
    ...(options.updatedAt === true ? { updated_at: { type: ['string', 'null'], format: 'date-time' } } : {}),
    _tributary_op: { type: 'string', enum: ['r', 'c', 'u', 'd', 't'] },
    _tributary_position: { type: 'string' },
    _tributary_txid: { type: ['integer', 'null'] },
    _tributary_commit_time: { type: ['string', 'null'] },
    _tributary_before: { type: ['object', 'null'] },
    _tributary_unchanged: { type: 'array', items: { type: 'string' } },
  };
}
