import type { RecordData } from '../protocol/messages.js';
import { stringifyJson } from './json-text.js';

function valueAt(node: unknown, path: readonly string[]): unknown {
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * The before-image of a CDC update that moved its row to another primary key (a PostgreSQL
 * `UPDATE … SET id = …`: `_tributary_op` `u`, with `_tributary_before` holding the old key),
 * else undefined. The old key is no longer a row of the table, so a keyed store must end it,
 * as a delete would: kept live, a point-in-time read or a feature lookup still returned the
 * row under its old key, beside the same row under its new one. Undefined also when the
 * before-image lacks a key field (nothing tells which key it was) or the stream has no
 * primary key. Shared by the destinations so that the event lake and the online store end
 * the same keys.
 */
export function movedFromKey(record: RecordData, primaryKey: readonly (readonly string[])[]): Record<string, unknown> | undefined {
  if (record._tributary_op !== 'u' || primaryKey.length === 0) return undefined;
  const before = record._tributary_before;
  if (typeof before !== 'object' || before === null || Array.isArray(before)) return undefined;
  let moved = false;
  for (const path of primaryKey) {
    const old = valueAt(before, path);
    if (old === undefined || old === null) return undefined;
    if (!moved && stringifyJson(old) !== stringifyJson(valueAt(record, path))) moved = true;
  }
  return moved ? (before as Record<string, unknown>) : undefined;
}
