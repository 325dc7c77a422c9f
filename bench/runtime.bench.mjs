// runtime: sample source → null destination through the full runtime (batching, bounded
// queue, checkpoint-after-commit, file state store), against iterating the source alone.
// Targets (issue 2): ≥ 1M records/s, ≥ 0.9× bare iteration, peak RSS ≤ 256 MB over 10M records.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { print, runPhase } from './measure.mjs';

export async function run(args) {
  const { values } = parseArgs({
    args,
    options: {
      records: { type: 'string', default: '10000000' },
      rounds: { type: 'string', default: '3' },
      // Records per source message: 1000 = an API-sized page; 1 = every record on its own.
      'page-size': { type: 'string', default: '1000' },
    },
  });
  const records = Number(values.records);
  const rounds = Number(values.rounds);
  const pageSize = values['page-size'];
  const script = fileURLToPath(new URL('./runtime-phase.mjs', import.meta.url));
  const results = { reference: [], runtime: [] };
  // Alternate the phases so machine noise hits both alike; keep the best round of each.
  for (let round = 1; round <= rounds; round++) {
    for (const phase of ['reference', 'runtime']) {
      const result = await runPhase(script, [phase, String(records), pageSize]);
      print({ bench: 'runtime', round, ...result });
      results[phase].push(result);
    }
  }
  const best = (list) => list.reduce((a, b) => (b.records_per_s > a.records_per_s ? b : a));
  const reference = best(results.reference);
  const runtime = best(results.runtime);
  const ratio = runtime.records_per_s / reference.records_per_s;
  const peak = Math.max(...results.runtime.map((r) => r.peak_rss_mb));
  print({
    bench: 'runtime',
    summary: true,
    records,
    page_size: Number(pageSize),
    runtime_records_per_s: runtime.records_per_s,
    reference_records_per_s: reference.records_per_s,
    ratio_to_bare_iteration: Math.round(ratio * 1000) / 1000,
    runtime_peak_rss_mb: peak,
    reference_peak_rss_mb: Math.max(...results.reference.map((r) => r.peak_rss_mb)),
    targets: { records_per_s: 1_000_000, ratio: 0.9, peak_rss_mb: 256 },
    meets: {
      records_per_s: runtime.records_per_s >= 1_000_000,
      ratio: ratio >= 0.9,
      peak_rss_mb: peak <= 256,
    },
  });
}
