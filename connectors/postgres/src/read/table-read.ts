import type pg from 'pg';
import { ident, literal, qualified } from '../connection.js';
import { CopyOutQuery, escapedField, parseCopyLine, scanCopyLine } from './copy-out.js';
import type { Row } from '../records.js';
import type { TableInfo } from '../schema/tables.js';
import type { ByteConverter, Converter, JsonValue, TypeRegistry } from '../schema/values.js';

/**
 * Chunked table reads: keyset pagination on the primary key (or on ctid for tables without
 * one), so a read can resume after the last row of any chunk. One indexed COPY reads several
 * chunks in key order; the position after each chunk's last row is handed on as its
 * checkpoint, and the next COPY starts from the last one.
 * Callers decide the snapshot: inside an imported snapshot (CDC) or a fresh one.
 */

/** Rows one COPY reads at most (rounded up to whole chunks). */
const QUERY_ROWS = 250_000;

/**
 * Where a chunked read stands: after these key values (primary key) or this ctid. A
 * partitioned table without a key is read in (partition oid, ctid) order: every partition
 * numbers its rows from (0,1), so a ctid alone is no position in it.
 */
export type ChunkPosition = { after: JsonValue[] } | { ctid: string; partition?: string } | null;

export interface Chunk {
  rows: Row[];
  /**
   * Set on the last page of a chunk: the position after its last row (checkpoint there), or
   * null when the table is finished. Undefined on the pages before: no checkpoint yet.
   */
  next: ChunkPosition | undefined;
}

export interface RowDecoder {
  columns: string[];
  /** A row from text values (a query's result row). */
  decode(values: (string | null)[]): Row;
  /** A row from one COPY text line; fields after the table's columns are ignored. */
  decodeLine(line: Buffer): Row;
}

/**
 * Builds rows from text values or COPY lines. The builders are compiled per table (one
 * object literal with the table's columns, plus `extra` constant fields), so every row has
 * one hidden class: this is the hot loop of a snapshot. A COPY line is decoded straight from
 * its bytes: the field bounds go to one reused array, and each column's `ByteConverter`
 * (chosen once per table) reads its field, so no per-row field array or intermediate strings
 * are made; escaped fields (and NULLs) take the text converters.
 */
export function rowDecoder(table: TableInfo, types: TypeRegistry, extra: Row = {}): RowDecoder {
  const columns = table.columns.map((c) => c.name);
  const converters: Converter[] = table.columns.map((c) => types.converter(c.typeOid));
  const byteConverters: ByteConverter[] = table.columns.map((c) => types.byteConverter(c.typeOid));
  const constants = Object.keys(extra).map((name) => `${literalKey(name)}: x[${JSON.stringify(name)}]`);
  // Only column names (JSON-quoted) and indexes reach the generated source.
  const fields = columns.map((name, i) => `${literalKey(name)}: v[${i}] == null ? null : c[${i}](v[${i}])`);
  const build = new Function('v', 'c', 'x', `return { ${[...fields, ...constants].join(', ')} };`) as (v: (string | null)[], c: Converter[], x: Row) => Row;
  const lineFields = columns.map((name, i) => {
    const s = `p[${2 * i}]`;
    const e = `p[${2 * i + 1}]`;
    return `${literalKey(name)}: ${s} >= 0 ? k[${i}](b, ${s}, ${e}) : esc(b, ${s}, ${e}, c[${i}])`;
  });
  const buildLine = new Function('b', 'p', 'k', 'c', 'esc', 'x', `return { ${[...lineFields, ...constants].join(', ')} };`) as (
    b: Buffer,
    p: Int32Array,
    k: ByteConverter[],
    c: Converter[],
    esc: typeof escapedValue,
    x: Row,
  ) => Row;
  const bounds = new Int32Array(2 * columns.length);
  return {
    columns,
    decode: (values) => build(values, converters, extra),
    decodeLine: (line) => {
      if (scanCopyLine(line, bounds) < columns.length) return build(parseCopyLine(line), converters, extra);
      return buildLine(line, bounds, byteConverters, converters, escapedValue, extra);
    },
  };
}

