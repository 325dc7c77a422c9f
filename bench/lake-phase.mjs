// One phase of the lake benchmark, in its own process (own peak RSS). Prints one JSON line.
//   lake <records> <stream>     sample source → runSync → lake destination (local dir, zstd)
//   duckdb <records> <stream>   the same source rows → DuckDB (DataChunk appender) → COPY TO parquet (zstd)
//   hyparquet <records> <stream> the same source rows → hyparquet-writer (snappy, its only built-in codec)
//                               — the other writer candidate, measured to justify the choice of DuckDB
// Both phases include reading the sample source, so the ratio compares the write paths.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureCatalog, createConnectorContext, createFileStateStore, parseConfig, runSync } from '@tributary/core';
import { sampleSource } from '@tributary/source-sample';
import { DuckDBDataChunk, DuckDBInstance, VARCHAR, DOUBLE } from '@duckdb/node-api';
import { lakeDestination } from '@tributary/destination-lake';
import { peakRssMb } from './measure.mjs';

const [phase, countArg, stream = 'activities'] = process.argv.slice(2);
const records = Number(countArg);
// Activities refer to contacts (their customer_id), so a pool of contacts exists even
// though only `stream` is synced.
const counts = { companies: 1_000, contacts: 20_000, deals: 0, activities: 0 };
counts[stream] = records;
const ctx = createConnectorContext({});
const config = parseConfig(sampleSource.spec.connectionSpecification, { seed: 1, tenants: 5, counts, checkpoint_every: 50_000, page_size: 5_000 });
const catalog = configureCatalog(await sampleSource.discover(ctx, config), [{ name: stream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }], ['append', 'append_dedup']);
const dir = await mkdtemp(join(tmpdir(), 'tributary-bench-lake-'));

async function parquetBytes(root) {
  let bytes = 0;
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) if (e.isFile() && e.name.endsWith('.parquet')) bytes += (await stat(join(e.parentPath, e.name))).size;
  return bytes;
}

const started = process.hrtime.bigint();
const cpuStart = process.cpuUsage();
let count = 0;
if (phase === 'lake') {
  const store = createFileStateStore(join(dir, 'state'));
  const result = await runSync({
    connection: 'bench',
    source: sampleSource,
    sourceConfig: config,
    destination: lakeDestination,
    destinationConfig: { validate_records: process.env.LAKE_BENCH_VALIDATE !== '0', path: join(dir, 'lake'), streams: stream === 'activities' ? { activities: { event_id_field: 'event_id' } } : {} },
    catalog,
    stateStore: store,
    // No batching here: the destination's own (index.ts), as `tributary sync` uses it.
  });
  if (result.outcome !== 'completed') throw result.error ?? new Error(result.outcome);
  count = result.streams.reduce((n, s) => n + s.committed, 0);
  await store.close();
} else if (phase === 'hyparquet') {
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const { writeFile } = await import('node:fs/promises');
  const fields = Object.keys((await sampleSource.discover(ctx, config)).streams.find((s) => s.name === stream).json_schema.properties);
  const columns = fields.map(() => []);
  for await (const message of sampleSource.read(ctx, config, catalog, { streams: {} })) {
    const page = message.kind === 'records' ? message.records : message.kind === 'record' ? [message.data] : [];
    for (const r of page) for (let i = 0; i < fields.length; i++) {
      const v = r[fields[i]];
      columns[i].push(v === null || v === undefined ? null : typeof v === 'object' ? JSON.stringify(v) : v);
    }
    count += page.length;
  }
  const types = fields.map((f) => (['employees', 'score', 'amount'].includes(f) ? 'DOUBLE' : 'STRING'));
  const buffer = parquetWriteBuffer({ columnData: fields.map((name, i) => ({ name, data: columns[i], type: types[i] })), rowGroupSize: 122_880 });
  await writeFile(join(dir, 'ref.parquet'), new Uint8Array(buffer));
} else {
  // Reference: DuckDB's fastest path from JS rows: column arrays → DataChunks → appender →
  // COPY TO parquet. Columns typed the way the lake stages them (VARCHAR / DOUBLE).
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const fields = Object.keys((await sampleSource.discover(ctx, config)).streams.find((s) => s.name === stream).json_schema.properties);
  const types = fields.map((f) => (['employees', 'score', 'amount'].includes(f) ? DOUBLE : VARCHAR));
  await connection.run(`CREATE TABLE t (${fields.map((f, i) => `"${f}" ${types[i].toString()}`).join(', ')})`);
  const appender = await connection.createAppender('t');
  for await (const message of sampleSource.read(ctx, config, catalog, { streams: {} })) {
    const page = message.kind === 'records' ? message.records : message.kind === 'record' ? [message.data] : [];
    for (let s = 0; s < page.length; s += 2048) {
      const slice = page.slice(s, s + 2048);
      const chunk = DuckDBDataChunk.create(types, slice.length);
      chunk.setColumns(fields.map((f) => slice.map((r) => { const v = r[f]; return v === null || v === undefined ? null : typeof v === 'object' ? JSON.stringify(v) : v; })));
      appender.appendDataChunk(chunk);
    }
    count += page.length;
  }
  appender.closeSync();
  await connection.run(`COPY t TO '${join(dir, 'ref.parquet')}' (FORMAT parquet, COMPRESSION zstd)`);
  connection.closeSync();
  instance.closeSync();
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const bytes = await parquetBytes(dir);
await rm(dir, { recursive: true, force: true });
if (count !== records) throw new Error(`expected ${records} records, got ${count}`);
process.stdout.write(
  JSON.stringify({
    phase,
    stream,
    records: count,
    seconds: Math.round(seconds * 1000) / 1000,
    records_per_s: Math.round(count / seconds),
    // CPU time of the whole process (DuckDB's threads included): steadier than wall time on a shared machine.
    cpu_seconds: Math.round(cpuSeconds * 1000) / 1000,
    records_per_cpu_s: Math.round(count / cpuSeconds),
    parquet_mb: Math.round(bytes / 1e4) / 100,
    parquet_mb_per_s: Math.round(bytes / 1e4 / seconds) / 100,
    peak_rss_mb: peakRssMb(),
  }) + '\n',
);
