/**
 * The Redis layout of the feature store, shared by the writer and the lookup API.
 *
 * One hash per entity: `<prefix>:<tenant>:<entity type>:<entity id>` (each part with `%` and
 * `:` percent-encoded, so a part never spills into the next). One field per feature group G:
 *
 *   `g:G` = event time (15 chars) + expiry (15 chars) + order (optional, 23 chars)
 *           + body (the group's feature values, or a tombstone)
 *
 * - event time: epoch milliseconds, zero-padded to 15 characters (`-` then 14 digits when
 *   negative), so the write script reads it with one `string.sub`;
 * - expiry: when the group expires, epoch milliseconds, same format; 15 blanks when never;
 * - order (optional, 23 chars): `~` + the CDC log position (LSN `X/Y` as 16 hex digits, 8 per
 *   half, upper case; 16 blanks when the record has none) + the event time's fraction below
 *   the millisecond (6 digits, nanoseconds). Written only when the record has either; it
 *   decides between values the event time alone cannot order (see `ORDER_SEGMENT` below);
 * - body: `#` + a shape id (16 chars) + the values, binary (value-codec.ts), in the order
 *   of the shape's feature names, which the registry hash `<prefix>:feature-shapes` holds
 *   (see shapes.ts); or one JSON object, feature name → value (written for streams with too
 *   many shapes, and by versions before shapes; always readable); or `-` alone, a
 *   tombstone: the group was deleted (a CDC delete, `_tributary_op` `d`) at this event time
 *   and order. A tombstone is ordered like any value (so an older write arriving late never
 *   brings the group back, and a newer one replaces it), expires like the group's values,
 *   and reads as an absent group (`deleted` in `DecodedGroup`). Readers before tombstones
 *   skip it as a value not in the layout, i.e. also as absent.
 *
 * A group is always written and replaced as a whole, and its event time decides whether a
 * write wins, so everything of a group is one field: the write script reads it with one
 * `HGET` and replaces it with one `HSET`, and a lookup decodes one field per group. (Three
 * fields per group — values, time, expiry — cost the write script an `HMGET`, whose array
 * reply Lua turns into a table: 6.6 µs of server time per record against 4.0 µs for this
 * layout, measured with `INFO commandstats` over 200,000 records.)
 */

import { hasLoneSurrogate, nanosBelowMillisecond } from '@tributary/core';
import { readValues } from './value-codec.js';

export function encodeKeyPart(part: string): string {
  // Most parts need no encoding: one pass over the characters finds out (cheaper per record
  // than two indexOf calls, which cost more than the two regex passes they skip). The
  // surrogate test costs one more comparison per character of an ASCII part.
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    if (c === 37 /* % */ || c === 58 /* : */ || (c >= 0xd800 && c <= 0xdfff)) return escapeKeyPart(part);
  }
  return part;
}

/** A lone UTF-16 surrogate: a high one not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * `%` → `%25`, `:` → `%3A`, and each lone surrogate → `%u` + its 4 hex digits (upper case).
 * Why the surrogates: keys go to Redis as UTF-8, which cannot carry a lone surrogate — it
 * became U+FFFD, so ids such as "a\ud800" and "a\udfff" (and "a\ufffd") shared one hash and
 * overwrote each other's features, and a lookup of one served another's. `%` never stands
 * for itself in an encoded part, so every escape is unambiguous (`decodeKeyPart`).
 */
function escapeKeyPart(part: string): string {
  const escaped = part.replace(/%/g, '%25').replace(/:/g, '%3A');
  return hasLoneSurrogate(escaped) ? escaped.replace(LONE_SURROGATE, (s) => `%u${s.charCodeAt(0).toString(16).toUpperCase()}`) : escaped;
}

/** The text of a key part (`encodeKeyPart` reversed). */
export function decodeKeyPart(part: string): string {
  return part.replace(/%(25|3A|u[0-9A-F]{4})/g, (_, code: string) => (code === '25' ? '%' : code === '3A' ? ':' : String.fromCharCode(parseInt(code.slice(1), 16))));
}