/**
 * A column name as a key of the generated object literal. `__proto__` is written as a computed
 * key: as a plain key (quoted or not) it sets the row's prototype instead of a field. Other
 * names stay plain keys, which keep the literal one boilerplate (a computed key makes V8 add
 * every later property one by one).
 */
function literalKey(name: string): string {
  return name === '__proto__' ? `[${JSON.stringify(name)}]` : JSON.stringify(name);
}

function escapedValue(line: Buffer, start: number, end: number, converter: Converter): JsonValue {
  const text = escapedField(line, start, end);
  return text === null ? null : converter(text);
}

function castOf(table: TableInfo, column: string): string {
  return table.columns.find((c) => c.name === column)?.sqlType ?? 'text';
}

/** A saved key or cursor value of `column` back to the text PostgreSQL casts from. */
function paramOf(table: TableInfo, types: TypeRegistry, column: string, value: JsonValue): string | null {
  return types.textOf(table.columns.find((c) => c.name === column)?.typeOid ?? 0)(value);
}

export async function* readChunks(
  client: pg.Client,
  table: TableInfo,
  types: TypeRegistry,
  chunkSize: number,
  start: ChunkPosition,
  extra?: Row,
  options: {
    queryRows?: number;
    /**
     * A boolean SQL expression over the table's columns: only rows matching it are read (a
     * publication's row filter, for a CDC snapshot). Trusted text, from the server's catalog.
     */
    filter?: string;
    /**
     * Tables without a primary key: called with every row as it is decoded, with the row's
     * ctid (text) and, for a partitioned table, the oid of its partition (else null).
     */
    keylessRow?: (row: Row, ctid: string, partition: string | null) => void;
  } = {},
): AsyncGenerator<Chunk> {
  const decoder = rowDecoder(table, types, extra);
  const select = decoder.columns.map(ident).join(', ');
  const from = qualified(table.namespace, table.name);
  const keyed = table.primaryKey.length > 0;
  const keys = table.primaryKey.map(ident).join(', ');
  const keyIndexes = table.primaryKey.map((k) => decoder.columns.indexOf(k));
  // COPY takes no parameters: positions are inlined as quoted literals with a cast.
  const value = (v: string | null, column: string): string => (v === null ? 'NULL' : `${literal(v)}::${castOf(table, column)}`);
  // Without a primary key the position is the trailing ctid field of the last line (after it,
  // the oid of the row's partition when the table is partitioned).
  const byPartition = !keyed && table.partitioned;
  let lastCtid: string | null = null;
  let lastPartition: string | null = null;
  const ctidBounds = new Int32Array(2 * (decoder.columns.length + 2));
  const trailing = (line: Buffer, at: number): string | null => {
    const start = ctidBounds[2 * at]!;
    const end = ctidBounds[2 * at + 1]!;
    return start >= 0 ? line.toString('utf8', start, end) : escapedField(line, start, end);
  };
  const decodeLine = keyed
    ? decoder.decodeLine
    : (line: Buffer): Row => {
        const at = decoder.columns.length;
        scanCopyLine(line, ctidBounds);
        lastCtid = trailing(line, at);
        if (byPartition) lastPartition = trailing(line, at + 1);
        const row = decoder.decodeLine(line);
        options.keylessRow?.(row, String(lastCtid), lastPartition);
        return row;
      };
  const socket = (client as unknown as { connection: { stream: { pause(): void; resume(): void } } }).connection.stream;
  // One COPY spans several chunks (a query per chunk costs a round trip and a plan each);
  // it stays bounded so that an abandoned read drains little and no query runs for long.
  const queryRows = Math.max(1, Math.ceil((options.queryRows ?? QUERY_ROWS) / chunkSize)) * chunkSize;
  const mark = keyed
    ? (last: Row): ChunkPosition => ({ after: keyIndexes.map((i) => last[decoder.columns[i]!] ?? null) })
    : (): ChunkPosition => ({ ctid: String(lastCtid), ...(byPartition ? { partition: String(lastPartition) } : {}) });
  // The conditions of a query: after the position, and matching the filter.
  const where = (after: string | undefined): string => {
    const conditions = [...(options.filter !== undefined ? [`(${options.filter})`] : []), ...(after !== undefined ? [after] : [])];
    return conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
  };
  const query = (position: ChunkPosition): CopyOutQuery<Row, ChunkPosition> => {
    let text: string;
    if (keyed) {
      const after = position && 'after' in position ? position.after : undefined;
      const past = after ? `(${keys}) > (${table.primaryKey.map((k, i) => value(paramOf(table, types, k, after[i] ?? null), k)).join(', ')})` : undefined;
      text = `COPY (SELECT ${select} FROM ${from} ${where(past)} ORDER BY ${keys} LIMIT ${queryRows}) TO STDOUT`;
    } else {
      const ctid = position && 'ctid' in position ? position.ctid : undefined;
      // The text copies are renamed: an output column named ctid would make ORDER BY sort by text ('(0,10)' < '(0,2)').
      if (byPartition) {
        // A position saved without its partition cannot be placed: read the table again.
        const partition = position && 'ctid' in position ? position.partition : undefined;
        const past = ctid !== undefined && partition !== undefined ? `(tableoid, ctid) > (${literal(partition)}::oid, ${literal(ctid)}::tid)` : undefined;
        text = `COPY (SELECT ${select}, ctid::text AS ctid_text, tableoid::text AS tableoid_text FROM ${from} ${where(past)} ORDER BY tableoid, ctid LIMIT ${queryRows}) TO STDOUT`;
      } else {
        text = `COPY (SELECT ${select}, ctid::text AS ctid_text FROM ${from} ${where(ctid ? `ctid > ${literal(ctid)}::tid` : undefined)} ORDER BY ctid LIMIT ${queryRows}) TO STDOUT`;
      }
    }
    return client.query(new CopyOutQuery(text, decodeLine, socket, chunkSize, mark));
  };
  let current: CopyOutQuery<Row, ChunkPosition> | undefined = query(start);
  let following: CopyOutQuery<Row, ChunkPosition> | undefined;
  try {
    while (current) {
      for (let page = await current.nextPage(); page; page = await current.nextPage()) {
        // A full query ends on a chunk boundary, and more rows may follow it: the server
        // starts on the next query while this chunk's checkpoint is handed on.
        if (page.mark !== undefined && page.at === queryRows) following = query(page.mark);
        yield { rows: page.rows, next: page.mark };
      }
      current = following;
      following = undefined;
      if (!current) yield { rows: [], next: null };
    }
  } finally {
    // An abandoned read must let its COPYs finish before the connection is reused.
    if (current) await current.drain();
    if (following) await following.drain();
  }
}

