/**
 * CDC updates that move a row to another primary key (PostgreSQL `UPDATE t SET id = 33
 * WHERE id = 4`: op `u`, the new row, `_tributary_before` holding the old key or the whole
 * old row). The old key is no longer a row of the source table, but nothing ended it in
 * the lake: point-in-time reads kept returning it beside the row under its new key.
 *
 * Each such update is preceded in its batch by a CDC delete of the old key, built as the
 * PostgreSQL source builds a delete (the before-image as the row, `_tributary_before` the
 * same image) at the update's position, commit time and txid, so that it takes the path of
 * any CDC delete: attribution of a missing customer id or tenant from the latest earlier
 * row of the old key (delete-attribution.ts), the envelope and its derived event id
 * (stream, old key, position, op `delete`: the same again when the change is replayed after
 * a crash, so the replay window recognises it), staging. It goes before the update so that
 * within the one position the update is the later row (`_tributary_ingest_seq`): a read
 * keyed by customer id, whose old and new rows share one customer, returns the update.
 *
 * A synthesized delete that cannot be stored because it still lacks its tenant or customer
 * id (its before-image does not hold them and its old key has no earlier row to take them
 * from: nothing live to end) is dropped without being quarantined or reported: the runtime
 * sent the update, which is stored or refused on its own. Refused for any other reason (it
 * fails the stream schema, a field does not fit its column, its tenant id is unusable…), it
 * is quarantined, its reason saying that it is the delete synthesized for the key move of
 * the update at that position, and counted among the stream's quarantined records, but not
 * reported to the runtime as a rejected record: it has no index in the runtime's batch
 * (see `addedRecordsOf`). Dropped, the old key would have stayed live in point-in-time reads
 * with nothing saying why. A delete whose before-image holds its tenant and customer id
 * (REPLICA IDENTITY FULL) needs no earlier row, so one refused is quarantined even when its
 * old key had none.
 *
 * With `event_id_field` set, the delete's event id is made from the update's, deterministic
 * (a replay gets it again) and not the update's own, in the form of the update's value so
 * that the field's column takes it: an integer id `n` gives `−n − 1` (an integer column
 * refused a string: the delete was lost), a text id the id plus `:moved-key-delete` (see
 * `movedKeyEventId`).
 *
 * An update that moved its key may leave fields out (`_tributary_unchanged`: under
 * REPLICA IDENTITY DEFAULT, PostgreSQL does not send a TOASTed column the update did not
 * change). Reads fill such fields from earlier rows of the same key, but the new key has
 * none: the value is in the old key's rows. So the update takes them from the latest
 * earlier row of the old key, the row its delete's attribution finds (`filledFromOldRow`),
 * and is stored complete. A replay after a crash takes the fill its first write stored (the
 * stored update's values, see session.ts `storedAttributions`): retention may have removed
 * the old row since, and the record, its event id and fingerprint, are the same again.
 *
 * A row moves too when an update keeps its key but changes its tenant, the tenant field
 * being outside the primary key (`UPDATE t SET tenant_id = 'beta' WHERE id = 4`, the stream
 * keyed by `id`): the lake partitions and reads by tenant and key, so the old tenant's row
 * of key 4 stayed live beside the new one. When the before-image holds the tenant field
 * (REPLICA IDENTITY FULL: the whole old row) and the old tenant, derived as the lake derives
 * a record's tenant (`tenantOf`: an empty or null tenant is `default_tenant`, `7` and `"7"`
 * one tenant), differs from the update's, the update is a move of the same key from the old
 * tenant (`tenantMovedFrom`), and takes the same path: the delete above, its event id
 * derived from the same key at the same position with op `delete` (not the update's), the
 * fill of fields the update left out from the key's latest earlier row (the old tenant's).
 * Under the default replica identity the before-image is absent (or the key alone): the old
 * tenant is unknown, and nothing is added. A constant tenant never moves.
 */
import { movedFromKey, type RecordData } from '@tributary/core';
import type { StreamMapping } from './config.js';
import { entityKeyOf, envelopeText, tenantOf } from './envelope.js';
import type { ColumnType } from './schema-registry.js';