export function entityKey(prefix: string, tenant: string, entityType: string, entityId: string): string {
  return `${prefix}:${encodeKeyPart(tenant)}:${encodeKeyPart(entityType)}:${encodeKeyPart(entityId)}`;
}

/**
 * The head of the entity keys of one entity type — `<prefix>:<tenant>:<entity type>:`,
 * encoded — per tenant: the fixed parts are encoded once and the (few) tenants' heads are
 * remembered. A key is its head followed by `encodeKeyPart(entity id)`; the writer writes
 * the two parts side by side, never joining them into one string (see encoded-ops.ts).
 */
export function entityKeyHeads(prefix: string, entityType: string): (tenant: string) => string {
  const typePart = `:${encodeKeyPart(entityType)}:`;
  const tenants = new Map<string, string>();
  return (tenant) => {
    let head = tenants.get(tenant);
    if (head === undefined) {
      head = `${prefix}:${encodeKeyPart(tenant)}${typePart}`;
      if (tenants.size < 10_000) tenants.set(tenant, head);
    }
    return head;
  };
}

/**
 * The set of feature groups with a TTL ever written to an entity type (see write-script.ts).
 * Two parts after the prefix, so it never matches an entity key (three parts, none with `:`).
 */
export function ttlRegistryKey(prefix: string, entityType: string): string {
  return `${prefix}:ttl-groups:${encodeKeyPart(entityType)}`;
}

/** Pattern for SCAN over every entity of one type of one tenant. */
export function entityKeyPattern(prefix: string, tenant: string, entityType: string): string {
  const glob = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&');
  return `${glob(prefix)}:${glob(encodeKeyPart(tenant))}:${glob(encodeKeyPart(entityType))}:*`;
}

/** The hash field of a feature group. */
export function groupField(group: string): string {
  return `g:${group}`;
}

/** Characters of each time slot at the head of a group's value. */
export const TIME_SLOT_WIDTH = 15;
/** Event times a slot can hold: about year −1199 to year 33658. Others are rejected by the writer. */
export const MIN_EVENT_TIME_MS = -(10 ** 14 - 1);
export const MAX_EVENT_TIME_MS = 10 ** 15 - 1;
const NO_EXPIRY = ' '.repeat(TIME_SLOT_WIDTH);

/** An epoch-ms time as a 15-character slot; the caller keeps it within MIN/MAX_EVENT_TIME_MS. */
export function encodeTimeSlot(ms: number): string {
  // Years 2001–2286 (13 digits), the common case, without padStart.
  if (ms >= 1e12 && ms < 1e13) return `00${ms}`;
  return ms < 0 ? `-${String(-ms).padStart(TIME_SLOT_WIDTH - 1, '0')}` : String(ms).padStart(TIME_SLOT_WIDTH, '0');
}

/**
 * Writes the 15 bytes of `encodeTimeSlot(ms)` at `offset` without building the string (the
 * writer does this once per record). Returns the offset after them.
 */
export function writeTimeSlot(out: Buffer, offset: number, ms: number): number {
  // Two halves below 2^31, so the digit loop runs on small integers (cheaper than
  // floating-point division by 10 on the whole 15-digit number).
  const abs = ms < 0 ? -ms : ms;
  let low = abs % 1e8;
  let high = (abs - low) / 1e8;
  for (let i = TIME_SLOT_WIDTH - 1; i >= TIME_SLOT_WIDTH - 8; i--) {
    out[offset + i] = 48 + (low % 10);
    low = (low / 10) | 0;
  }
  for (let i = TIME_SLOT_WIDTH - 9; i >= 0; i--) {
    out[offset + i] = 48 + (high % 10);
    high = (high / 10) | 0;
  }
  if (ms < 0) out[offset] = 45; // '-', in place of a leading zero (|ms| has at most 14 digits)
  return offset + TIME_SLOT_WIDTH;
}

