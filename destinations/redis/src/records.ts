import { marksDeleted, movedFromKey, parseDateTimeMs, type RecordData, type RejectedRecord } from '@tributary/core';
import type { StreamMapping } from './config.js';
import { decodeKeyPart, encodeKeyPart, encodeOrderSegment, lakeMicroseconds, MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, normalizeLsn, subMillisecondNanos } from './layout.js';

/**
 * Event time in whole epoch ms: an ISO-8601 date-time string, or a finite number taken as
 * epoch milliseconds — a fraction of a millisecond is kept to the microsecond as the event
 * lake keeps it (`lakeMicroseconds`): this is its whole millisecond (rounded down), the rest
 * goes to the order segment (`subMillisecondNanos`). Anything else is undefined (the record
 * is then rejected, not guessed at).
 */
export function parseEventTime(value: unknown): number | undefined {
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return value;
    return Number.isFinite(value) ? Math.floor(lakeMicroseconds(value) / 1000) : undefined;
  }
  if (typeof value !== 'string' || value.length === 0) return undefined;
  const ms = parseDateTimeMs(value);
  return Number.isNaN(ms) ? undefined : ms;
}

function keyPart(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 ? value : undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * The tenant a record is stored under: its tenant field when that is a non-empty string or a
 * number, else `default_tenant` — so an empty tenant field ('') is the default tenant (there
 * is no empty tenant in a key). undefined when neither: the writer rejects the record. The
 * parity check selects tenants by this same rule.
 */
export function tenantOf(record: RecordData, mapping: StreamMapping): string | undefined {
  return keyPart(record[mapping.tenantField]) ?? mapping.defaultTenant;
}

/**
 * Maps each record of a batch to its write — entity key, event time, order segment (the CDC
 * position `_tributary_position` and the event time below the millisecond, which order
 * values the millisecond cannot: see `ORDER_MARK` in layout.ts), whether it is a delete —
 * and calls `each` with it and the record (whose features the caller encodes:
 * `createBodyEncoder`; a delete writes a tombstone instead, `TOMBSTONE_BODY`). The key comes
 * in two parts, its head (`entityKeyHeads`) and the encoded entity id, which make the key
 * when joined. A record without a usable entity id, tenant or event time is rejected with
 * the reason (the runtime quarantines and reports it); none is dropped.
 *
 * A CDC delete (`_tributary_op` `d`) usually carries only the key columns (PostgreSQL's
 * default replica identity), so no event time field: its event time is then its commit time
 * (`_tributary_commit_time`), as in the event lake for CDC streams. Its position orders it
 * among the other changes of the entity either way. Nor does it carry a tenant field outside
 * the key: when the stream's records have one (`tenantFieldDeclared`), such a delete is
 * rejected — its tenant is unknown, and `default_tenant` is not it.
 *
 * A CDC update that moved its row to another key (`movedFromKey` on `mapping.keyFields`: a
 * PostgreSQL `UPDATE … SET id = …`, whose `_tributary_before` holds the old key) also ends
 * the old key: `each` is first called for it as for a delete (a tombstone) at the update's
 * event time and order segment, with the same record and index, then for the update. The
 * old key's tenant is the before-image's tenant field when it has one (REPLICA IDENTITY
 * FULL, or a key that includes it), else the record's. The update is never rejected for its
 * old key: one without a usable entity id or tenant (nothing was stored under it) is not
 * ended; an update rejected for itself ends nothing.
 *
 * A CDC update that changed only the tenant, on a stream whose key leaves the tenant out
 * (`UPDATE … SET tenant_id = …` of a table keyed by `id`), moved the entity to another
 * tenant's key just the same: when its before-image holds the tenant field (REPLICA IDENTITY
 * FULL) and that tenant, as `tenantOf` stores it (an empty or null tenant is
 * `default_tenant`, 7 and "7" one tenant), is not the record's, the old tenant's entity ends
 * likewise. Under the default replica identity the before-image lacks the tenant (or is
 * null: the key did not change), and nothing is ended.
 */
export function forEachWrite(
  records: readonly RecordData[],
  mapping: StreamMapping,
  /** `entityKeyHeads(prefix, mapping.entityType)`. */
  keyHead: (tenant: string) => string,
  /** `tenant`: the key's tenant (`tenantOf` the record, or for a moved row's old key, see above). */
  each: (keyHead: string, keyTail: string, eventTimeMs: number, order: Buffer | undefined, deleted: boolean, record: RecordData, index: number, tenant: string) => void,
): RejectedRecord[] {
  const rejected: RejectedRecord[] = [];
  for (let index = 0; index < records.length; index++) {
    const record = records[index];
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      rejected.push({ index, reason: 'record is not a JSON object' });
      continue;
    }
    const entityId = keyPart(record[mapping.entityIdField]);
    if (entityId === undefined) {
      rejected.push({ index, reason: `entity id field "${mapping.entityIdField}" is missing, empty or not a string or number` });
      continue;
    }
    const op = record._tributary_op;
    const mark = op === undefined && mapping.deletedField !== undefined ? record[mapping.deletedField] : undefined;
    const deleted = op === 'd' || marksDeleted(mark);
    // A key-only delete lacks a tenant its stream's records carry: the entity's tenant is
    // unknown, and `default_tenant` would file the tombstone where nobody reads it (the entity
    // staying live in its own tenant, silently). Rejected instead, with the remedy.
    if (deleted && mapping.tenantFieldDeclared && record[mapping.tenantField] === undefined) {
      rejected.push({
        index,
        reason: `delete without its tenant field "${mapping.tenantField}" (a CDC delete under PostgreSQL's default replica identity carries only the key columns): the entity's tenant is unknown; give the table REPLICA IDENTITY FULL, or a replica identity whose key includes the tenant column`,
      });
      continue;
    }
    const tenant = tenantOf(record, mapping);
    if (tenant === undefined) {
      rejected.push({ index, reason: `tenant field "${mapping.tenantField}" is missing or empty and no default_tenant is configured` });
      continue;
    }
    let time = record[mapping.eventTimeField];
    // A delete happened when its deletion field says (HubSpot `archivedAt`: archiving does not move `updatedAt`), as in the event lake.
    if (typeof mark === 'string' && parseEventTime(mark) !== undefined) time = mark;
    const atCommit = deleted && (time === undefined || time === null);
    if (atCommit) time = record._tributary_commit_time;
    const eventTime = parseEventTime(time);
    if (eventTime === undefined) {
      rejected.push({
        index,
        reason: atCommit
          ? `delete without event time: event time field "${mapping.eventTimeField}" is missing and _tributary_commit_time is missing or not an ISO-8601 date-time`
          : `event time field "${mapping.eventTimeField}" is missing or not an ISO-8601 date-time or epoch milliseconds`,
      });
      continue;
    }
    if (eventTime < MIN_EVENT_TIME_MS || eventTime > MAX_EVENT_TIME_MS) {
      rejected.push({ index, reason: `${atCommit ? '_tributary_commit_time' : `event time field "${mapping.eventTimeField}"`} is outside the years −1199 to 33658 that the feature store holds` });
      continue;
    }
    const order = encodeOrderSegment(normalizeLsn(record._tributary_position), subMillisecondNanos(time));
    // Per record, for updates only: `movedFromKey`, which returns at once unless the record has
    // a before-image; with one and the key unchanged, `tenantMovedFrom`: one read of its tenant
    // field and, when present, one comparison of tenants (no allocation unless it moved).
    if (op === 'u') {
      const old = movedFrom(record, mapping, tenant);
      if (old !== undefined && (old.entityId !== entityId || old.tenant !== tenant)) each(keyHead(old.tenant), encodeKeyPart(old.entityId), eventTime, order, true, record, index, old.tenant);
    }
    each(keyHead(tenant), encodeKeyPart(entityId), eventTime, order, deleted, record, index, tenant);
  }
  return rejected;
}