/** A batch with the deletes of moved keys inserted (see `withKeyMoveDeletes`). */
export interface KeyMoveBatch {
  records: RecordData[];
  /** Index in the runtime's batch of each record of `records`; -1 for a synthesized delete. */
  origin: number[];
  /** Indices in `records` of the synthesized deletes. */
  synthesized: Set<number>;
}

/**
 * Suffix of the event id a synthesized delete gets on a stream whose event ids come from a
 * record text field (`event_id_field`): the update's id plus this, so that it is
 * deterministic and not the update's own.
 */
export const MOVED_KEY_EVENT_ID_SUFFIX = ':moved-key-delete';

const DECIMAL_INTEGER = /^-?[0-9]+$/;

/**
 * The event-id field value of the delete synthesized for an update whose field holds `id`,
 * on a stream whose event ids come from that field; undefined when `id` is no event id (the
 * update is then refused for it too). Deterministic, and never `id` itself. It takes the
 * form of `id`, so that the field's column stores it as it stores the update's:
 * - a number `n` (an integer or number column): `−n − 1` (an integer stays one, and a
 *   non-negative id gives a negative one, which no id of a sequence takes);
 * - a bigint, or decimal text in an integer or number column (`columnType`; PostgreSQL's
 *   int8 beyond ±2^53): `−n − 1` as the same kind (within a BIGINT's range whenever `n` is);
 * - other text: the id plus MOVED_KEY_EVENT_ID_SUFFIX.
 */
export function movedKeyEventId(id: unknown, columnType: ColumnType | undefined): unknown {
  if (envelopeText(id) === undefined) return undefined;
  if (typeof id === 'number') return -id - 1;
  if (typeof id === 'bigint') return -id - 1n;
  const text = id as string;
  if ((columnType === 'integer' || columnType === 'number') && DECIMAL_INTEGER.test(text)) return String(-BigInt(text) - 1n);
  return text + MOVED_KEY_EVENT_ID_SUFFIX;
}

/**
 * The CDC delete that ends the key `update` moved its row away from: the before-image's
 * fields (the old key, or the whole old row under REPLICA IDENTITY FULL), the update's CDC
 * position, txid and commit time, and its event-time field when the stream maps one (the
 * old row's value there would date the delete at the old row's time, hiding the key from
 * reads as of times it was still live). With `event_id_field`, its event id is made from
 * the update's (see `movedKeyEventId`; `typeOf`: the column type of a payload field).
 */
export function movedKeyDelete(update: RecordData, before: Record<string, unknown>, mapping: Pick<StreamMapping, 'eventTimeField' | 'eventIdField'>, typeOf: (field: string) => ColumnType | undefined = () => undefined): RecordData {
  // Spread defines own properties: a column named `__proto__` stays a field.
  const out: RecordData = { ...before };
  const define = (field: string, value: unknown): void => {
    Object.defineProperty(out, field, { value, writable: true, enumerable: true, configurable: true });
  };
  out._tributary_op = 'd';
  for (const field of ['_tributary_position', '_tributary_txid', '_tributary_commit_time'] as const) {
    if (Object.hasOwn(update, field)) out[field] = update[field];
  }
  out._tributary_before = before;
  if (mapping.eventTimeField !== undefined && Object.hasOwn(update, mapping.eventTimeField)) define(mapping.eventTimeField, update[mapping.eventTimeField]);
  if (mapping.eventIdField !== undefined) {
    const id = movedKeyEventId(update[mapping.eventIdField], typeOf(mapping.eventIdField));
    if (id !== undefined) define(mapping.eventIdField, id);
  }
  return out;
}

/**
 * Indices in `moves.records` of the synthesized deletes whose update (the next record) left
 * fields out (`_tributary_unchanged`): those that need the old key's latest row. Runs over
 * the moves only.
 */
export function oldRowsWanted(moves: KeyMoveBatch): Set<number> {
  const wanted = new Set<number>();
  for (const index of moves.synthesized) {
    const unchanged = moves.records[index + 1]?._tributary_unchanged;
    if (Array.isArray(unchanged) && unchanged.length > 0) wanted.add(index);
  }
  return wanted;
}

