/**
 * Attribution of CDC deletes that lack the envelope's customer id or tenant.
 *
 * Under PostgreSQL's default replica identity a delete carries the key columns only. Every
 * lake row needs a customer id and a tenant (the tenant is a partition), so such a delete
 * was quarantined, and point-in-time reads kept the deleted row live; with `default_tenant`
 * set it went to that tenant's partition, where it hid nothing. A primary key names one row
 * of the source table, so the delete belongs to the customer and tenant of the latest row
 * of its key that precedes it: an earlier record of its batch, else a row this sync staged
 * or wrote, or one the lake holds (looked up with one query per batch that needs it). A
 * delete whose key has no such row is left as it came (and quarantined with that reason).
 * A delete replayed after a crash takes the customer id and tenant its first write stored
 * (`storedChangesSql`, see session.ts `storedAttributions`), not a new lookup's.
 *
 * Only streams with a primary key that leaves out the customer id field or the tenant field
 * can need this; for other streams nothing here runs, unless a batch moves a row to another
 * key: the same lookup then also finds the old key's latest row for the update, to fill the
 * fields it left out (see key-moves.ts, `filledFromOldRow`).
 */
import type { RecordData } from '@tributary/core';
import type { StreamMapping } from './config.js';
import { literal } from './duck.js';
import { entityKeyOf, envelopeText } from './envelope.js';
import { INGEST_SEQ_COLUMN, lsnOrder, NEWEST_FIRST } from './row-order.js';
import type { ColumnType } from './schema-registry.js';

/** Fields a delete of the stream may lack, which attribution fills in (each absent when the primary key holds it). */
export interface AttributedFields {
  customer?: string;
  tenant?: string;
}

/** The fields a CDC delete of this stream can lack, or undefined when it never needs attribution. */
export function attributedFields(mapping: StreamMapping): AttributedFields | undefined {
  if (mapping.primaryKey.length === 0) return undefined;
  const inKey = (field: string): boolean => mapping.primaryKey.some((path) => path.length === 1 && path[0] === field);
  const fields: AttributedFields = {};
  if (!inKey(mapping.customerIdField)) fields.customer = mapping.customerIdField;
  // A constant tenant is never missing.
  if ('field' in mapping.tenant && !inKey(mapping.tenant.field)) fields.tenant = mapping.tenant.field;
  return fields.customer === undefined && fields.tenant === undefined ? undefined : fields;
}

/** One delete to attribute: its index in the batch, its entity key and its source position. */
export interface PendingDelete {
  index: number;
  key: string;
  position: string;
}

/** The customer id and tenant (envelope text) of the row a delete removes, and where that row is. */
export interface Attribution {
  customer: string;
  tenant: string;
  /** Index in the batch of the row, when it is an earlier record of the batch. */
  from?: number;
  /**
   * The row's values by column (those `lookupSql` was asked for, and `unchanged_fields`),
   * when it was looked up and the lookup asked for columns.
   */
  columns?: Record<string, unknown>;
}

/** Whether `record` lacks (no envelope text in) a field of `fields`: a delete that attribution would fill. */
export function lacks(record: RecordData, fields: AttributedFields): boolean {
  return (fields.customer !== undefined && envelopeText(record[fields.customer]) === undefined) || (fields.tenant !== undefined && envelopeText(record[fields.tenant]) === undefined);
}

/**
 * The deletes of `records` that lack a field of `fields` (when given) or whose index is in
 * `oldRowWanted` (deletes of moved keys whose update needs the old row, see key-moves.ts),
 * and carry their whole key, each attributed from the latest earlier record of its key in
 * the batch when there is one (`resolved`, by index); the others are `lookups`. Undefined
 * when the batch has no such delete (the common case: one property test per record).
 */
export function batchDeletes(records: readonly RecordData[], mapping: StreamMapping, fields: AttributedFields | undefined, oldRowWanted?: ReadonlySet<number>): { resolved: Map<number, Attribution>; lookups: PendingDelete[] } | undefined {
  // Called for deletes only (the op is tested first, inline).
  const pending = (r: RecordData, i: number): boolean => (fields !== undefined && lacks(r, fields)) || oldRowWanted?.has(i) === true;
  let first = -1;
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (typeof r === 'object' && r !== null && r._tributary_op === 'd' && pending(r, i)) {
      first = i;
      break;
    }
  }
  if (first < 0) return undefined;
  const resolved = new Map<number, Attribution>();
  const lookups: PendingDelete[] = [];
  // The latest attribution of each key among the records before the current one.
  const seen = new Map<string, Attribution>();
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (typeof record !== 'object' || record === null || Array.isArray(record)) continue;
    const key = entityKeyOf(record, mapping.primaryKey);
    if (key === undefined) continue;
    if (i >= first && record._tributary_op === 'd' && pending(record, i)) {
      const known = seen.get(key);
      if (known) resolved.set(i, known);
      else lookups.push({ index: i, key, position: envelopeText(record._tributary_position) ?? '' });
      // A delete lacking its customer id or tenant is no row to attribute another from.
      if (fields !== undefined && lacks(record, fields)) continue;
    }
    const customer = envelopeText(record[mapping.customerIdField]);
    const tenant = 'field' in mapping.tenant ? envelopeText(record[mapping.tenant.field]) : mapping.tenant.constant;
    if (customer !== undefined && tenant !== undefined) seen.set(key, { customer, tenant, from: i });
  }
  return { resolved, lookups };
}

