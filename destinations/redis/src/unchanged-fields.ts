import type { RecordData } from '@tributary/core';
import type { StreamMapping } from './config.js';
import { decodeGroupValue, groupField, isNewerVersion, normalizeLsn, orderSegmentNanos, sameTimeReplaces, versionOfValue, type VersionOrder } from './layout.js';
import { forEachWrite } from './records.js';
import { encodeCommands, RedisReplyError, type RespConnection } from './resp-connection.js';
import { loadShapesFor, type ShapeTable } from './shapes.js';

/**
 * CDC updates that left columns out (`_tributary_unchanged`, see the Postgres source's
 * records.ts): PostgreSQL does not send a TOASTed column an update did not change, so the
 * record lacks it, and "a destination must keep their stored values". A group is written
 * and replaced as a whole (write-script.ts), so without this the update would drop those
 * features from Redis, while the event lake fills them from earlier rows (`fillUnchanged`
 * in its reader) — online and offline would disagree on a value nobody changed.
 */

/** True when a record omits columns an update did not change (a non-empty `_tributary_unchanged`). */
export function omitsUnchanged(record: RecordData): boolean {
  const unchanged = record._tributary_unchanged;
  return Array.isArray(unchanged) && unchanged.length > 0;
}

/**
 * The batch's records with each omitted unchanged field filled in from the version it
 * updates: per entity, the newest earlier version — in the write script's order
 * (`isNewerVersion`) — among the group's stored value and the batch's own records, filled
 * likewise, as the lake fills it from the latest earlier row that had the field. A field
 * that version lacks too (or a delete, or no earlier version) stays absent. Records that do
 * not omit fields, or get none filled, are returned as they are (the same objects); the
 * others as copies.
 *
 * An update that moved its row to another key (`forEachWrite`: it also ends the old key)
 * updates the row the OLD key held: its fields come first from the old key's version just
 * before the move — the version the move's tombstone follows — and only when the script
 * applies that tombstone (not when the old key's newest version is newer than the move or
 * as new, a replay, nor from a delete). Fields that version leaves missing (the old key
 * was never delivered, or its version lacks them) come from the new key's own version the
 * update follows, when it is live: the event lake's reads likewise walk the key's own earlier rows
 * back to its last delete (its reader's `walkHistory`), after the write-time fill from the
 * old key. This is the case of a PostgreSQL snapshot resumed outside the slot's snapshot:
 * it reads the moved row under its new key (an `r` at the committed position, with the
 * TOASTed column), the old key never, and then replays the move on top. It cannot fill
 * another row's value: PostgreSQL had no row under the new key when the move ran, so a row
 * it held before was deleted earlier in the stream's order, and that delete — streamed in
 * position order, in this batch or an acknowledged earlier one — made the new key's version
 * a tombstone, which fills nothing. A version of the new key that is newer than the move is
 * not one it follows: the script does not apply the move then, and nothing is filled.
 * A snapshot row read after later changes of the row may hold a later value than the move
 * did; those changes are replayed after the move and set it again, as for the row's other
 * columns (the resumed snapshot converges on the table, not through its exact history).
 *
 * Contract: the caller must have had every earlier batch of the stream acknowledged, so the
 * stored value read here is the one the update follows (batches in flight would not be in
 * it yet). Another writer of the same entity and group between this read and the write can
 * make a filled value stale: one writer per entity type and group, as with positions.
 * Costs one round trip (HGET per entity concerned, pipelined; plus one for shapes this
 * session has not read yet), only for batches holding such records.
 */
