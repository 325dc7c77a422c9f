import { hash } from 'node:crypto';
import { hasLoneSurrogate, marksDeleted, nanosBelowMillisecond, parseDateTimeMs, stringifyJson, type RecordData } from '@tributary/core';
import type { EnvelopeOp, StreamMapping } from './config.js';
import { MAX_NAME_BYTES, tenantDirectoryTooLong } from './layout.js';

/** The envelope values of one record (payload columns are handled by the stream stage). */
export interface Envelope {
  eventId: string;
  /** The row's key for point-in-time reads: the primary key (one value as text, several as a JSON array), else the customer id. */
  entityKey: string;
  customerId: string;
  tenantId: string;
  eventTimeMs: number;
  op: EnvelopeOp;
  position: string | null;
  txid: string | null;
  /** JSON text of the CDC before-image, or null. */
  before: string | null;
  /** JSON text of `_tributary_unchanged` (columns an update did not send: keep their stored values), or null. */
  unchanged: string | null;
}

/**
 * A \u escape of an unpaired UTF-16 surrogate in JSON.stringify's output (which escapes
 * only those: a pair is written as it is), not preceded by an escaped backslash.
 */
const LONE_SURROGATE_ESCAPE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

/**
 * JSON text of a value as the lake stores it (DuckDB type JSON): JSON.stringify, with each
 * unpaired surrogate replaced by U+FFFD. JSON.stringify escapes one as `\udXXX`, which
 * DuckDB's JSON parser refuses, failing the whole COPY; a plain string column gets the
 * same U+FFFD from its UTF-8 conversion.
 */
export function jsonText(value: unknown): string {
  // stringifyJson: JSON.stringify, also for values nested deeper than it can recurse.
  const text = stringifyJson(value) ?? 'null';
  return text.includes('\\ud') ? text.replace(LONE_SURROGATE_ESCAPE, '$1\\ufffd') : text;
}

/** CDC sources' reserved fields (see the Postgres CDC source): op, position, txid, commit time, before-image. */
const CDC_OPS: Record<string, EnvelopeOp | 'truncate'> = { r: 'snapshot', c: 'insert', u: 'update', d: 'delete', t: 'truncate' };

/** An envelope text value (ids, tenant, position): a non-empty string, or a finite number or bigint as text; else undefined. */
export function envelopeText(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 ? value : undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return String(value);
  return undefined;
}

function valueAt(record: RecordData, path: readonly string[]): unknown {
  let node: unknown = record;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * Event times beyond JavaScript's date range (±8.64e15 ms: years −271821 to 275760). DuckDB
 * holds them in microseconds, a BIGINT that overflows a little further out, failing the
 * whole COPY: such a record is refused instead.
 */
const MAX_EVENT_TIME_MS = 8.64e15;

// Consecutive records often share a timestamp (one transaction, one page of events).
let lastText = '';
let lastMs = NaN;

/**
 * Epoch ms of an ISO-8601 string or an epoch-ms number; NaN when neither. A string's
 * fraction digits below the millisecond are kept (the lake stores microseconds, and
 * PostgreSQL prints them): `parseDateTimeMs`, like `Date.parse`, keeps three digits, so two
 * changes 0.5 ms apart had one event time and ordered by position instead of by time.
 */
export function parseEventTime(value: unknown): number {
  if (typeof value === 'number') return Number.isFinite(value) ? value : NaN;
  if (typeof value === 'string') {
    if (value !== lastText) {
      lastText = value;
      lastMs = parseTimeMs(value);
    }
    return lastMs;
  }
  return NaN;
}

/**
 * Epoch ms within which a double of milliseconds holds every microsecond (2^43 ms: years
 * 1691–2248; its step there is under half a microsecond).
 */
const MICROSECOND_EXACT_MS = 2 ** 43;

/**
 * Epoch ms of a date-time text, with its fraction's microseconds (see `parseEventTime`;
 * digits below the microsecond rounded); NaN when it is none. Outside years 1691–2248 a
 * double of ms cannot hold microseconds: there the digits below the millisecond are
 * dropped (the time is cut to its millisecond). Added anyway, they were rounded to the
 * double's step (up to 31 µs near year 9999), which could carry a time into the next
 * millisecond, second or day: `9999-12-31T23:59:59.999999Z` was stored as
 * `10000-01-01T00:00:00Z`, in another day's partition.
 */
export function parseTimeMs(text: string): number {
  const ms = parseDateTimeMs(text);
  if (Number.isNaN(ms) || !(Math.abs(ms) < MICROSECOND_EXACT_MS)) return ms;
  const nanos = nanosBelowMillisecond(text);
  return nanos === 0 ? ms : ms + Math.round(nanos / 1000) / 1000;
}

/**
 * The event time `toEnvelope` reads from a record itself (epoch ms): its event-time field,
 * else (no such field mapped) its CDC commit time; undefined when that is missing or
 * unreadable, or the record would take its ingest time. Stored with a quarantined record,
 * for retention to expire it by event time as it expires rows (see maintenance.ts). Runs for
 * refused records only.
 */
export function ownEventTimeMs(record: unknown, mapping: Pick<StreamMapping, 'eventTimeField'>): number | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const fields = record as Record<string, unknown>;
  const ms = parseEventTime(mapping.eventTimeField !== undefined ? fields[mapping.eventTimeField] : fields._tributary_commit_time);
  return Math.abs(ms) <= MAX_EVENT_TIME_MS ? ms : undefined;
}

