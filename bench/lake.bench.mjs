// lake: sample source → event lake (local dir, Parquet zstd) through runSync, against DuckDB
// writing the same source rows to Parquet in the same run (DataChunk appender + COPY).
// Targets (lake issue): ≥ 0.5× the DuckDB reference and ≥ 300k rows/s; peak RSS reported.
//   npm run bench -- lake [--records 1000000] [--stream activities] [--rounds 2] [--writers]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { print, runPhase } from './measure.mjs';

export async function run(args) {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: 'string', default: '1000000' },
      stream: { type: 'string', default: 'activities' },
      rounds: { type: 'string', default: '2' },
      // Also measure hyparquet-writer on the same rows (the writer candidate DuckDB was chosen over).
      writers: { type: 'boolean', default: false },
    },
  });
  const script = fileURLToPath(new URL('./lake-phase.mjs', import.meta.url));
  const results = { duckdb: [], lake: [], hyparquet: [] };
  const phases = values.writers ? ['duckdb', 'hyparquet', 'lake'] : ['duckdb', 'lake'];
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const phase of phases) {
      const result = await runPhase(script, [phase, values.records, values.stream]);
      print({ bench: 'lake', round, ...result });
      results[phase].push(result);
    }
  }
  const best = (list) => list.reduce((a, b) => (b.records_per_s > a.records_per_s ? b : a));
  const lake = best(results.lake);
  const reference = best(results.duckdb);
  const ratio = lake.records_per_s / reference.records_per_s;
  print({
    bench: 'lake',
    summary: true,
    stream: values.stream,
    records: lake.records,
    lake_records_per_s: lake.records_per_s,
    lake_parquet_mb_per_s: lake.parquet_mb_per_s,
    lake_peak_rss_mb: lake.peak_rss_mb,
    reference: 'DuckDB DataChunk appender + COPY TO parquet (zstd), same source rows',
    reference_records_per_s: reference.records_per_s,
    reference_peak_rss_mb: reference.peak_rss_mb,
    ratio_to_reference: Math.round(ratio * 1000) / 1000,
    lake_records_per_cpu_s: lake.records_per_cpu_s,
    reference_records_per_cpu_s: reference.records_per_cpu_s,
    cpu_ratio_to_reference: Math.round((lake.records_per_cpu_s / reference.records_per_cpu_s) * 1000) / 1000,
    ...(values.writers ? { hyparquet_writer_records_per_s: best(results.hyparquet).records_per_s, hyparquet_writer_peak_rss_mb: best(results.hyparquet).peak_rss_mb } : {}),
    target_ratio: 0.5,
    target_records_per_s: 300_000,
    meets_targets: ratio >= 0.5 && lake.records_per_s >= 300_000,
  });
}
