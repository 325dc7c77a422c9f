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
 * A synthesized delete that cannot be stored (its old key has no earlier row to take a
 * tenant or customer id from: nothing live to end) is dropped without being quarantined or
 * reported: the runtime sent the update, which is stored or refused on its own.
 *
 * An update that moved its key may leave fields out (`_tributary_unchanged`: under
 * REPLICA IDENTITY DEFAULT, PostgreSQL does not send a TOASTed column the update did not
 * change). Reads fill such fields from earlier rows of the same key, but the new key has
 * none: the value is in the old key's rows. So the update takes them from the latest
 * earlier row of the old key, the row its delete's attribution finds (`filledFromOldRow`),
 * and is stored complete. A replay finds the same row (it precedes the update's position),
 * so the filled record, and its event id and fingerprint, are the same again.
 */
import { movedFromKey, type RecordData } from '@tributary/core';
import type { StreamMapping } from './config.js';
import { envelopeText } from './envelope.js';

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
 * record field (`event_id_field`): the update's id plus this, so that it is deterministic
 * and not the update's own.
 */
export const MOVED_KEY_EVENT_ID_SUFFIX = ':moved-key-delete';

/**
 * The CDC delete that ends the key `update` moved its row away from: the before-image's
 * fields (the old key, or the whole old row under REPLICA IDENTITY FULL), the update's CDC
 * position, txid and commit time, and its event-time field when the stream maps one (the
 * old row's value there would date the delete at the old row's time, hiding the key from
 * reads as of times it was still live).
 */
export function movedKeyDelete(update: RecordData, before: Record<string, unknown>, mapping: Pick<StreamMapping, 'eventTimeField' | 'eventIdField'>): RecordData {
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
    const id = envelopeText(update[mapping.eventIdField]);
    if (id !== undefined) define(mapping.eventIdField, id + MOVED_KEY_EVENT_ID_SUFFIX);
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
 * `records` with, before each CDC update that moved its row to another primary key, the
 * delete of the old key (see `movedKeyDelete`); undefined when no record did (the common
 * case: then nothing is allocated). Per record: one `movedFromKey` call, which returns at
 * its first check (`_tributary_op !== 'u'`) for every record but an update, at its second
 * for an update without a before-image, and otherwise compares the key values.
 */
export function withKeyMoveDeletes(records: readonly RecordData[], mapping: StreamMapping): KeyMoveBatch | undefined {
  const primaryKey = mapping.primaryKey;
  if (primaryKey.length === 0) return undefined;
  let first = -1;
  let firstBefore: Record<string, unknown> | undefined;
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (typeof record !== 'object' || record === null) continue;
    firstBefore = movedFromKey(record, primaryKey);
    if (firstBefore !== undefined) {
      first = i;
      break;
    }
  }
  if (first < 0) return undefined;
  const out: KeyMoveBatch = { records: records.slice(0, first), origin: Array.from({ length: first }, (_, i) => i), synthesized: new Set() };
  for (let i = first; i < records.length; i++) {
    const record = records[i]!;
    const before = i === first ? firstBefore : typeof record === 'object' && record !== null ? movedFromKey(record, primaryKey) : undefined;
    if (before !== undefined) {
      out.synthesized.add(out.records.length);
      out.records.push(movedKeyDelete(record, before, mapping));
      out.origin.push(-1);
    }
    out.records.push(record);
    out.origin.push(i);
  }
  return out;
}
