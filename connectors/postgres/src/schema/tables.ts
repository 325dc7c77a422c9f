import type pg from 'pg';
import type { AirbyteStream } from '@tributary/core';
import type { PostgresConfig } from '../config.js';
import { CHANGE_FIELDS_SCHEMA, defineField } from '../records.js';
import type { JsonSchema, TypeRegistry } from './values.js';

export interface ColumnInfo {
  name: string;
  typeOid: number;
  /** `format_type` text, used for casts in generated queries. */
  sqlType: string;
}

export interface TableInfo {
  oid: number;
  namespace: string;
  name: string;
  columns: ColumnInfo[];
  /** Primary key columns in key order; empty when the table has none. */
  primaryKey: string[];
  /** `relreplident`: d default, f full, n nothing, i index. */
  replicaIdentity: string;
  /**
   * Columns of the replica identity index (`REPLICA IDENTITY USING INDEX`), in key order;
   * empty for other identities. A delete's old image holds these columns only.
   */
  identityIndex: string[];
  /** A partitioned table (its rows live in partitions). */
  partitioned: boolean;
}

const CURSOR_CANDIDATES = ['updated_at', 'modified_at', 'last_modified', 'updated', 'modified'];

/** The tables (ordinary and partitioned roots) of the configured schemas, with columns and keys. */
export async function loadTables(client: pg.Client, schemas: readonly string[]): Promise<TableInfo[]> {
  const tables = await client.query<{ oid: string; nspname: string; relname: string; relreplident: string; relkind: string }>(
    `SELECT c.oid, n.nspname, c.relname, c.relreplident, c.relkind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY($1::text[])
      ORDER BY n.nspname, c.relname`,
    [schemas],
  );
  const oids = tables.rows.map((r) => r.oid);
  if (oids.length === 0) return [];
  const columns = await client.query<{ attrelid: string; attname: string; atttypid: string; sqltype: string }>(
    `SELECT a.attrelid, a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) AS sqltype
       FROM pg_attribute a
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum`,
    [oids],
  );
  // `roles` as text ('p' primary key, 'i' replica identity): the source's connections read
  // booleans as their text ('t'/'f'), which would both be truthy.
  const keys = await client.query<{ indrelid: string; attname: string; position: string; roles: string }>(
    `SELECT i.indrelid, a.attname, array_position(i.indkey::int2[], a.attnum) AS position,
            CASE WHEN i.indisprimary THEN 'p' ELSE '' END || CASE WHEN i.indisreplident THEN 'i' ELSE '' END AS roles
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE (i.indisprimary OR i.indisreplident) AND i.indrelid = ANY($1::oid[])
      ORDER BY i.indrelid, i.indexrelid, position`,
    [oids],
  );
  return tables.rows.map((t) => ({
    oid: Number(t.oid),
    namespace: t.nspname,
    name: t.relname,
    replicaIdentity: t.relreplident,
    partitioned: t.relkind === 'p',
    columns: columns.rows.filter((c) => c.attrelid === t.oid).map((c) => ({ name: c.attname, typeOid: Number(c.atttypid), sqlType: c.sqltype })),
    primaryKey: keys.rows.filter((k) => k.indrelid === t.oid && k.roles.includes('p')).map((k) => k.attname),
    identityIndex: t.relreplident === 'i' ? keys.rows.filter((k) => k.indrelid === t.oid && k.roles.includes('i')).map((k) => k.attname) : [],
  }));
}

/**
 * The key a CDC stream's records are identified by: the replica identity's columns, which
 * are what a delete (and a key-changing update's old image) carries. That is the primary key,
 * except under `REPLICA IDENTITY USING INDEX`, whose deletes hold the index's columns only: a
 * stream keyed by the primary key gave keyed destinations deletes they could not apply.
 */
export function cdcKeyOf(table: TableInfo): string[] {
  return table.replicaIdentity === 'i' && table.identityIndex.length > 0 ? table.identityIndex : table.primaryKey;
}

/** The cursor column of a table for the standard method, if any. */
export function cursorColumnOf(table: TableInfo, config: PostgresConfig): string | undefined {
  const configured = config.cursor_fields?.[`${table.namespace}.${table.name}`] ?? config.cursor_fields?.[table.name];
  if (configured !== undefined) return table.columns.some((c) => c.name === configured) ? configured : undefined;
  return CURSOR_CANDIDATES.find((name) => table.columns.some((c) => c.name === name));
}

export function rowSchema(table: TableInfo, types: TypeRegistry): Record<string, JsonSchema> {
  const properties: Record<string, JsonSchema> = {};
  // Defined, not assigned: a column named `__proto__` is a property like the others.
  for (const column of table.columns) defineField(properties, column.name, types.jsonSchema(column.typeOid));
  return properties;
}

/** The Airbyte stream of a table, for the configured method and record format. */
export function streamOf(table: TableInfo, types: TypeRegistry, config: PostgresConfig): AirbyteStream {
  const row = rowSchema(table, types);
  const cdc = (config.replication_method ?? 'cdc') === 'cdc';
  const debezium = config.output_format === 'debezium';
  const jsonSchema = debezium
    ? {
        type: 'object',
        properties: {
          before: { type: ['object', 'null'], properties: row },
          after: { type: ['object', 'null'], properties: row },
          source: {
            type: 'object',
            properties: {
              version: { type: 'string' },
              connector: { type: 'string' },
              name: { type: 'string' },
              ts_ms: { type: ['integer', 'null'] },
              snapshot: { type: 'string' },
              db: { type: 'string' },
              schema: { type: 'string' },
              table: { type: 'string' },
              txId: { type: ['integer', 'null'] },
              lsn: { type: 'integer' },
              xmin: { type: 'null' },
            },
          },
          op: { type: 'string', enum: ['r', 'c', 'u', 'd', 't'] },
          ts_ms: { type: ['integer', 'null'] },
        },
      }
    : { type: 'object', properties: cdc ? { ...row, ...CHANGE_FIELDS_SCHEMA } : row };
  const cursor = cdc ? undefined : cursorColumnOf(table, config);
  // CDC streams are ordered by the server: the change position is the cursor (read-only).
  const cdcCursor = debezium ? ['source', 'lsn'] : ['_tributary_position'];
  // Standard incremental resumes after (cursor, primary key): ties on the cursor need the key.
  const key = cdc ? cdcKeyOf(table) : table.primaryKey;
  // CDC also needs a replica identity: under NOTHING a published table's UPDATEs and DELETEs
  // fail (and none would say which row changed), so such a table is offered full refresh only.
  const canIncremental = cdc ? table.replicaIdentity !== 'n' && (key.length > 0 || table.replicaIdentity === 'f') : cursor !== undefined && key.length > 0;
  return {
    name: table.name,
    namespace: table.namespace,
    json_schema: jsonSchema,
    supported_sync_modes: canIncremental ? ['full_refresh', 'incremental'] : ['full_refresh'],
    // A full refresh resumes after the last primary key it read. Without a key it would
    // resume after a ctid, which is no position across snapshots: an updated row moves to a
    // new ctid (read twice, or skipped when it lands before the resume point), and VACUUM
    // FULL or CLUSTER renumber the table. Such a refresh starts over instead.
    is_resumable: table.primaryKey.length > 0,
    ...(cdc && canIncremental ? { source_defined_cursor: true } : {}),
    ...(cursor !== undefined ? { default_cursor_field: [cursor] } : {}),
    ...(cdc && canIncremental ? { default_cursor_field: cdcCursor } : {}),
    ...(key.length > 0 && !debezium ? { source_defined_primary_key: key.map((k) => [k]) } : {}),
  };
}
