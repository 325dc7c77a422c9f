import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createConnectorContext } from '@tributary/core';
import { postgresSource, type PostgresConfig } from '../src/index.js';
import { catalogFor, cdcConfigFor, configFor, readAll, usePostgres, type EmbeddedPostgresServer } from './support.js';

// Columns named like Object.prototype members (`__proto__`, `constructor`) are ordinary
// columns: every path that builds a record or a schema from column names must give them an
// own property, and a record must stay a plain JSON object.

let server: EmbeddedPostgresServer;
let sql: pg.Client;

const TABLE = `CREATE TABLE %s (id int PRIMARY KEY, "__proto__" text, "constructor" text, updated_at int NOT NULL)`;

usePostgres((started, client) => {
  server = started;
  sql = client;
});

const cdcConfig = (name: string, overrides: Record<string, unknown> = {}): PostgresConfig => cdcConfigFor(server, name, overrides);

/**
 * [id, `__proto__`, `constructor`] of a record, read as a destination sees it: through JSON.
 * A `__proto__` that is no own property (the bug: it became the prototype) reads 'MISSING'.
 */
function columnsOf(record: unknown): unknown[] {
  expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
  const parsed = JSON.parse(JSON.stringify(record)) as Record<string, unknown>;
  return [parsed.id, Object.hasOwn(parsed, '__proto__') ? parsed['__proto__'] : 'MISSING', Object.hasOwn(parsed, 'constructor') ? parsed.constructor : 'MISSING'];
}

describe('columns named like Object.prototype members', () => {
  it('discovery lists `__proto__` as a column of the stream schema', async () => {
    await sql.query(TABLE.replace('%s', 'proto_discover'));
    const catalog = await postgresSource.discover(createConnectorContext({}), configFor(server, { replication_method: 'standard' }));
    const stream = catalog.streams.find((s) => s.name === 'proto_discover')!;
    const properties = (stream.json_schema as { properties: Record<string, unknown> }).properties;
    expect(Object.getPrototypeOf(properties)).toBe(Object.prototype);
    expect(Object.keys(properties)).toEqual(['id', '__proto__', 'constructor', 'updated_at']);
    const parsed = JSON.parse(JSON.stringify(properties)) as Record<string, { type?: unknown }>;
    expect(Object.hasOwn(parsed, '__proto__') && parsed['__proto__']!.type).toEqual(['string', 'null']);
  });

  it('standard full refresh and cursor reads carry the `__proto__` value', async () => {
    await sql.query(TABLE.replace('%s', 'proto_standard'));
    await sql.query(`INSERT INTO proto_standard VALUES (1, 'p1', 'c1', 1), (2, NULL, 'c2', 2)`);
    const config = configFor(server, { replication_method: 'standard' });
    for (const mode of ['full_refresh', 'incremental'] as const) {
      const { records } = await readAll(config, await catalogFor(config, ['proto_standard'], mode));
      expect(records.map((r) => columnsOf(r.data)), mode).toEqual([
        [1, 'p1', 'c1'],
        [2, null, 'c2'],
      ]);
    }
  });

  it('CDC snapshot, inserts, updates and deletes (with full before-images) carry the `__proto__` value', async () => {
    await sql.query(TABLE.replace('%s', 'proto_cdc'));
    await sql.query('ALTER TABLE proto_cdc REPLICA IDENTITY FULL');
    await sql.query(`INSERT INTO proto_cdc VALUES (1, 'p1', 'c1', 1)`);
    const config = cdcConfig('proto_cdc');
    const catalog = await catalogFor(config, ['proto_cdc']);
    const first = await readAll(config, catalog);
    await sql.query(`INSERT INTO proto_cdc VALUES (2, 'p2', 'c2', 2)`);
    await sql.query(`UPDATE proto_cdc SET "__proto__" = 'p2b' WHERE id = 2`);
    await sql.query(`DELETE FROM proto_cdc WHERE id = 1`);
    const second = await readAll(config, catalog, first.state);
    const records = [...first.records, ...second.records].map((r) => r.data);
    expect(records.map((r) => r._tributary_op)).toEqual(['r', 'c', 'u', 'd']);
    expect(records.map(columnsOf)).toEqual([
      [1, 'p1', 'c1'],
      [2, 'p2', 'c2'],
      [2, 'p2b', 'c2'],
      [1, 'p1', 'c1'],
    ]);
    const beforeImages = records.slice(2).map((r) => columnsOf(r._tributary_before));
    expect(beforeImages).toEqual([
      [2, 'p2', 'c2'],
      [1, 'p1', 'c1'],
    ]);
    await sql.query(`SELECT pg_drop_replication_slot('proto_cdc_slot')`);
  });

  it('Debezium envelopes carry the `__proto__` value in before and after', async () => {
    await sql.query(TABLE.replace('%s', 'proto_dbz'));
    await sql.query('ALTER TABLE proto_dbz REPLICA IDENTITY FULL');
    const config = cdcConfig('proto_dbz', { output_format: 'debezium' });
    const catalog = await catalogFor(config, ['proto_dbz']);
    const first = await readAll(config, catalog);
    await sql.query(`INSERT INTO proto_dbz VALUES (1, 'p1', 'c1', 1)`);
    await sql.query(`UPDATE proto_dbz SET "__proto__" = 'p1b' WHERE id = 1`);
    const second = await readAll(config, catalog, first.state);
    const [insert, update] = second.records.map((r) => r.data);
    expect(columnsOf(insert!.after)).toEqual([1, 'p1', 'c1']);
    expect(columnsOf(update!.before)).toEqual([1, 'p1', 'c1']);
    expect(columnsOf(update!.after)).toEqual([1, 'p1b', 'c1']);
    await sql.query(`SELECT pg_drop_replication_slot('proto_dbz_slot')`);
  });
});