/** The tenant a record belongs to under `mapping`: the stream's constant tenant, else its tenant field's text, else the fallback (`default_tenant`). */
export function tenantOf(record: RecordData, mapping: Pick<StreamMapping, 'tenant'>): string | undefined {
  if ('constant' in mapping.tenant) return mapping.tenant.constant;
  return envelopeText(record[mapping.tenant.field]) ?? mapping.tenant.fallback;
}

/** Tenant ids `unstorableTenant` passed, so that the tenants repeating record after record are checked once (bounded: cleared when full). */
const storableTenants = new Set<string>();
const STORABLE_TENANTS_KEPT = 4096;

/** Why a tenant id cannot be a partition of its own, if it cannot. */
function unstorableTenant(tenantId: string): string | undefined {
  // Its partition directory could not be created, failing the commit and every retry of it.
  if (tenantDirectoryTooLong(tenantId)) return `tenant id is too long for a partition directory: "tenant_id=" and the percent-encoded id must fit in ${MAX_NAME_BYTES} bytes (id of ${tenantId.length} characters starting ${JSON.stringify(tenantId.slice(0, 20))})`;
  // UTF-8 (Parquet strings, paths) has no form for an unpaired surrogate: each becomes U+FFFD,
  // so `a\ud800b` and `a\udc00b` were stored as one tenant, in one partition.
  if (hasLoneSurrogate(tenantId)) return `tenant id ${JSON.stringify(tenantId.slice(0, 40))} holds an unpaired UTF-16 surrogate, which UTF-8 cannot store: it would be stored as U+FFFD, the same tenant as any id differing only there`;
  return undefined;
}

/** Why a CDC delete lacking its customer id or tenant is quarantined (see delete-attribution.ts). */
const UNATTRIBUTED_DELETE =
  '; a CDC delete carries only the key columns under REPLICA IDENTITY DEFAULT, and no earlier row of its key is in the lake or this sync to take it from (REPLICA IDENTITY FULL sends every column)';

/**
 * The entity key `toEnvelope` gives a record with a primary key: one value as it is when
 * text, else JSON (several values: a JSON array of them). Undefined when a key field is
 * missing or null.
 */
export function entityKeyOf(record: RecordData, paths: readonly (readonly string[])[]): string | undefined {
  const values: unknown[] = [];
  for (const path of paths) {
    const v = valueAt(record, path);
    if (v === undefined || v === null) return undefined;
    values.push(v);
  }
  if (values.length === 0) return undefined;
  if (values.length > 1) return stringifyJson(values)!;
  return typeof values[0] === 'string' ? values[0] : stringifyJson(values[0])!;
}

/** An envelope to fill in, reused record after record (the stage copies its values out at once). */
export function emptyEnvelope(): Envelope {
  return { eventId: '', entityKey: '', customerId: '', tenantId: '', eventTimeMs: 0, op: 'snapshot', position: null, txid: null, before: null, unchanged: null };
}

/**
 * JSON text of a value that may hold a bigint (a value only an in-process source sends: JSON
 * has none): JSON.stringify's (`stringifyJson`), else — on the TypeError it throws for a
 * bigint — the text with each bigint as its digits in a string, and `bigints: true`.
 */
export function jsonTextAllowingBigints(value: unknown): { text: string | undefined; bigints: boolean } {
  try {
    return { text: stringifyJson(value), bigints: false };
  } catch (error) {
    if (!(error instanceof TypeError && error.message.includes('BigInt'))) throw error;
    return { text: JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? String(v) : v)), bigints: true };
  }
}

/**
 * Fills `out` with a record's envelope, or returns the reason it cannot be one (`out` is
 * then partly filled). The event id is deterministic: the configured id field, or SHA-256
 * of (stream, primary key, source position or cursor, op) — so the same change read again
 * after a crash gets the same id and the session drops it (when its content matches too:
 * two changes within one cursor value share the id, see ReplayWindow). Without a primary key, or
 * without a position (no cursor, no CDC position: a full refresh of a table that has no
 * updated-at), the whole record is hashed: identical records are one event, and a changed
 * record is a new one (keyed by its primary key alone, each re-read of an entity would get
 * the id of its first read, and a changed row would be dropped as a replay of it).
 * Allocates nothing for a record whose id, key and position are strings (the common case:
 * this runs once per record).
 */
