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
