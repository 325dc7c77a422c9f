// hubspot: a full sync of 100k contacts from the HubSpot simulator at its default limits
// (190 requests per rolling 10 s, search 5/s, 100 per list page), through the real
// @hubspot/api-client and the runtime, into the local-files destination.
// Reports records/s and rate-budget efficiency: requests accepted per 10-second window
// ÷ the 190 allowed, averaged over every window inside the run (target ≥ 0.9), plus the
// busiest window and every non-2xx answer (target: zero failed calls).
// The simulator runs in this process, the sync in a child process (bench/hubspot-phase.mjs).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startHubspotSimulator } from '../connectors/hubspot/dist/simulator/index.js';
import { print, runPhase } from './measure.mjs';

/** Mean and max of requests per `windowMs`, over windows starting at each request until the last full one. */
function windowFigures(times, windowMs) {
  const sorted = [...times].sort((a, b) => a - b);
  const counts = [];
  let j = 0;
  const last = sorted.at(-1);
  for (let i = 0; i < sorted.length && sorted[i] + windowMs <= last; i++) {
    while (j < sorted.length && sorted[j] < sorted[i] + windowMs) j++;
    counts.push(j - i);
  }
  if (counts.length === 0) return { mean: sorted.length, max: sorted.length };
  return { mean: counts.reduce((a, b) => a + b, 0) / counts.length, max: Math.max(...counts) };
}

export async function run(args) {
  const { values } = parseArgs({
    args,
    options: { records: { type: 'string', default: '100000' }, mode: { type: 'string', default: 'full_refresh' } },
  });
  const records = Number(values.records);
  const sim = await startHubspotSimulator({ searchLagMs: 0 });
  try {
    const base = Date.parse('2024-01-01T00:00:00Z');
    for (let i = 0; i < records; i++) {
      sim.create(
        'contacts',
        { email: `c${i}@example.com`, firstname: `First${i}`, lastname: `Last${i}`, company: `Company ${i % 977}`, phone: `+1555${String(i).padStart(7, '0')}`, lifecyclestage: 'lead', num_notes: String(i % 13), hs_email_optout: i % 2 ? 'true' : 'false' },
        base + Math.floor(i / 3) * 1000,
      );
    }
    const script = fileURLToPath(new URL('./hubspot-phase.mjs', import.meta.url));
    const phase = await runPhase(script, [sim.url, sim.token, values.mode]);
    const allowed = sim.limits.burst;
    // The sync's requests only (the catalog was discovered a window before it started).
    const syncRequests = sim.stats.acceptedAt.filter((t) => t >= phase.started_at);
    const { mean, max } = windowFigures(syncRequests, sim.limits.burstWindowMs);
    const failed = Object.entries(sim.stats.byStatus)
      .filter(([status]) => Number(status) >= 300)
      .reduce((n, [, c]) => n + c, 0);
    const efficiency = Math.round((mean / allowed) * 1000) / 1000;
    print({
      bench: 'hubspot',
      summary: true,
      mode: values.mode,
      records,
      outcome: phase.outcome,
      synced: phase.records,
      seconds: phase.seconds,
      records_per_s: phase.records_per_s,
      requests: sim.stats.requests,
      sync_requests: syncRequests.length,
      allowed_per_10s: allowed,
      mean_requests_per_10s: Math.round(mean * 10) / 10,
      max_requests_per_10s: max,
      rate_budget_efficiency: efficiency,
      failed_calls: failed,
      by_status: sim.stats.byStatus,
      peak_rss_mb: phase.peak_rss_mb,
      targets: { rate_budget_efficiency: 0.9, failed_calls: 0 },
      meets: { rate_budget_efficiency: efficiency >= 0.9, failed_calls: failed === 0, within_limit: max <= allowed, complete: phase.records === records },
    });
  } finally {
    await sim.close();
  }
}
