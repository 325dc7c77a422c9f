import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectorContext } from '@tributary/core';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, readAll, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

// Numbers inside json/jsonb values are JSON numbers in records, i.e. IEEE-754 doubles once
// parsed: digits beyond double precision are not kept (PostgreSQL keeps them: jsonb stores
// numbers as numeric). That limit is documented in the discovered schema of the column, and
// the snapshot and the stream agree on the value.

let server: EmbeddedPostgresServer;
let sql: pg.Client;

const DOC = `{"big": 12345678901234567890, "fine": 0.1000000000000000055511151231257827, "small": 42, "ratio": 0.5}`;

beforeAll(async () => {
  server = await startPostgres();
  sql = await sqlClient(server);
  await sql.query('CREATE TABLE docs (id int PRIMARY KEY, doc json, docb jsonb)');
  await sql.query('INSERT INTO docs VALUES (1, $1::text::json, $1::text::jsonb)', [DOC]);
});
afterAll(async () => {
  await sql?.end();
  await server?.stop();
});

describe('numbers inside json and jsonb', () => {
  it('the discovered schema of a json/jsonb column states that numbers are read as doubles', async () => {
    const catalog = await postgresSource.discover(createConnectorContext({}), configFor(server, { replication_method: 'standard' }));
    const properties = (catalog.streams.find((s) => s.name === 'docs')!.json_schema as { properties: Record<string, { description?: string }> }).properties;
    for (const column of ['doc', 'docb']) expect(properties[column]!.description, column).toMatch(/double precision/);
  });

  it('ordinary numbers keep their type and value; numbers beyond double precision are the nearest double, in snapshot and stream alike', async () => {
    // The server holds every digit.
    const stored = await sql.query<{ big: string; fine: string }>(`SELECT docb->>'big' AS big, docb->>'fine' AS fine FROM docs WHERE id = 1`);
    expect(stored.rows[0]).toEqual({ big: '12345678901234567890', fine: '0.1000000000000000055511151231257827' });
    const config = configFor(server, { slot_name: 'docs_slot', publication_name: 'docs_pub' });
    const catalog = await catalogFor(config, ['docs']);
    const first = await readAll(config, catalog);
    await sql.query('INSERT INTO docs VALUES (2, $1::text::json, $1::text::jsonb)', [DOC]);
    const second = await readAll(config, catalog, first.state);
    const expected = { big: 12345678901234567000, fine: 0.1, small: 42, ratio: 0.5 };
    for (const record of [first.records[0]!.data, second.records[0]!.data]) {
      expect(record.doc).toEqual(expected);
      expect(record.docb).toEqual(expected);
    }
    await sql.query(`SELECT pg_drop_replication_slot('docs_slot')`);
  });
});