/** A group's field value: event time slot, expiry slot (blank when none), then the body (see above). */
export function encodeGroupValue(eventTimeMs: number, expiresAtMs: number | undefined, body: string): string {
  return encodeTimeSlot(eventTimeMs) + (expiresAtMs === undefined ? NO_EXPIRY : encodeTimeSlot(expiresAtMs)) + body;
}

/** Where the order segment, when there is one, and else the body start in a field value. */
const BODY_START = 2 * TIME_SLOT_WIDTH;
/** Characters of a shape id (see shapes.ts). */
export const SHAPE_ID_LENGTH = 16;
/** The body of a tombstone (see above): `-`, nothing after it. */
export const TOMBSTONE_MARK = 0x2d;
export const TOMBSTONE_BODY: Buffer = Buffer.from([TOMBSTONE_MARK]);

/**
 * The order segment: which of two values of a group is newer, where event times in
 * milliseconds cannot tell. Contract (the write script applies it; it is the event lake's
 * point-in-time order, `readLatestAsOf`, so that both stores keep the same version):
 * 1. when both values carry a CDC log position, the higher position is newer — the source's
 *    own order of changes, which also orders two changes of one transaction (one commit
 *    time, one `now()`) and changes whose event time field runs backwards;
 * 2. else the later event time is newer, to the nanosecond: sources such as PostgreSQL keep
 *    microseconds, and two changes within one millisecond must not tie;
 * 3. equal (the same position, or no position and the same instant): the same position is
 *    the same change again, and the stored value stays; else a position beats none, and
 *    between two values without position the later applied wins unless it is a replay —
 *    the stored version again, or one it replaced (`sameTimeReplaces`; the write script).
 */
export const ORDER_MARK = 0x7e; // '~'
export const ORDER_SEGMENT_LENGTH = 1 + 16 + 6;
const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** A CDC log position (`X/Y`, hex halves) as 16 upper-case hex digits, else undefined. */
export function normalizeLsn(position: unknown): string | undefined {
  if (typeof position !== 'string') return undefined;
  const m = LSN_PATTERN.exec(position);
  return m ? m[1]!.toUpperCase().padStart(8, '0') + m[2]!.toUpperCase().padStart(8, '0') : undefined;
}

/**
 * Nanoseconds below the millisecond of an event time: of an ISO-8601 date-time, its 4th to
 * 9th fraction digits (`parseEventTime` keeps the first three); of an epoch-ms number, the
 * fraction to the microsecond the event lake stores (`lakeMicroseconds`). 0 when none.
 */
export function subMillisecondNanos(value: unknown): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) || !Number.isFinite(value)) return 0;
    const micros = lakeMicroseconds(value);
    return (micros - Math.floor(micros / 1000) * 1000) * 1000;
  }
  return typeof value === 'string' ? nanosBelowMillisecond(value) : 0;
}

/**
 * An epoch-ms number as the event lake stores it: whole microseconds, the number times 1000
 * rounded half to even (DuckDB's `CAST(DOUBLE AS BIGINT)`, which the lake applies to its
 * `event_time`). Two event times 0.5 ms apart are two microseconds there, so they must be two
 * versions here too (the writer truncated them to one millisecond, and kept the first one
 * written where the lake kept the later one).
 */
