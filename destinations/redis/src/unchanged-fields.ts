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
 * not omit fields are returned as they are (the same objects); the others as copies.
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
  interface Version {
    readonly index: number;
    readonly order: VersionOrder;
    readonly deleted: boolean;
  }
  // Every mapped record of the entities concerned, with its place in the version order.
  const byKey = new Map<string, Version[]>();
  forEachWrite(records, mapping, keyHead, (head, tail, _eventTimeMs, _order, deleted, record) => {
    if (!deleted && omitsUnchanged(record) && !byKey.has(head + tail)) byKey.set(head + tail, []);
  });
  if (byKey.size === 0) return records;
  forEachWrite(records, mapping, keyHead, (head, tail, eventTimeMs, order, deleted, record, index) => {
    const versions = byKey.get(head + tail);
    versions?.push({ index, order: { eventTimeMs, lsn: normalizeLsn(record._tributary_position), nanos: orderSegmentNanos(order) }, deleted });
  });

  // The stored value of each entity's group: the version the batch's first update follows.
  const keys = [...byKey.keys()];
  const field = groupField(mapping.group);
  const replies = await connection.send(encodeCommands(keys.map((key) => ['HGET', key, field])), keys.length, { bytes: true });
  const error = replies.find((r): r is RedisReplyError => r instanceof RedisReplyError);
  if (error) throw error;
  const stored = replies as (Buffer | null)[];
  await loadShapesFor(
    { hmget: async (key, ...ids) => (await connection.call('HMGET', key, ...ids)) as (string | null)[] },
    shapes.registry,
    shapes.table,
    stored.map((value) => (value === null ? [] : [field, value])),
  );

  const out = records.slice();
  keys.forEach((key, k) => {
    let current: { order: VersionOrder; features: Record<string, unknown> | undefined } | undefined;
    const value = stored[k];
    const decoded = value == null ? undefined : decodeGroupValue(value, shapes.table);
    const storedOrder = value == null ? undefined : versionOfValue(value);
    if (decoded !== undefined && storedOrder !== undefined) current = { order: storedOrder, features: decoded.deleted ? undefined : decoded.features };
    // Oldest first (stable: among versions at one place in the order, the batch's order — the
    // later applied replaces the one before it, as in the script, unless it is a replay).
    const versions = byKey.get(key)!.sort((a, b) => (isNewerVersion(a.order, b.order) ? 1 : isNewerVersion(b.order, a.order) ? -1 : 0));
    for (const v of versions) {
      // Older than what precedes it, or as new and not replacing it (the same CDC position
      // again, see sameTimeReplaces): the script ignores it (a late event, a replay). As new
      // and replacing it (a position where the stored version has none): it follows it.
      if (current !== undefined && (isNewerVersion(current.order, v.order) || (!isNewerVersion(v.order, current.order) && !sameTimeReplaces(v.order, current.order)))) continue;
      if (v.deleted) {
        current = { order: v.order, features: undefined };
        continue;
      }
      let record = out[v.index]!;
      if (omitsUnchanged(record) && current?.features !== undefined) {
        const filled: Record<string, unknown> = { ...record };
        for (const name of record._tributary_unchanged as unknown[]) {
          if (typeof name === 'string' && filled[name] === undefined && current.features[name] !== undefined) filled[name] = current.features[name];
        }
        record = filled as RecordData;
        out[v.index] = record;
      }
      current = { order: v.order, features: record };
    }
  });
  return out;
}