/**
 * The old key's row as the fill sees it: `value(field)` is the field's value, or undefined
 * when the row does not hold it (it lists the field as unchanged itself, or lacks it).
 */
export interface OldRow {
  value(field: string): { value: unknown } | undefined;
}

/**
 * The old row of a batch record: its own fields, but not those it left out itself.
 */
export function oldRowOfRecord(record: RecordData): OldRow {
  const unchanged = Array.isArray(record._tributary_unchanged) ? (record._tributary_unchanged as unknown[]) : [];
  return { value: (field) => (Object.hasOwn(record, field) && record[field] !== undefined && !unchanged.includes(field) ? { value: record[field] } : undefined) };
}

/**
 * The update (`_tributary_unchanged` listing fields it left out) with those fields the old
 * row holds set to its values, and only the others still listed (`_tributary_unchanged`
 * removed when none is left); a copy (the batch is the runtime's), or the update itself
 * when the old row holds none of them. A field the update does carry is left as it is.
 */
export function filledFromOldRow(update: RecordData, old: OldRow): RecordData {
  const listed = update._tributary_unchanged;
  if (!Array.isArray(listed)) return update;
  const still: unknown[] = [];
  const filled: Array<[string, unknown]> = [];
  for (const field of listed) {
    const found = typeof field === 'string' && !Object.hasOwn(update, field) ? old.value(field) : undefined;
    if (found === undefined) still.push(field);
    else filled.push([field as string, found.value]);
  }
  if (filled.length === 0) return update;
  const out: RecordData = { ...update };
  // Defined, not assigned: a field named `__proto__` would set the copy's prototype.
  for (const [field, value] of filled) Object.defineProperty(out, field, { value, writable: true, enumerable: true, configurable: true });
  if (still.length > 0) out._tributary_unchanged = still;
  else delete out._tributary_unchanged;
  return out;
}

/**
 * The before-image of a CDC update that kept its primary key (`movedFromKey` saw no move)
 * but moved its row to another tenant: the stream's tenant is a field, the image holds it
 * (REPLICA IDENTITY FULL) and every key field, and the old tenant (`tenantOf` over the
 * image: `default_tenant` applied, as to any record) is a tenant other than the update's
 * own; else undefined. Undefined also when either tenant is none (no row was stored under
 * the old one, or the update is refused for lacking one). A constant tenant never moves.
 * Allocates nothing; for an update under FULL that kept its tenant: one property test of
 * the image and two `tenantOf` reads.
 */
function tenantMovedFrom(record: RecordData, mapping: Pick<StreamMapping, 'tenant' | 'primaryKey'>): Record<string, unknown> | undefined {
  if (!('field' in mapping.tenant)) return undefined;
  const before = record._tributary_before;
  if (typeof before !== 'object' || before === null || Array.isArray(before)) return undefined;
  const image = before as Record<string, unknown>;
  // Under the default replica identity the image is the old key alone: the old tenant is unknown.
  const field = mapping.tenant.field;
  if (!Object.hasOwn(image, field) || image[field] === undefined) return undefined;
  const oldTenant = tenantOf(image, mapping);
  const newTenant = tenantOf(record, mapping);
  if (oldTenant === undefined || newTenant === undefined || oldTenant === newTenant) return undefined;
  // The delete is the image as a row: it must name the key (FULL's image always does).
  for (const path of mapping.primaryKey) {
    const value = keyValueAt(image, path);
    if (value === undefined || value === null) return undefined;
  }
  return image;
}