/** Where a standard incremental read stands: after this (cursor, key) pair. */
export interface CursorPosition {
  cursor: JsonValue;
  key?: JsonValue[];
  /**
   * The oldest transaction id (modulo 2^32) still running when the read that saved this
   * position started: a row whose `xmin` is not older was written by a transaction that may
   * have committed after the read passed its place. Absent in states of older versions.
   */
  since?: number;
}

/**
 * Whether `xmin` (a row's, the text of an xid) is `since` or newer, modulo 2^32 as PostgreSQL
 * compares xids; 0-2 are special ids (invalid, bootstrap, frozen), always older.
 */
function writtenSince(since: string): string {
  return `(xmin::text::bigint >= 3 AND (xmin::text::bigint - ${since} + 4294967296) % 4294967296 < 2147483648)`;
}

/**
 * Rows whose (cursor, primary key) comes after `start`, in that order, chunk by chunk.
 *
 * Rows that tie with the saved cursor value and sort before the saved key are read again
 * when they were written since the read that saved the position started: they were inserted
 * or updated after that read passed them, keeping the cursor value (a `date` cursor updated
 * on the same day, equal `now()` timestamps of one transaction, an integer cursor that was
 * not bumped). A resume strictly after (cursor, key) skipped them for good.
 */
export async function* readByCursor(
  client: pg.Client,
  table: TableInfo,
  types: TypeRegistry,
  cursor: string,
  chunkSize: number,
  start: CursorPosition | undefined,
): AsyncGenerator<{ rows: Row[]; last: CursorPosition | undefined }> {
  const decoder = rowDecoder(table, types);
  const select = decoder.columns.map(ident).join(', ');
  const from = qualified(table.namespace, table.name);
  const order = [cursor, ...table.primaryKey].map(ident).join(', ');
  const cols = [cursor, ...table.primaryKey];
  const casts = cols.map((c) => castOf(table, c));
  // Taken before the first query: every transaction that commits after any of this read's
  // queries took its snapshot is running now or starts later, so its xid is not older.
  const snapshot = await client.query<{ since: string }>(`SELECT (txid_snapshot_xmin(txid_current_snapshot()) % 4294967296)::text AS since`);
  const since = Number(snapshot.rows[0]!.since);
  // The start, as parameters $1…: rows after it, and its cursor's ties written since it was saved.
  let startWhere = '';
  let startParams: (string | null)[] = [];
  // With re-read ties: whether a row comes after the start (else it is one of those ties).
  let beyond = '';
  if (start && start.key) {
    startParams = [start.cursor, ...start.key].map((v, i) => paramOf(table, types, cols[i]!, v));
    const after = `(${order}) > (${cols.map((_, i) => `$${i + 1}::${casts[i]}`).join(', ')})`;
    const since = typeof start.since === 'number' && Number.isInteger(start.since) ? start.since : undefined;
    startWhere = since === undefined ? ` AND ${after}` : ` AND (${after} OR (${ident(cursor)} = $1::${casts[0]} AND ${writtenSince(String(since))}))`;
    if (since !== undefined) beyond = `, ${after}`;
  } else if (start) {
    startWhere = ` AND ${ident(cursor)} > $1::${casts[0]}`;
    startParams = [paramOf(table, types, cursor, start.cursor)];
  }
  let position: CursorPosition | undefined = start ? { ...start } : undefined;
  let after: CursorPosition | undefined;
  for (;;) {
    let where = `WHERE ${ident(cursor)} IS NOT NULL${startWhere}`;
    let params = startParams;
    if (after && after.key) {
      const offset = params.length;
      where += ` AND (${order}) > (${cols.map((_, i) => `$${offset + i + 1}::${casts[i]}`).join(', ')})`;
      params = [...params, ...[after.cursor, ...after.key].map((v, i) => paramOf(table, types, cols[i]!, v))];
    }
    const result = await client.query<(string | null)[]>({
      text: `SELECT ${select}${beyond} FROM ${from} ${where} ORDER BY ${order} LIMIT ${chunkSize}`,
      values: params,
      rowMode: 'array',
    });
    const rows = result.rows.map((values) => decoder.decode(values));
    const lastRow = rows[rows.length - 1];
    const done = rows.length < chunkSize;
    if (lastRow) {
      after = { cursor: lastRow[cursor] ?? null, key: table.primaryKey.map((k) => lastRow[k] ?? null) };
      const lastValues = result.rows[result.rows.length - 1]!;
      // A re-read tie sorts before the start: the position stays there, and keeps the old
      // `since` until every tie was read (a resume reads the rest of them again).
      if (!beyond || [true, 't'].includes(lastValues[decoder.columns.length] as string)) position = { ...after, since };
    }
    if (done && position) position = { ...position, since };
    yield { rows, last: position };
    if (done) return;
  }
}
