import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { lakeConfigSchema, lakeDestination, loadLakeState, openStore } from '../src/index.js';
import { duckQuery } from './helpers.js';

// The stage hands DuckDB each column of up to 1024 records as one joined string (control
// characters U+001E / U+001F as separator and null mark, JSON when a value contains them):
// every value must come back from the Parquet files exactly as the record had it.

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-values-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const jsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    tenant_id: { type: 'string' },
    customer_id: { type: 'string' },
    note: { type: ['string', 'null'] },
    amount: { type: ['number', 'null'] },
    flag: { type: ['boolean', 'null'] },
    meta: {},
  },
};
const stream: DestinationStream = { key: 'values', name: 'values', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: [], jsonSchema, resuming: false };

const NOTES: (string | null)[] = [
  'plain',
  '',
  null,
  'a\u001eb',
  '\u001f',
  'x\u001fy\u001e',
  'S',
  'J["not json"]',
  'tab\tnew\nline "quoted" \\back\\slash',
  'é😀 ✓ 中文',
  'null',
  ' ',
];
const AMOUNTS: (number | null)[] = [0, -0, 0.1, 1e21, 5e-324, -1.5e-7, Number.MAX_SAFE_INTEGER, 1732000000123.5, null];
const FLAGS: (boolean | null)[] = [true, false, null];
const METAS: unknown[] = [null, { a: 1 }, { s: 'sep\u001einside', n: null }, [1, 'two', { three: 3 }], { deep: { x: '\u001f' } }];

function record(id: number, withControl: boolean): RecordData {
  const notes = withControl ? NOTES : NOTES.filter((n) => n === null || !/[\u001e\u001f]/.test(n));
  return {
    id,
    tenant_id: id % 3 === 0 ? 't\u001e3' : `t${id % 3}`,
    customer_id: `c${id % 7}`,
    note: notes[id % notes.length]!,
    amount: AMOUNTS[id % AMOUNTS.length]!,
    flag: FLAGS[id % FLAGS.length]!,
    meta: METAS[id % METAS.length]!,
  } as RecordData;
}

it('every value survives staging exactly: separators and null marks in strings, empty strings, nulls, unicode, -0, extreme doubles, booleans, JSON', async () => {
  const path = join(root, 'lake');
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, { path }), [stream]);
  const sent: RecordData[] = [];
  // One batch larger than a staged row (4096) without control characters in `note`, one with them, one tiny one.
  const batches = [
    Array.from({ length: 5000 }, (_, i) => record(i, false)),
    Array.from({ length: 3000 }, (_, i) => record(5000 + i, true)),
    [record(8000, true)],
  ];
  for (const records of batches) {
    const outcome = await session.write({ stream: 'values', records, emittedAt: Date.now() });
    expect(outcome?.rejected ?? []).toEqual([]);
    sent.push(...records);
  }
  await session.commit();
  await session.close({ completed: true });

  const rows = await duckQuery(
    `SELECT id, tenant_id, customer_id, note, amount, flag, CAST(meta AS VARCHAR) AS meta ` +
      `FROM read_parquet('${join(path, 'data', '**', '*.parquet')}', hive_partitioning = false) ORDER BY id`,
  );
  expect(rows.length).toBe(sent.length);
  for (const [i, row] of rows.entries()) {
    const r = sent[i]! as Record<string, unknown>;
    const expected = {
      id: r.id,
      tenant_id: r.tenant_id,
      customer_id: r.customer_id,
      note: r.note,
      amount: r.amount, // toEqual tells -0 from 0
      flag: r.flag,
      meta: r.meta === null ? null : JSON.stringify(r.meta),
    };
    expect(row).toEqual(expected);
  }
});

it('a lone UTF-16 surrogate is stored as U+FFFD, in a plain column and in one that needs the JSON form', async () => {
  const path = join(root, 'surrogate');
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, { path }), [stream]);
  const records = [
    { id: 1, tenant_id: 't', customer_id: 'c', note: 'lone \ud800 high', amount: null, flag: null, meta: null },
    { id: 2, tenant_id: 't', customer_id: 'c', note: 'pair 😀 ok', amount: null, flag: null, meta: null },
  ];
  await session.write({ stream: 'values', records, emittedAt: Date.now() });
  await session.write({ stream: 'values', records: [{ id: 3, tenant_id: 't', customer_id: 'c', note: 'lone \udc00 low \u001e sep', amount: null, flag: null, meta: null }], emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  const rows = await duckQuery(`SELECT id, note FROM read_parquet('${join(path, 'data', '**', '*.parquet')}', hive_partitioning = false) ORDER BY id`);
  expect(rows).toEqual([
    { id: 1, note: 'lone \ufffd high' },
    { id: 2, note: 'pair 😀 ok' },
    { id: 3, note: 'lone \ufffd low \u001e sep' },
  ]);
});

