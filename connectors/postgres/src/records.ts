import { setOwnField, type RecordData } from '@tributary/core';
import type { JsonValue } from './schema/values.js';

/**
 * The Tributary change format (shared with the lake destination): the row's columns at top
 * level — for a delete the old image (key columns under REPLICA IDENTITY DEFAULT, every
 * column under FULL) — plus reserved fields:
 *
 * - `_tributary_op`: `r` snapshot read, `c` insert, `u` update, `d` delete, `t` truncate
 * - `_tributary_position`: the change's LSN (`X/Y`), distinct per change (the further rows of a
 *   WAL record that writes several are numbered on from its LSN, see `changePosition` in
 *   read-cdc.ts); snapshot rows carry the slot's restart_lsn, those of a table without a
 *   primary key each a position of their own below it (see SnapshotRowPositions)
 * - `_tributary_txid`: the transaction id (null for snapshot rows)
 * - `_tributary_commit_time`: the commit time, ISO-8601 (null for snapshot rows)
 * - `_tributary_before`: the old image (key columns or the full row), or null
 * - `_tributary_unchanged`: present only when an update left TOASTed columns unchanged and
 *   the server did not send them: those columns are absent from the record (never null);
 *   a destination must keep their stored values.
 *
 * Records are deterministic functions of the WAL: a change replayed after a crash is the
 * same JSON, so append-dedupe destinations drop the repeat.
 */
export type ChangeOp = 'r' | 'c' | 'u' | 'd' | 't';

export type Row = Record<string, JsonValue>;

/**
 * Sets `row[name]` as an own, enumerable data property (core's `setOwnField`). A column may be
 * named `__proto__`: a plain assignment (or an object literal key) of that name sets the
 * object's prototype instead, so the column vanished from records and schemas. Every place
 * that builds a row or a schema from column names goes through this (or `assignField`, chosen
 * once per table with `fieldSetter`) or through a literal with computed keys.
 */
export const defineField: <T>(row: Record<string, T>, name: string, value: T) => void = setOwnField;

/** A plain assignment: what `defineField` does for every name except `__proto__`. */
export function assignField<T>(row: Record<string, T>, name: string, value: T): void {
  row[name] = value;
}

/** The setter for rows of these columns: the plain assignment unless one is named `__proto__`. */
export function fieldSetter(names: readonly string[]): typeof defineField {
  return names.includes('__proto__') ? defineField : assignField;
}

export interface ChangeEvent {
  op: ChangeOp;
  namespace: string;
  table: string;
  after: Row | null;
  before: Row | null;
  position: string;
  txid: number | null;
  commitTime: string | null;
  unchanged?: string[];
}

export const CHANGE_FIELDS = {
  op: '_tributary_op',
  position: '_tributary_position',
  txid: '_tributary_txid',
  commitTime: '_tributary_commit_time',
  before: '_tributary_before',
  unchanged: '_tributary_unchanged',
} as const;

export const CHANGE_FIELDS_SCHEMA = {
  [CHANGE_FIELDS.op]: { type: 'string', enum: ['r', 'c', 'u', 'd', 't'] },
  [CHANGE_FIELDS.position]: { type: 'string', description: 'LSN of the change (X/Y)' },
  [CHANGE_FIELDS.txid]: { type: ['integer', 'null'] },
  [CHANGE_FIELDS.commitTime]: { type: ['string', 'null'] },
  [CHANGE_FIELDS.before]: { type: ['object', 'null'] },
  [CHANGE_FIELDS.unchanged]: { type: 'array', items: { type: 'string' } },
} as const;

export type RecordFormat = 'tributary' | 'debezium';

export function toRecord(event: ChangeEvent, format: RecordFormat, database: string): RecordData {
  return format === 'debezium' ? debeziumRecord(event, database) : tributaryRecord(event);
}

/** Snapshot rows get these fields from the row decoder directly (see `snapshotFields`). */
export function snapshotFields(position: string): Row {
  return {
    [CHANGE_FIELDS.op]: 'r',
    [CHANGE_FIELDS.position]: position,
    [CHANGE_FIELDS.txid]: null,
    [CHANGE_FIELDS.commitTime]: null,
    [CHANGE_FIELDS.before]: null,
  };
}

/** Adds the change fields to the event's row. The row object is the event's own (freshly decoded) and is reused. */
function tributaryRecord(event: ChangeEvent): RecordData {
  const out: Record<string, JsonValue> = event.op === 'd' ? { ...event.before } : event.after ?? {};
  out[CHANGE_FIELDS.op] = event.op;
  out[CHANGE_FIELDS.position] = event.position;
  out[CHANGE_FIELDS.txid] = event.txid;
  out[CHANGE_FIELDS.commitTime] = event.commitTime;
  out[CHANGE_FIELDS.before] = event.before;
  if (event.unchanged && event.unchanged.length > 0) out[CHANGE_FIELDS.unchanged] = event.unchanged;
  return out;
}

/**
 * The Debezium envelope. `ts_ms` is the commit time (not the processing time, so a replayed
 * change is byte-identical); TOASTed columns left unchanged carry Debezium's placeholder.
 * `source.lsn` is the event's position as a number: the stream's cursor, and (hashed with
 * the record) what keeps two identical rows of a keyless table two events downstream, so
 * snapshot rows of such a table carry their per-row positions here (see SnapshotRowPositions).
 */
function debeziumRecord(event: ChangeEvent, database: string): RecordData {
  const commitMs = event.commitTime ? Date.parse(event.commitTime) : null;
  let after = event.after;
  if (after && event.unchanged?.length) {
    after = { ...after };
    for (const column of event.unchanged) defineField<JsonValue>(after, column, '__debezium_unavailable_value');
  }
  return {
    before: event.before,
    after: event.op === 'd' || event.op === 't' ? null : after,
    source: {
      version: 'tributary',
      connector: 'postgresql',
      name: database,
      ts_ms: commitMs,
      snapshot: event.op === 'r' ? 'true' : 'false',
      db: database,
      schema: event.namespace,
      table: event.table,
      txId: event.txid,
      lsn: lsnNumber(event.position),
      xmin: null,
    },
    op: event.op,
    ts_ms: commitMs,
  };
}

function lsnNumber(text: string): number {
  const [hi, lo] = text.split('/');
  return parseInt(hi ?? '0', 16) * 2 ** 32 + parseInt(lo ?? '0', 16);
}
