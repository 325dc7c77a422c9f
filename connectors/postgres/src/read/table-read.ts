import type pg from 'pg';
import { ident, literal, qualified } from '../connection.js';
import { CopyOutQuery } from './copy-out.js';
import type { Row } from '../records.js';
import type { TableInfo } from '../schema/tables.js';
import type { Converter, JsonValue, TypeRegistry } from '../schema/values.js';

/**
 * Chunked table reads: keyset pagination on the primary key (or on ctid for tables without
 * one), each chunk one indexed query, so a read can resume after the last row of any chunk.
 * Callers decide the snapshot: inside an imported snapshot (CDC) or a fresh one.
 */

/** Where a chunked read stands: after these key values (primary key) or this ctid. */
export type ChunkPosition = { after: JsonValue[] } | { ctid: string } | null;

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
  decode(values: (string | null)[]): Row;
}

/**
 * Builds rows from text values. The decoder is compiled per table (one object literal with
 * the table's columns, plus `extra` constant fields), so every row has one hidden class:
 * this is the hot loop of a snapshot.
 */
export function rowDecoder(table: TableInfo, types: TypeRegistry, extra: Row = {}): RowDecoder {
  const columns = table.columns.map((c) => c.name);
  const converters: Converter[] = table.columns.map((c) => types.converter(c.typeOid));
  const fields = columns.map((name, i) => `${JSON.stringify(name)}: v[${i}] == null ? null : c[${i}](v[${i}])`);
  const constants = Object.keys(extra).map((name) => `${JSON.stringify(name)}: x[${JSON.stringify(name)}]`);
  // Only column names (JSON-quoted) and indexes reach the generated source.
  const build = new Function('v', 'c', 'x', `return { ${[...fields, ...constants].join(', ')} };`) as (v: (string | null)[], c: Converter[], x: Row) => Row;
  return {
    columns,
    decode: (values) => build(values, converters, extra),
  };
}

/** A JSON value back to the text PostgreSQL casts from (for keyset parameters). */
export function paramOf(value: JsonValue): string | null {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function castOf(table: TableInfo, column: string): string {
  return table.columns.find((c) => c.name === column)?.sqlType ?? 'text';
}

export async function* readChunks(
  client: pg.Client,
  table: TableInfo,
  types: TypeRegistry,
  chunkSize: number,
  start: ChunkPosition,
  extra?: Row,
): AsyncGenerator<Chunk> {
  const decoder = rowDecoder(table, types, extra);
  const select = decoder.columns.map(ident).join(', ');
  const from = qualified(table.namespace, table.name);
  const keyed = table.primaryKey.length > 0;
  const keys = table.primaryKey.map(ident).join(', ');
  const keyIndexes = table.primaryKey.map((k) => decoder.columns.indexOf(k));
  // COPY takes no parameters: positions are inlined as quoted literals with a cast.
  const value = (v: string | null, column: string): string => (v === null ? 'NULL' : `${literal(v)}::${castOf(table, column)}`);
  const socket = (client as unknown as { connection: { stream: { pause(): void; resume(): void } } }).connection.stream;
  const query = (position: ChunkPosition): CopyOutQuery<Row> => {
    let text: string;
    if (keyed) {
      const after = position && 'after' in position ? position.after : undefined;
      const where = after ? `WHERE (${keys}) > (${table.primaryKey.map((k, i) => value(paramOf(after[i] ?? null), k)).join(', ')})` : '';
      text = `COPY (SELECT ${select} FROM ${from} ${where} ORDER BY ${keys} LIMIT ${chunkSize}) TO STDOUT`;
    } else {
      const ctid = position && 'ctid' in position ? position.ctid : undefined;
      text = `COPY (SELECT ${select}, ctid::text FROM ${from} ${ctid ? `WHERE ctid > ${literal(ctid)}::tid` : ''} ORDER BY ctid LIMIT ${chunkSize}) TO STDOUT`;
    }
    return client.query(new CopyOutQuery(text, decoder.decode, socket));
  };
  let current: CopyOutQuery<Row> | undefined = query(start);
  try {
    while (current) {
      for (let page = await current.nextPage(); page; page = await current.nextPage()) yield { rows: page, next: undefined };
      const done: CopyOutQuery<Row> = current;
      current = undefined;
      let next: ChunkPosition = null;
      const last = done.last;
      if (done.count >= chunkSize && last) {
        const keyValues = keyIndexes.map((i) => decoder.decode(last)[decoder.columns[i]!] ?? null);
        next = keyed ? { after: keyValues } : { ctid: String(last[last.length - 1]) };
        // The server starts on the next chunk while this one's checkpoint is handed on.
        current = query(next);
      }
      yield { rows: [], next };
    }
  } finally {
    // An abandoned read must let its COPY finish before the connection is reused.
    if (current) await current.drain();
  }
}

/** Where a standard incremental read stands: after this (cursor, key) pair. */
export interface CursorPosition {
  cursor: JsonValue;
  key?: JsonValue[];
}

/** Rows whose (cursor, primary key) comes after `start`, in that order, chunk by chunk. */
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
  let position = start;
  for (;;) {
    let where = `WHERE ${ident(cursor)} IS NOT NULL`;
    let params: (string | null)[] = [];
    if (position && position.key) {
      const cols = [cursor, ...table.primaryKey];
      where += ` AND (${order}) > (${cols.map((c, i) => `$${i + 1}::${castOf(table, c)}`).join(', ')})`;
      params = [position.cursor, ...position.key].map(paramOf);
    } else if (position) {
      where += ` AND ${ident(cursor)} > $1::${castOf(table, cursor)}`;
      params = [paramOf(position.cursor)];
    }
    const result = await client.query<(string | null)[]>({
      text: `SELECT ${select} FROM ${from} ${where} ORDER BY ${order} LIMIT ${chunkSize}`,
      values: params,
      rowMode: 'array',
    });
    const rows = result.rows.map((values) => decoder.decode(values));
    const lastRow = rows[rows.length - 1];
    if (lastRow) position = { cursor: lastRow[cursor] ?? null, key: table.primaryKey.map((k) => lastRow[k] ?? null) };
    yield { rows, last: position };
    if (rows.length < chunkSize) return;
  }
}