it('large text values end a staging row early (32M characters) and come back intact', async () => {
  const path = join(root, 'large');
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, { path }), [stream]);
  const big = 'x'.repeat(1_000_000);
  const records = Array.from({ length: 40 }, (_, id) => ({ id, tenant_id: 't', customer_id: 'c', note: `${id}:${big}:${id}`, amount: id, flag: null, meta: null }));
  await session.write({ stream: 'values', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  const rows = await duckQuery(
    `SELECT id, length(note) AS len, left(note, 3) AS head, right(note, 3) AS tail, amount FROM read_parquet('${join(path, 'data', '**', '*.parquet')}', hive_partitioning = false) ORDER BY id`,
  );
  expect(rows).toEqual(records.map((r) => ({ id: r.id, len: r.note.length, head: r.note.slice(0, 3), tail: r.note.slice(-3), amount: r.amount })));
});

it('each commit-log file entry states its file: rows, tenant, day, event-time range and schema version (checked by reading the file)', async () => {
  const path = join(root, 'log-stats');
  const config = { path, rows_per_file: 1000 };
  const timed: DestinationStream = { ...stream, jsonSchema: { ...jsonSchema, properties: { ...jsonSchema.properties, event_time: { type: 'string', format: 'date-time' } } } };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [timed]);
  const day = (d: number, i: number) => `2024-03-0${d}T${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00.${String(i % 1000).padStart(3, '0')}Z`;
  const at = (id: number, d: number) => ({ id, tenant_id: `t${id % 2}`, customer_id: 'c', event_time: day(d, id), note: null, amount: null, flag: null, meta: null });
  await session.write({ stream: 'values', records: Array.from({ length: 1500 }, (_, i) => at(i, 1 + (i % 3))), emittedAt: Date.now() });
  // A field first seen here: schema version 2 from these rows on (sealed separately: the stage is past rows_per_file).
  await session.write({ stream: 'values', records: Array.from({ length: 700 }, (_, i) => ({ ...at(1500 + i, 2 + (i % 2)), channel: 'web' })), emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });

  const files = [...(await loadLakeState(openStore(parseConfig(lakeConfigSchema, config)))).files.values()];
  expect(files.length).toBeGreaterThan(6);
  expect(new Set(files.map((f) => f.schemaVersion))).toEqual(new Set([1, 2]));
  for (const f of files) {
    const [actual] = await duckQuery(
      `SELECT count(*) AS rows, min(tenant_id) AS tenant, max(tenant_id) AS tenant_max, strftime(min(event_time), '%Y-%m-%d') AS partition, ` +
        `strftime(max(event_time), '%Y-%m-%d') AS partition_max, epoch_ms(min(event_time)) AS lo, epoch_ms(max(event_time)) AS hi, max(schema_version) AS version ` +
        `FROM read_parquet('${join(path, f.path)}', hive_partitioning = false)`,
    );
    expect(actual).toEqual({ rows: f.rows, tenant: f.tenant, tenant_max: f.tenant, partition: f.partition, partition_max: f.partition, lo: f.minEventTime, hi: f.maxEventTime, version: f.schemaVersion });
  }
  expect(files.reduce((n, f) => n + f.rows, 0)).toBe(2200);
});

it("constant columns (source system, stream, op, a configured tenant) are plain UTF8 strings with exact statistics, even with quotes in the value", async () => {
  const path = join(root, 'constants');
  const config = { path, source_system: "crm's", streams: { values: { tenant_id: "tenant 'q'", op: 'insert' } } };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  await session.write({ stream: 'values', records: Array.from({ length: 3000 }, (_, id) => ({ id, customer_id: 'c', note: null, amount: null, flag: null, meta: null })), emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed: true });
  const glob = `'${join(path, 'data', '**', '*.parquet')}'`;
  const types = await duckQuery(`SELECT DISTINCT name, type, converted_type FROM parquet_schema(${glob}) WHERE name IN ('source_system', 'stream', 'op', 'tenant_id') ORDER BY name`);
  expect(types).toEqual(['op', 'source_system', 'stream', 'tenant_id'].map((name) => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8' })));
  const stats = await duckQuery(`SELECT DISTINCT path_in_schema AS name, stats_min_value AS lo, stats_max_value AS hi FROM parquet_metadata(${glob}) WHERE path_in_schema IN ('source_system', 'stream', 'op', 'tenant_id') ORDER BY name`);
  expect(stats).toEqual([
    { name: 'op', lo: 'insert', hi: 'insert' },
    { name: 'source_system', lo: "crm's", hi: "crm's" },
    { name: 'stream', lo: 'values', hi: 'values' },
    { name: 'tenant_id', lo: "tenant 'q'", hi: "tenant 'q'" },
  ]);
  const described = await duckQuery(`SELECT column_name, column_type FROM (DESCRIBE SELECT source_system, stream, op, tenant_id FROM read_parquet(${glob}, hive_partitioning = false))`);
  expect(described.map((d) => d.column_type)).toEqual(['VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR']);
  expect(await duckQuery(`SELECT source_system, stream, op, tenant_id, count(*) AS n FROM read_parquet(${glob}, hive_partitioning = false) GROUP BY ALL`)).toEqual([{ source_system: "crm's", stream: 'values', op: 'insert', tenant_id: "tenant 'q'", n: 3000 }]);
});