/** Envelope columns a lookup source must provide (see `lookupSql`). */
export const LOOKUP_COLUMNS = `entity_key, customer_id, tenant_id, source_position, event_time, ingest_time, ${INGEST_SEQ_COLUMN}, event_id`;

/**
 * One query over `sources` (SQL relations with the envelope's columns, `_tributary_ingest_seq`
 * included — see `withIngestSeq`: Parquet files, staged rows) returning, per delete of `deletes`, the customer id and tenant of the latest
 * row of its key (see NEWEST_FIRST) that precedes it: when both positions are CDC positions,
 * an earlier one (a row written after the delete, e.g. the key inserted again, is not the
 * deleted row); otherwise any. Rows: `_tributary_k`, `_tributary_p` (the delete's key and
 * position; no payload column has a `_tributary_` name), `customer_id`, `tenant_id`; with
 * `columns` (payload columns), also `unchanged_fields` and those of `columns` that a source
 * has (the sources' rows are then merged by name: a file or stage may lack a column).
 */
export function lookupSql(sources: readonly string[], deletes: readonly PendingDelete[], columns: readonly string[] = []): string {
  const keys = [...new Set(deletes.map((d) => d.key))].map(literal).join(', ');
  const wanted = [...new Map(deletes.map((d) => [`${d.key}\u0000${d.position}`, d])).values()].map((d) => `(${literal(d.key)}, ${literal(d.position)})`).join(', ');
  const withColumns = columns.length > 0;
  const rows = sources.map((s) => `SELECT ${withColumns ? '*' : LOOKUP_COLUMNS} FROM ${s} WHERE entity_key IN (${keys}) AND customer_id IS NOT NULL AND tenant_id IS NOT NULL`).join(withColumns ? ' UNION ALL BY NAME ' : ' UNION ALL ');
  // `unchanged_fields` is in every source, so the set is never empty (DuckDB refuses an empty one).
  const picked = withColumns ? `, COLUMNS(c -> c IN (${['unchanged_fields', ...columns].map(literal).join(', ')}))` : '';
  return (
    `WITH wanted(_tributary_k, _tributary_p) AS (VALUES ${wanted}), stored AS (${rows}) ` +
    `SELECT _tributary_k, _tributary_p, customer_id, tenant_id${picked} FROM wanted JOIN stored ON entity_key = _tributary_k ` +
    `WHERE ${lsnOrder('_tributary_p')} IS NULL OR ${lsnOrder('source_position')} IS NULL OR ${lsnOrder('source_position')} < ${lsnOrder('_tributary_p')} ` +
    `QUALIFY row_number() OVER (PARTITION BY _tributary_k, _tributary_p ORDER BY ${NEWEST_FIRST}) = 1`
  );
}

/** A change a sync may already have stored: the entity key, CDC position and op of one row (see `storedChangesSql`). */
export interface StoredChange {
  key: string;
  position: string;
  op: 'delete' | 'update';
}

/** Identity of a StoredChange (or of a row `storedChangesSql` returns). */
export function storedChangeId(key: unknown, position: unknown, op: unknown): string {
  return `${String(key)}\u0000${String(position)}\u0000${String(op)}`;
}

/**
 * One query over `paths` (local Parquet files: a replay window's, see replay-window.ts)
 * returning the rows stored for `changes`, matched on entity key, source position and op.
 * Rows: `_tributary_k`, `_tributary_p`, `_tributary_o` (the change), `customer_id`,
 * `tenant_id`, `unchanged_fields` and those of `columns` (payload columns) that a file has.
 * A CDC position is distinct per change (see the PostgreSQL source's records.ts), so a row
 * matching all three is what an earlier write of the very same change stored.
 */
export function storedChangesSql(paths: readonly string[], changes: readonly StoredChange[], columns: readonly string[] = []): string {
  const wanted = [...new Map(changes.map((c) => [storedChangeId(c.key, c.position, c.op), c])).values()].map((c) => `(${literal(c.key)}, ${literal(c.position)}, ${literal(c.op)})`).join(', ');
  const picked = ['unchanged_fields', ...columns].map(literal).join(', ');
  return (
    `WITH wanted(_tributary_k, _tributary_p, _tributary_o) AS (VALUES ${wanted}) ` +
    `SELECT _tributary_k, _tributary_p, _tributary_o, customer_id, tenant_id, COLUMNS(c -> c IN (${picked})) ` +
    `FROM wanted JOIN read_parquet([${paths.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false) ` +
    `ON entity_key = _tributary_k AND source_position = _tributary_p AND CAST(op AS VARCHAR) = _tributary_o`
  );
}

/**
 * The delete with its customer id and tenant fields set from `attribution` (a copy: the
 * batch is the runtime's). A payload column's value takes the column's type: a number for
 * an integer or number column (the envelope holds ids as text).
 */
export function attributed(record: RecordData, fields: AttributedFields, attribution: Attribution, typeOf: (field: string) => ColumnType | undefined): RecordData {
  const out: RecordData = { ...record };
  const set = (field: string, text: string): void => {
    const type = typeOf(field);
    const number = Number(text);
    const value = (type === 'integer' || type === 'number') && text.trim() !== '' && Number.isFinite(number) ? number : text;
    // Defined, not assigned: a field named `__proto__` would set the copy's prototype.
    Object.defineProperty(out, field, { value, writable: true, enumerable: true, configurable: true });
  };
  if (fields.customer !== undefined && envelopeText(record[fields.customer]) === undefined) set(fields.customer, attribution.customer);
  if (fields.tenant !== undefined && envelopeText(record[fields.tenant]) === undefined) set(fields.tenant, attribution.tenant);
  return out;
}