/**
 * The tenant and entity id of the key a CDC update moved its row from (see `forEachWrite`),
 * or undefined when it did not move it or the before-image gives no usable key. The caller
 * still compares it with the record's key: `movedFromKey` tells 4 from "4", the key does not.
 */
function movedFrom(record: RecordData, mapping: StreamMapping, tenant: string): { tenant: string; entityId: string } | undefined {
  const before = movedFromKey(record, mapping.keyFields) ?? tenantMovedFrom(record, mapping, tenant);
  if (before === undefined) return undefined;
  const entityId = keyPart(before[mapping.entityIdField]);
  const oldTenant = before[mapping.tenantField] === undefined ? tenant : tenantOf(before, mapping);
  return entityId === undefined || oldTenant === undefined ? undefined : { tenant: oldTenant, entityId };
}

/**
 * The before-image of a CDC update that `movedFromKey` did not see move but that changed the
 * tenant (see `forEachWrite`): it holds the tenant field (REPLICA IDENTITY FULL: the whole
 * old row) with another tenant than `tenant` (the record's), compared as the writer stores
 * tenants (`tenantOf`); else undefined. `movedFromKey` compares the stream's key fields only,
 * which need not include the tenant: the default replica identity sends the old primary key
 * alone. Allocates nothing when the tenant did not change (every other update under FULL).
 * The event lake detects the same moves (its `tenantMovedFrom` in key-moves.ts), each store
 * comparing tenants as it stores them.
 */
