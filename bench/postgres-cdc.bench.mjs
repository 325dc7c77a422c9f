// postgres-cdc: the Postgres source against references run in the same process tree on the
// same server (embedded PostgreSQL 18, logical replication, started and removed here):
//   - CDC rows/s draining a 1M-row UPDATE (one transaction) and 10-row transactions, vs
//     pg_recvlogical draining pgoutput (proto 2, same publication) for the same WAL;
//   - commit-to-destination latency p50/p99 at a steady 5k rows/s through the runtime;
//   - initial snapshot rows/s vs `COPY … TO STDOUT` (psql to /dev/null).
// Targets (postgres issue): CDC ≥ 1.0× pg_recvlogical; latency p99 ≤ 100 ms; snapshot ≥ 0.5× COPY.
// `--only snapshot|cdc|latency` runs one part (about 12 s for the snapshot alone).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { print, runPhase } from './measure.mjs';
import { startServer } from './postgres-cdc-server.mjs';

export async function run(args) {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: 'string', default: '1000000' },
      'small-txns': { type: 'string', default: '10000' },
      'latency-rate': { type: 'string', default: '5000' },
      'latency-seconds': { type: 'string', default: '10' },
      rounds: { type: 'string', default: '2' },
      // `--only snapshot` (or cdc, latency): run one part; the summary then has its figures only.
      only: { type: 'string' },
    },
  });
  const runs = (part) => values.only === undefined || values.only === part;
  const rows = Number(values.rows);
  const smallTxns = Number(values['small-txns']);
  const rounds = Number(values.rounds);
  const script = fileURLToPath(new URL('./postgres-cdc-phase.mjs', import.meta.url));
  const server = await startServer();
  const serverJson = JSON.stringify(server);
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const q = async (text, params) => (await client.query(text, params)).rows;
  const best = (list) => list.reduce((a, b) => (a.rows_per_s === undefined || b.rows_per_s > a.rows_per_s ? b : a), {});
  const phase = async (name, ...phaseArgs) => {
    const result = await runPhase(script, [name, serverJson, ...phaseArgs.map(String)]);
    print({ bench: 'postgres-cdc', ...result });
    return result;
  };
  try {
    await q(`CREATE TABLE bench (id int PRIMARY KEY, v int NOT NULL, note text, updated_at timestamptz NOT NULL DEFAULT now())`);
    await q(`INSERT INTO bench (id, v, note) SELECT g, g, 'row ' || g FROM generate_series(1, ${rows}) g`);
    await q('CREATE PUBLICATION bench_pub FOR TABLE bench');
    await q('VACUUM ANALYZE bench');

    // --- snapshot vs COPY ---
    // The snapshot allocates one object per row: V8's young generation size matters, so it
    // also runs with NODE_OPTIONS=--max-semi-space-size=64 (a deployment setting, reported apart).
    const snapshot = { source: [], reference: [], tuned: [] };
    for (let round = 0; runs('snapshot') && round < rounds; round++) {
      snapshot.reference.push(await phase('reference-copy', rows));
      snapshot.source.push(await phase('source-snapshot', rows));
      const previous = process.env.NODE_OPTIONS;
      process.env.NODE_OPTIONS = `${previous ?? ''} --max-semi-space-size=64`.trim();
      try {
        snapshot.tuned.push({ ...(await phase('source-snapshot', rows)), node_options: process.env.NODE_OPTIONS });
      } finally {
        if (previous === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = previous;
      }
    }

    // --- CDC throughput: one slot per reader and round, created before the workload ---
    const drain = async (label, workload, count) => {
      const slots = [];
      for (let round = 0; round < rounds; round++) {
        for (const who of ['ref', 'src']) {
          const name = `bench_${label}_${who}_${round}`;
          const [{ lsn }] = await q(`SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
          slots.push({ name, who, round, lsn });
        }
      }
      await workload();
      const [{ end }] = await q('SELECT pg_current_wal_flush_lsn()::text AS end');
      const results = { source: [], reference: [] };
      for (let round = 0; round < rounds; round++) {
        const ref = slots.find((s) => s.who === 'ref' && s.round === round);
        const src = slots.find((s) => s.who === 'src' && s.round === round);
        results.reference.push({ ...(await phase('reference-cdc', ref.name, end, count)), workload: label });
        results.source.push({ ...(await phase('source-cdc', src.name, src.lsn, count)), workload: label });
      }
      for (const s of slots) await q('SELECT pg_drop_replication_slot($1)', [s.name]);
      return results;
    };
    const skipped = { source: [], reference: [] };
    const bigUpdate = runs('cdc') ? await drain('update', () => q('UPDATE bench SET v = v + 1'), rows) : skipped;
    await q(`CREATE PROCEDURE small_txns(n int) LANGUAGE plpgsql AS $$
      BEGIN FOR i IN 1..n LOOP UPDATE bench SET v = v + 1 WHERE id BETWEEN i * 10 - 9 AND i * 10; COMMIT; END LOOP; END $$`);
    const small = runs('cdc') ? await drain('txn10', () => q('CALL small_txns($1)', [smallTxns]), smallTxns * 10) : skipped;

    // --- latency at a steady rate ---
    const latency = runs('latency') ? await phase('latency', values['latency-rate'], values['latency-seconds']) : {};

    const ratio = (a, b) => Math.round((a / b) * 1000) / 1000;
    const s = { snap: best(snapshot.source), tuned: best(snapshot.tuned), copy: best(snapshot.reference), upd: best(bigUpdate.source), updRef: best(bigUpdate.reference), txn: best(small.source), txnRef: best(small.reference) };
    print({
      bench: 'postgres-cdc',
      summary: true,
      rows,
      cdc_update_rows_per_s: s.upd.rows_per_s,
      cdc_update_reference_rows_per_s: s.updRef.rows_per_s,
      cdc_update_ratio: ratio(s.upd.rows_per_s, s.updRef.rows_per_s),
      cdc_txn10_rows_per_s: s.txn.rows_per_s,
      cdc_txn10_reference_rows_per_s: s.txnRef.rows_per_s,
      cdc_txn10_ratio: ratio(s.txn.rows_per_s, s.txnRef.rows_per_s),
      reference: 'pg_recvlogical (PostgreSQL 15 client) -o proto_version=2 -f /dev/null; COPY bench TO STDOUT via psql',
      latency_rows_per_s: latency.rows_per_s,
      latency_delivered_p50_ms: latency.delivered_p50_ms,
      latency_delivered_p99_ms: latency.delivered_p99_ms,
      latency_committed_p50_ms: latency.committed_p50_ms,
      latency_committed_p99_ms: latency.committed_p99_ms,
      snapshot_rows_per_s: s.snap.rows_per_s,
      snapshot_reference_rows_per_s: s.copy.rows_per_s,
      snapshot_ratio: ratio(s.snap.rows_per_s, s.copy.rows_per_s),
      snapshot_semi_space_64mb_rows_per_s: s.tuned.rows_per_s,
      snapshot_semi_space_64mb_ratio: ratio(s.tuned.rows_per_s, s.copy.rows_per_s),
      source_peak_rss_mb: Math.max(0, ...[...bigUpdate.source, ...snapshot.source].map((r) => r.peak_rss_mb)),
      targets: { cdc_ratio: 1.0, latency_p99_ms: 100, snapshot_ratio: 0.5 },
      meets: {
        ...(runs('cdc') ? { cdc_update_ratio: s.upd.rows_per_s >= s.updRef.rows_per_s, cdc_txn10_ratio: s.txn.rows_per_s >= s.txnRef.rows_per_s } : {}),
        ...(runs('latency') ? { latency_p99_ms: latency.delivered_p99_ms <= 100 } : {}),
        ...(runs('snapshot') ? { snapshot_ratio: s.snap.rows_per_s >= 0.5 * s.copy.rows_per_s } : {}),
      },
    });
  } finally {
    await client.end().catch(() => {});
    await server.stop();
  }
}