export async function fillUnchangedFields(
  connection: RespConnection,
  mapping: StreamMapping,
  keyHead: (tenant: string) => string,
  records: readonly RecordData[],
  shapes: { readonly registry: string; readonly table: ShapeTable },
): Promise<readonly RecordData[]> {
  // Every entity concerned: the key of each record that omits fields, and the old key of each such record that moved.
  const keys = new Set<string>();
  forEachWrite(records, mapping, keyHead, (head, tail, _eventTimeMs, _order, deleted, record) => {
    if (omitsUnchanged(record) && (!deleted || isMoveTombstone(record))) keys.add(head + tail);
  });
  if (keys.size === 0) return records;
  const chains = new Map<string, VersionChain>();
  for (const key of keys) chains.set(key, { versions: [], next: 0, current: undefined, busy: false });
  /** The old key of each record that omits fields and moved its row, by the record's index. */
  const movedFrom = new Map<number, string>();
  let lastTombstone: { index: number; key: string } | undefined;
  forEachWrite(records, mapping, keyHead, (head, tail, eventTimeMs, order, deleted, record, index) => {
    const key = head + tail;
    // A moved row's old key comes first, with the same index (`forEachWrite`).
    if (deleted && isMoveTombstone(record)) lastTombstone = { index, key };
    else if (lastTombstone?.index === index && omitsUnchanged(record)) movedFrom.set(index, lastTombstone.key);
    chains.get(key)?.versions.push({ index, order: { eventTimeMs, lsn: normalizeLsn(record._tributary_position), nanos: orderSegmentNanos(order) }, deleted });
  });

  // The stored value of each entity's group: the version the batch's first write of it follows.
  const keyList = [...chains.keys()];
  const field = groupField(mapping.group);
  const replies = await connection.send(encodeCommands(keyList.map((key) => ['HGET', key, field])), keyList.length, { bytes: true });
  const error = replies.find((r): r is RedisReplyError => r instanceof RedisReplyError);
  if (error) throw error;
  const stored = replies as (Buffer | null)[];
  await loadShapesFor(
    { hmget: async (key, ...ids) => (await connection.call('HMGET', key, ...ids)) as (string | null)[] },
    shapes.registry,
    shapes.table,
    stored.map((value) => (value === null ? [] : [field, value])),
  );
  keyList.forEach((key, k) => {
    const chain = chains.get(key)!;
    const value = stored[k];
    const decoded = value == null ? undefined : decodeGroupValue(value, shapes.table);
    const storedOrder = value == null ? undefined : versionOfValue(value);
    if (decoded !== undefined && storedOrder !== undefined) chain.current = { order: storedOrder, features: decoded.deleted ? undefined : decoded.features };
    // Oldest first (stable: among versions at one place in the order, the batch's order — the
    // later applied replaces the one before it, as in the script, unless it is a replay).
    chain.versions.sort((a, b) => (isNewerVersion(a.order, b.order) ? 1 : isNewerVersion(b.order, a.order) ? -1 : 0));
  });

  const out = records.slice();
  /** A moved row's old-key features just before its move, by the record's index: set when the script applies the move's tombstone. */
  const beforeMove = new Map<number, Record<string, unknown>>();
  /** Indexes of the moves whose old-key tombstone was walked past (applied or not). */
  const tombstonesWalked = new Set<number>();

  /**
   * Walks `key`'s versions in order, keeping its current version as the script would, up to
   * and including the tombstone that the move at `untilMove` (a record index) writes to it
   * (to the end when undefined). A moved record's new-key version first walks its old key up
   * to its tombstone. Chains at different keys are thus walked in step with the moves that
   * link them; a chain already being walked (a cycle, which ordered versions do not make) is
   * left as it is, and the record waiting on it unfilled.
   */
  const walk = (key: string, untilMove?: number): void => {
    const chain = chains.get(key)!;
    if (chain.busy || (untilMove !== undefined && tombstonesWalked.has(untilMove))) return;
    chain.busy = true;
    while (chain.next < chain.versions.length) {
      const v = chain.versions[chain.next++]!;
      const record = out[v.index]!;
      const isTombstoneOfMove = v.deleted && isMoveTombstone(record);
      if (isTombstoneOfMove) tombstonesWalked.add(v.index);
      if (!replacesCurrent(chain.current, v.order)) {
        if (isTombstoneOfMove && v.index === untilMove) break;
        continue;
      }
      if (v.deleted) {
        if (isTombstoneOfMove && omitsUnchanged(record) && chain.current?.features !== undefined) beforeMove.set(v.index, chain.current.features);
        chain.current = { order: v.order, features: undefined };
        if (isTombstoneOfMove && v.index === untilMove) break;
        continue;
      }
      let filled = record;
      if (omitsUnchanged(record)) {
        const oldKey = movedFrom.get(v.index);
        // A move: the old key's version just before it first, then the key's own (see above).
        if (oldKey !== undefined) {
          walk(oldKey, v.index);
          const before = beforeMove.get(v.index);
          if (before !== undefined) filled = withUnchangedFrom(filled, before);
        }
        const own = chain.current?.features;
        if (own !== undefined) filled = withUnchangedFrom(filled, own);
        if (filled !== record) out[v.index] = filled;
      }
      chain.current = { order: v.order, features: filled };
    }
    chain.busy = false;
  };
  for (const key of keyList) walk(key);
  return out;
}

/** One entity's versions (stored, then the batch's, oldest first) and how far `walk` got. */
interface VersionChain {
  readonly versions: { readonly index: number; readonly order: VersionOrder; readonly deleted: boolean }[];
  next: number;
  /** The newest version walked past that the script would keep: its place, and its features (none for a delete). */
  current: { order: VersionOrder; features: Record<string, unknown> | undefined } | undefined;
  busy: boolean;
}

/** True for the write `forEachWrite` makes as a delete from a CDC update: the tombstone of a moved row's old key. */
function isMoveTombstone(record: RecordData): boolean {
  return record._tributary_op === 'u';
}

/**
 * True when the script applies a version at `order` over `current`: it is newer, or as new
 * and replacing it (see `sameTimeReplaces`). Older, or the same CDC position again (a late
 * event, a replay): ignored.
 */
function replacesCurrent(current: { order: VersionOrder } | undefined, order: VersionOrder): boolean {
  if (current === undefined) return true;
  if (isNewerVersion(current.order, order)) return false;
  return isNewerVersion(order, current.order) || sameTimeReplaces(order, current.order);
}

/**
 * `record` with each field it lists in `_tributary_unchanged` and lacks taken from
 * `previous`, when that has it: a copy, or `record` itself when `previous` holds none of them.
 */
function withUnchangedFrom(record: RecordData, previous: Record<string, unknown>): RecordData {
  let filled: Record<string, unknown> | undefined;
  for (const name of record._tributary_unchanged as unknown[]) {
    if (typeof name !== 'string' || record[name] !== undefined || previous[name] === undefined) continue;
    filled ??= { ...record };
    filled[name] = previous[name];
  }
  return (filled ?? record) as RecordData;
}
