import type pg from 'pg';
import { expect, it } from 'vitest';
import { expandRecordPages, streamKey, type ConfiguredAirbyteCatalog, type RecordData, type SyncState } from '@tributary/core';
import { postgresSource, type PostgresConfig } from '../src/index.js';
import { catalogFor, configFor, contextWithLogs, memoryStateStore, memoryTarget, readAll, syncInProcess, usePostgres, type EmbeddedPostgresServer } from './support.js';

// A chunked read resumed after a checkpoint continues right after the saved primary key.
// The key is saved as its JSON value (bytea: base64), so it must go back to the server as
// the same bytes, or the resumed read starts elsewhere and skips or repeats rows.

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((started, client) => {
  server = started;
  sql = client;
});

/** Reads until the first checkpoint that follows some records (a sync killed right after it committed). */
async function readFirstChunk(config: PostgresConfig, catalog: ConfiguredAirbyteCatalog): Promise<{ records: RecordData[]; state: SyncState }> {
  const records: RecordData[] = [];
  const state: SyncState = { streams: {} };
  for await (const m of expandRecordPages(postgresSource.read(contextWithLogs().ctx, config, catalog, { streams: {} }))) {
    if (m.kind === 'record') records.push(m.data);
    else if (m.kind === 'checkpoint') state.streams[streamKey(m.stream, m.namespace)] = m.state;
    else if (m.kind === 'global-checkpoint') {
      state.shared = m.shared;
      for (const s of m.streams) state.streams[streamKey(s.stream, s.namespace)] = s.state;
    } else continue;
    if (m.kind !== 'record' && records.length > 0) break;
  }
  return { records, state };
}

async function expectEveryRowOnce(
  table: string,
  config: PostgresConfig,
  mode: 'full_refresh' | 'incremental',
  // md5 digests as keys: their bytes sort nothing like their base64 text.
  key: { type: string; value: string; rows: number } = { type: 'bytea', value: `decode(md5(g::text), 'hex')`, rows: 50 },
): Promise<void> {
  await sql.query(`CREATE TABLE ${table} (id ${key.type} PRIMARY KEY, v int)`);
  await sql.query(`INSERT INTO ${table} SELECT ${key.value}, g FROM generate_series(1, ${key.rows}) g`);
  const catalog = await catalogFor(config, [table], mode);
  const first = await readFirstChunk(config, catalog);
  expect(first.records).toHaveLength(config.chunk_size!);
  const rest = await readAll(config, catalog, first.state);
  const values = [...first.records, ...rest.records.map((r) => r.data)].map((r) => r.v as number).sort((a, b) => a - b);
  expect(values).toEqual(Array.from({ length: key.rows }, (_, i) => i + 1));
}

it('a full refresh of a table keyed by bytea resumes after its last chunk: every row once', async () => {
  await expectEveryRowOnce('bytea_refresh', configFor(server, { replication_method: 'standard', chunk_size: 10 }), 'full_refresh');
});

it('a CDC snapshot of a table keyed by bytea resumes after its last chunk: every row once', async () => {
  await expectEveryRowOnce('bytea_snapshot', configFor(server, { slot_name: 'bytea_slot', publication_name: 'bytea_pub', chunk_size: 10 }), 'incremental');
});

it('a full refresh of a table keyed by an array resumes after its last chunk: the key goes back as an array literal', async () => {
  // Saved as a JSON array; sent back as JSON ('["…"]') the server rejected it (malformed array literal).
  await expectEveryRowOnce('array_refresh', configFor(server, { replication_method: 'standard', chunk_size: 10 }), 'full_refresh', {
    type: 'text[]',
    value: `ARRAY[md5(g::text), E'quote " comma , brace {} backslash \\\\', NULL]`,
    rows: 50,
  });
});

it('a CDC snapshot of a table keyed by jsonb resumes after a JSON null key: every row once', async () => {
  // The JSON null (first in jsonb order) was sent back as SQL NULL: "> NULL" matched no row,
  // and the snapshot ended there, the other rows lost.
  await expectEveryRowOnce('jsonb_snapshot', configFor(server, { slot_name: 'jsonb_slot', publication_name: 'jsonb_pub', chunk_size: 1 }), 'incremental', {
    type: 'jsonb',
    value: `(ARRAY['null', '"s"', '1.5', '[1, "x"]', '{"a": null}'])[g]::jsonb`,
    rows: 5,
  });
});

it('a full refresh of a table without a primary key starts over instead of resuming after a ctid', async () => {
  const config = configFor(server, { replication_method: 'standard', chunk_size: 10 });
  await sql.query('CREATE TABLE keyless_refresh (v int, note text)');
  await sql.query("INSERT INTO keyless_refresh SELECT g, 'old' FROM generate_series(1, 50) g");
  const catalog = await catalogFor(config, ['keyless_refresh'], 'full_refresh');
  expect(catalog.streams[0]!.stream.is_resumable).toBe(false);
  // A refresh interrupted after its first chunk saved a ctid position…
  const first = await readFirstChunk(config, catalog);
  expect(first.records).toHaveLength(10);
  const store = memoryStateStore();
  await store.save('test', first.state);
  // …then rows of that chunk were updated: their new versions sit at new ctids, past it.
  await sql.query("UPDATE keyless_refresh SET note = 'new' WHERE v <= 5");
  const target = memoryTarget();
  expect((await syncInProcess({ config, catalog, target, store })).outcome).toBe('completed');
  const rows = (target.committed.get('public.keyless_refresh') ?? []).map((r) => [r.v, r.note] as [number, string]).sort((a, b) => a[0] - b[0]);
  // The whole table once, as it is now (resuming would have read 11–50 plus the five moved rows).
  expect(rows).toEqual(Array.from({ length: 50 }, (_, i) => [i + 1, i < 5 ? 'new' : 'old']));
});