export function lakeMicroseconds(ms: number): number {
  const scaled = ms * 1000;
  const floor = Math.floor(scaled);
  const fraction = scaled - floor;
  if (fraction !== 0.5) return fraction < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The order segment of a value (see above), or undefined when it needs none (no position, a whole millisecond). */
export function encodeOrderSegment(lsn: string | undefined, nanos: number): Buffer | undefined {
  if (lsn === undefined && nanos === 0) return undefined;
  return Buffer.from(`~${lsn ?? ' '.repeat(16)}${String(nanos).padStart(6, '0')}`, 'latin1');
}

/** The nanoseconds of an order segment (`encodeOrderSegment`), 0 when there is none. */
export function orderSegmentNanos(order: Buffer | undefined): number {
  return order === undefined ? 0 : Number(order.toString('latin1', 17, ORDER_SEGMENT_LENGTH));
}

/** A value's place in the order above, for code that compares versions outside Redis (the parity check). */
export interface VersionOrder {
  eventTimeMs: number;
  /** `normalizeLsn` of its position, if any. */
  lsn: string | undefined;
  /** `subMillisecondNanos` of its event time. */
  nanos: number;
}

/** True when `a` is newer than `b`: the write script's `newer` (write-script.ts), in JS. */
export function isNewerVersion(a: VersionOrder, b: VersionOrder): boolean {
  if (a.lsn !== undefined && b.lsn !== undefined && a.lsn !== b.lsn) return a.lsn > b.lsn; // same length, hex digits: text order is numeric order
  if (a.eventTimeMs !== b.eventTimeMs) return a.eventTimeMs > b.eventTimeMs;
  return a.nanos > b.nanos;
}

/**
 * For two different values at the same place in the order above (neither `isNewerVersion`
 * than the other): true when `a`, applied after `b`, replaces it — the write script's rule.
 * Both with a CDC position (the same one): no, the same change again. One with a position:
 * when it is `a` (the event lake orders rows with a position first). Neither: yes — the
 * later version wins, as the later-ingested row does in the lake — unless `a` is a replay
 * of a version `b` replaced, which the script recognises and the caller must exclude.
 */
export function sameTimeReplaces(a: VersionOrder, b: VersionOrder): boolean {
  if (a.lsn !== undefined || b.lsn !== undefined) return a.lsn !== undefined && b.lsn === undefined;
  return true;
}

/**
 * The place in the order above of a stored field value (`isNewerVersion`), read from its
 * time slot and order segment; undefined when the value is not in this layout.
 */
export function versionOfValue(value: Buffer): VersionOrder | undefined {
  const eventTimeMs = readTimeSlot(value, 0);
  if (Number.isNaN(eventTimeMs)) return undefined;
  if (value[BODY_START] !== ORDER_MARK || value.length < BODY_START + ORDER_SEGMENT_LENGTH) return { eventTimeMs, lsn: undefined, nanos: 0 };
  const lsn = value[BODY_START + 1] === 32 /* blank: no position */ ? undefined : value.toString('latin1', BODY_START + 1, BODY_START + 17);
  return { eventTimeMs, lsn, nanos: Number(value.toString('latin1', BODY_START + 17, BODY_START + ORDER_SEGMENT_LENGTH)) };
}

/** Where the body starts in a field value: after the order segment when there is one. */
function bodyStart(value: string | Buffer): number {
  const mark = typeof value === 'string' ? value.charCodeAt(BODY_START) : value[BODY_START];
  return mark === ORDER_MARK ? BODY_START + ORDER_SEGMENT_LENGTH : BODY_START;
}

/** The shape id a field value's body names, or undefined when the body is not shaped (an object, or not ours). */
export function shapeIdInValue(value: string | Buffer): string | undefined {
  const start = bodyStart(value);
  if (typeof value === 'string') return value.charCodeAt(start) === 35 /* '#' */ ? value.slice(start + 1, start + 1 + SHAPE_ID_LENGTH) : undefined;
  return value[start] === 35 && value.length >= start + 1 + SHAPE_ID_LENGTH ? value.toString('latin1', start + 1, start + 1 + SHAPE_ID_LENGTH) : undefined;
}

/** The shapes a decoder can use, by id (a `ShapeTable` of shapes.ts). */
export interface ShapeLookup {
  get(id: string): { readonly names: readonly string[]; build(values: readonly unknown[]): Record<string, unknown> } | undefined;
}

/** One feature group as stored. */
export interface DecodedGroup {
  eventTimeMs: number;
  expiresAtMs: number | undefined;
  features: Record<string, unknown>;
  /** A tombstone: the group was deleted at `eventTimeMs` (features is empty). Readers treat it as absent. */
  deleted?: true;
}

/** The epoch ms of the time slot at `start` (as `encodeTimeSlot` writes it), NaN when it is not one. */
function readTimeSlot(value: Buffer, start: number): number {
  let n = 0;
  let i = start;
  const negative = value[i] === 45; /* '-' */
  if (negative) i++;
  for (; i < start + TIME_SLOT_WIDTH; i++) {
    const digit = value[i]! - 48;
    if (digit < 0 || digit > 9) return Number.NaN;
    n = n * 10 + digit;
  }
  return negative ? -n : n;
}

/** Values of the entity being decoded (the shape's constructor copies them out). */
const scratch: unknown[] = [];

/**
 * Decodes a group's field value; undefined when it is not in this layout (never written by
 * us). A tombstone decodes with `deleted: true` and no features: treat it as absent. Shaped
 * bodies are binary (value-codec.ts): read field values as bytes (a Buffer; with ioredis,
 * the `…Buffer` commands), since text decoding would corrupt them. A shaped body
 * needs its shape in `shapes` (load it first: `loadShapesFor`); without it this throws,
 * since the values cannot be named.
 */
export function decodeGroupValue(value: string | Buffer, shapes?: ShapeLookup): DecodedGroup | undefined {
  if (typeof value === 'string') {
    if (value.charCodeAt(bodyStart(value)) === 35) throw new Error('feature values with a shape are binary: read them as bytes (a Buffer), not text');
    value = Buffer.from(value, 'utf8');
  }
  const start = bodyStart(value);
  const mark = value[start];
  const tombstone = mark === TOMBSTONE_MARK && value.length === start + 1;
  if (!tombstone && (value.length < start + 2 || (mark !== 123 /* '{' */ && mark !== 35) /* '#' */)) return undefined;
  const eventTimeMs = readTimeSlot(value, 0);
  if (Number.isNaN(eventTimeMs)) return undefined;
  const expiresAtMs = value[TIME_SLOT_WIDTH] === 32 /* blank */ ? undefined : readTimeSlot(value, TIME_SLOT_WIDTH);
  if (expiresAtMs !== undefined && Number.isNaN(expiresAtMs)) return undefined;
  if (tombstone) return { eventTimeMs, expiresAtMs, features: {}, deleted: true };
  let features: Record<string, unknown>;
  if (mark === 35) {
    const valuesStart = start + 1 + SHAPE_ID_LENGTH;
    if (value.length < valuesStart) return undefined;
    const id = value.toString('latin1', start + 1, valuesStart);
    const shape = shapes?.get(id);
    if (shape === undefined) throw new Error(`feature shape ${id} is not loaded`);
    if (!readValues(value, valuesStart, value.length, shape.names.length, scratch)) return undefined;
    features = shape.build(scratch);
  } else {
    try {
      features = JSON.parse(value.toString('utf8', start)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  return { eventTimeMs, expiresAtMs, features };
}

export function decodeEntityHash(hash: Record<string, string | Buffer>, shapes?: ShapeLookup): Map<string, DecodedGroup> {
  const flat: (string | Buffer)[] = [];
  for (const field in hash) flat.push(field, hash[field]!);
  return decodeEntityFields(flat, shapes);
}

/** As `decodeEntityHash`, from HGETALL's raw reply: field, value, field, value, … Fields not in the layout are skipped. */
export function decodeEntityFields(flat: readonly (string | Buffer)[], shapes?: ShapeLookup): Map<string, DecodedGroup> {
  const groups = new Map<string, DecodedGroup>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const raw = flat[i]!;
    const field = typeof raw === 'string' ? raw : raw.toString('utf8');
    if (field.charCodeAt(0) !== 103 /* g */ || field.charCodeAt(1) !== 58 /* ':' */) continue;
    const group = decodeGroupValue(flat[i + 1]!, shapes);
    if (group) groups.set(field.slice(2), group);
  }
  return groups;
}