export function toEnvelope(record: RecordData, mapping: StreamMapping, ingestMs: number, out: Envelope): string | undefined {
  const rawOp = record._tributary_op;
  let op: EnvelopeOp = mapping.defaultOp;
  /** The deletion time a `deleted_field` holds (HubSpot `archivedAt`, `_ab_cdc_deleted_at`), if any. */
  let deletedAt: unknown;
  if (rawOp !== undefined) {
    const mapped = typeof rawOp === 'string' ? CDC_OPS[rawOp] : undefined;
    if (mapped === undefined) return `unknown _tributary_op ${JSON.stringify(rawOp)} (expected r, c, u, d or t)`;
    if (mapped === 'truncate') return 'a CDC truncate carries no row: the envelope has no truncate op, so it is kept here for review (rows stored before it stay in the lake)';
    op = mapped;
  } else if (mapping.deletedField !== undefined) {
    const mark = record[mapping.deletedField];
    if (marksDeleted(mark)) {
      op = 'delete';
      if (typeof mark === 'string') deletedAt = mark;
    }
  }

  const tenantId = tenantOf(record, mapping);
  if (tenantId === undefined) return `no tenant id: field "${'field' in mapping.tenant ? mapping.tenant.field : ''}" is missing or empty (set default_tenant or streams.<stream>.tenant_id in the lake config)${op === 'delete' && rawOp !== undefined ? UNATTRIBUTED_DELETE : ''}`;
  if (!storableTenants.has(tenantId)) {
    const unfit = unstorableTenant(tenantId);
    if (unfit !== undefined) return unfit;
    if (storableTenants.size >= STORABLE_TENANTS_KEPT) storableTenants.clear();
    storableTenants.add(tenantId);
  }

  const customerId = envelopeText(record[mapping.customerIdField]);
  if (customerId === undefined) return `no customer id: field "${mapping.customerIdField}" is missing or empty${op === 'delete' && rawOp !== undefined ? UNATTRIBUTED_DELETE : ''}`;

  let eventTimeMs: number;
  if (mapping.eventTimeField !== undefined) {
    eventTimeMs = parseEventTime(record[mapping.eventTimeField]);
    // A delete dated by its deletion field needs no other time (as in the online store).
    if (Number.isNaN(eventTimeMs) && (deletedAt === undefined || Number.isNaN(parseEventTime(deletedAt)))) {
      return `event time field "${mapping.eventTimeField}" is missing or not an ISO-8601 date-time / epoch ms`;
    }
  } else {
    const commit = parseEventTime(record._tributary_commit_time);
    eventTimeMs = Number.isNaN(commit) ? ingestMs : commit;
  }
  // A delete happened when its deletion field says: archiving a HubSpot object does not move
  // its `updatedAt`, and the delete dated at the last update hid the object from reads as of
  // times it was still live.
  if (deletedAt !== undefined) {
    const at = parseEventTime(deletedAt);
    if (!Number.isNaN(at)) eventTimeMs = at;
  }
  if (!(Math.abs(eventTimeMs) <= MAX_EVENT_TIME_MS)) return `event time ${eventTimeMs} ms is outside the range of dates (±${MAX_EVENT_TIME_MS} ms from 1970)`;

  const cdcPosition = envelopeText(record._tributary_position);
  const cursor = mapping.cursorField ? valueAt(record, mapping.cursorField) : undefined;
  const position = cdcPosition ?? (cursor === undefined || cursor === null ? null : typeof cursor === 'string' ? cursor : stringifyJson(cursor)!);

  // The primary key: one value is kept as it is (no array); several make a JSON array.
  let entityKey = customerId;
  let single: unknown;
  let key: unknown[] | undefined;
  const paths = mapping.primaryKey;
  for (let i = 0; i < paths.length; i++) {
    const v = valueAt(record, paths[i]!);
    if (v === undefined || v === null) return `primary key field "${paths[i]!.join('.')}" is missing`;
    if (i === 0) single = v;
    else (key ??= [single]).push(v);
  }
  if (paths.length > 0) entityKey = key ? stringifyJson(key)! : typeof single === 'string' ? single : stringifyJson(single)!;
  let eventId: string | undefined;
  if (mapping.eventIdField !== undefined) {
    eventId = envelopeText(record[mapping.eventIdField]);
    if (eventId === undefined) return `event id field "${mapping.eventIdField}" is missing or empty`;
  } else {
    let identity: string;
    if (paths.length > 0 && position !== null) {
      identity = `${mapping.stream}\u0000${stringifyJson(key ?? [single])}\u0000${position}\u0000${op}`;
    } else {
      // A bigint (the payload stores it as a BIGINT) failed the whole batch of a stream without positions.
      identity = `${mapping.stream}\u0000${jsonTextAllowingBigints(record).text}`;
    }
    eventId = hash('sha256', identity, 'base64url').slice(0, 22);
  }

  const before = record._tributary_before;
  const unchanged = record._tributary_unchanged;
  out.eventId = eventId;
  out.entityKey = entityKey;
  out.customerId = customerId;
  out.tenantId = tenantId;
  out.eventTimeMs = eventTimeMs;
  out.op = op;
  out.position = position;
  out.txid = envelopeText(record._tributary_txid) ?? null;
  out.before = before === undefined || before === null ? null : jsonText(before);
  out.unchanged = Array.isArray(unchanged) && unchanged.length > 0 ? jsonText(unchanged) : null;
  return undefined;
}