function keyValueAt(node: unknown, path: readonly string[]): unknown {
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * The before-image of a CDC update that moved its row: to another primary key
 * (`movedFromKey`), or to another tenant under the same key (`tenantMovedFrom`); else
 * undefined. Returns at its first check for every record but an update.
 */
function movedFrom(record: RecordData, mapping: StreamMapping): Record<string, unknown> | undefined {
  if (record._tributary_op !== 'u') return undefined;
  return movedFromKey(record, mapping.primaryKey) ?? tenantMovedFrom(record, mapping);
}

/**
 * `records` with, before each CDC update that moved its row to another primary key or (its
 * key kept) to another tenant, the delete of the old key in the old tenant (see
 * `movedKeyDelete`, `typeOf` as there); undefined when no record did (the common case:
 * then nothing is allocated). Per record: one `movedFrom` call, which returns at its first
 * check (`_tributary_op !== 'u'`) for every record but an update; for an update,
 * `movedFromKey` (returns at once without a before-image, else compares the key values)
 * and, when the key did not move, `tenantMovedFrom` (returns at once for a constant tenant
 * or without a before-image; with one, a property test and two tenant reads).
 */
export function withKeyMoveDeletes(records: readonly RecordData[], mapping: StreamMapping, typeOf?: (field: string) => ColumnType | undefined): KeyMoveBatch | undefined {
  const primaryKey = mapping.primaryKey;
  if (primaryKey.length === 0) return undefined;
  let first = -1;
  let firstBefore: Record<string, unknown> | undefined;
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (typeof record !== 'object' || record === null) continue;
    firstBefore = movedFrom(record, mapping);
    if (firstBefore !== undefined) {
      first = i;
      break;
    }
  }
  if (first < 0) return undefined;
  const out: KeyMoveBatch = { records: records.slice(0, first), origin: Array.from({ length: first }, (_, i) => i), synthesized: new Set() };
  for (let i = first; i < records.length; i++) {
    const record = records[i]!;
    const before = i === first ? firstBefore : typeof record === 'object' && record !== null ? movedFrom(record, mapping) : undefined;
    if (before !== undefined) {
      out.synthesized.add(out.records.length);
      out.records.push(movedKeyDelete(record, before, mapping, typeOf));
      out.origin.push(-1);
    }
    out.records.push(record);
    out.origin.push(i);
  }
  return out;
}

/** What the stage does with a record the session added to a batch when it cannot be stored (see `StreamStage.append`). */
export interface AddedRecord {
  /** Dropped, neither quarantined nor reported (a delete of a key with no earlier row: nothing live to end). */
  dropIfRefused: boolean;
  /** Said before the reason it was refused for, in the quarantine. */
  context: string;
}

/**
 * The synthesized deletes of `moves`, by index in `records` (the batch as it is staged:
 * `moves.records` after attribution), with what to do when one is refused: dropped when it
 * still lacks its customer id or tenant (`unattributed`: its old key has no earlier row to
 * take them from), else quarantined with a context naming the update it was made for. Runs
 * over the moves only.
 */
export function addedRecordsOf(moves: KeyMoveBatch, records: readonly RecordData[], mapping: StreamMapping, unattributed: (record: RecordData) => boolean): Map<number, AddedRecord> {
  const added = new Map<number, AddedRecord>();
  for (const index of moves.synthesized) {
    const record = records[index]!;
    added.set(index, { dropIfRefused: unattributed(record), context: moveContext(record, records[index + 1]!, moves.origin[index + 1]!, mapping) });
  }
  return added;
}

/**
 * How the quarantine names a synthesized delete: its old key and the update it was made
 * for, by the update's CDC position (else its event id, else its index in the runtime's
 * batch) and new key; for an update that kept its key and changed its tenant, the tenants.
 */
function moveContext(deleted: RecordData, update: RecordData, updateIndex: number, mapping: StreamMapping): string {
  const oldKey = entityKeyOf(deleted, mapping.primaryKey);
  const newKey = entityKeyOf(update, mapping.primaryKey);
  const position = envelopeText(update._tributary_position);
  const eventId = mapping.eventIdField !== undefined ? envelopeText(update[mapping.eventIdField]) : undefined;
  const at = position !== undefined ? `at position ${position}` : eventId !== undefined ? `with event id ${eventId}` : `at index ${updateIndex} of its batch`;
  const oldTenant = tenantOf(deleted, mapping);
  const newTenant = tenantOf(update, mapping);
  if (oldKey !== undefined && oldKey === newKey && oldTenant !== newTenant) {
    return `the delete of key ${oldKey} in tenant ${oldTenant ?? '(none)'} that the lake synthesized for the tenant move of the update ${at} (to tenant ${newTenant ?? '(none)'})`;
  }
  return `the delete of key ${oldKey ?? '(none)'} that the lake synthesized for the key move of the update ${at}${newKey !== undefined ? ` (to key ${newKey})` : ''}`;
}