function tenantMovedFrom(record: RecordData, mapping: StreamMapping, tenant: string): Record<string, unknown> | undefined {
  const before = record._tributary_before;
  if (typeof before !== 'object' || before === null || Array.isArray(before)) return undefined;
  const image = before as Record<string, unknown>;
  if (image[mapping.tenantField] === undefined) return undefined;
  const oldTenant = tenantOf(image, mapping);
  return oldTenant === undefined || oldTenant === tenant ? undefined : image;
}

/** The feature values a record stores (every field, or the mapping's `features`), as the lookup API returns them: JSON values. */
export function featureValues(record: RecordData, features: readonly string[] | undefined): Record<string, unknown> {
  // (fromEntries: a feature named __proto__ stays an own property.)
  const values = features ? Object.fromEntries(features.filter((name) => record[name] !== undefined).map((name) => [name, record[name]])) : record;
  return JSON.parse(JSON.stringify(values)) as Record<string, unknown>;
}

/** One record's write as the parity check sees it: entity key, event time, feature values (none for a delete). */
export interface MappedWrite {
  /** The record's index in the batch: a CDC update that moved its row has two writes (its old key's tombstone, then its own). */
  readonly index: number;
  readonly key: string;
  /** The tenant and entity id of the key, as the writer took them from the record (`tenantOf`), or from its before-image for a moved row's old key. */
  readonly tenant: string;
  readonly entityId: string;
  readonly eventTimeMs: number;
  /** The order segment the writer stores (layout.ts), undefined when none. */
  readonly order: Buffer | undefined;
  /** A delete: the writer stores a tombstone. */
  readonly deleted: boolean;
  readonly features: Record<string, unknown>;
}

/** The writes of a batch as objects (the parity check's form; the writer encodes them with `createOpsEncoder`). */
export function toOps(
  records: readonly RecordData[],
  mapping: StreamMapping,
  keyHead: (tenant: string) => string,
): { ops: MappedWrite[]; rejected: RejectedRecord[] } {
  const ops: MappedWrite[] = [];
  const rejected = forEachWrite(records, mapping, keyHead, (head, tail, eventTimeMs, order, deleted, record, index, tenant) =>
    ops.push({
      index,
      key: head + tail,
      tenant,
      entityId: decodeKeyPart(tail),
      eventTimeMs,
      order,
      deleted,
      features: deleted ? {} : featureValues(record, mapping.features),
    }),
  );
  return { ops, rejected };
}
