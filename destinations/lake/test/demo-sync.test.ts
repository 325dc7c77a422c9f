import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';
import { duckQuery, repoRoot, runCli } from './helpers.js';

// examples/demo/demo-lake-sync.yaml run twice through the real CLI in a temp dir; every
// file is then read by a separate DuckDB (not the lake's reader).
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-demo-'));
  await cp(join(repoRoot, 'examples', 'demo', 'demo-lake-sync.yaml'), join(dir, 'demo-lake-sync.yaml'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const expected: Record<string, number> = { companies: 2000, contacts: 20000, deals: 6000, activities: 200000 };

describe('the lake demo (sample → ./lake)', () => {
  it('lands every record once, per tenant/day partitions; a second run adds nothing', async () => {
    const first = await runCli(['sync', 'demo-lake-sync.yaml'], dir);
    expect(first.code, first.stderr).toBe(0);
    for (const line of first.stdout.split('\n').filter(Boolean)) validateAirbyteMessage(JSON.parse(line));
    const second = await runCli(['sync', 'demo-lake-sync.yaml'], dir);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/completed: 0 records committed/);

    const glob = join(dir, 'lake', 'data', '*', '*', '*', '*.parquet');
    const counts = await duckQuery(`SELECT stream, count(*) AS n, count(DISTINCT event_id) AS ids FROM read_parquet('${glob}', hive_partitioning = false) GROUP BY stream`);
    expect(Object.fromEntries(counts.map((r) => [r.stream, r.n]))).toEqual(expected);
    for (const r of counts) expect(r.ids).toBe(r.n);

    // Tenant isolation: the tenant (and day) in every file's directory is the one of each of its rows.
    const leaks = await duckQuery(
      `SELECT filename, tenant_id, strftime(event_time, '%Y-%m-%d') AS day FROM read_parquet('${glob}', hive_partitioning = false, filename = true) ` +
        `WHERE filename NOT LIKE '%/tenant_id=' || tenant_id || '/event_date=' || strftime(event_time, '%Y-%m-%d') || '/%' LIMIT 5`,
    );
    expect(leaks).toEqual([]);
    const envelope = await duckQuery(`SELECT count(*) AS bad FROM read_parquet('${glob}', union_by_name = true) WHERE event_id IS NULL OR customer_id IS NULL OR tenant_id IS NULL OR event_time IS NULL OR ingest_time IS NULL OR op IS NULL OR schema_version IS NULL OR source_system <> 'sample'`);
    expect(envelope[0]!.bad).toBe(0);
  });

  it('tributary lake query / as-of / status answer through the CLI binary', async () => {
    const query = await runCli(['lake', 'query', "select stream, count(*) as n from events group by stream order by stream", '--config', 'demo-lake-sync.yaml', '--format', 'jsonl'], dir);
    expect(query.code, query.stderr).toBe(0);
    expect(query.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(Object.keys(expected).sort().map((stream) => ({ stream, n: expected[stream] })));

    const asOf = await runCli(['lake', 'as-of', '--stream', 'contacts', '--tenant', 'tenant_002', '--config', 'demo-lake-sync.yaml', '--format', 'jsonl'], dir);
    expect(asOf.code, asOf.stderr).toBe(0);
    const rows = asOf.stdout.trim().split('\n').map((l) => JSON.parse(l) as { tenant_id: string; payload: { tenant_id: string; id: string } });
    const perTenant = await duckQuery(`SELECT count(*) AS n FROM read_parquet('${join(dir, 'lake', 'data', 'contacts', 'tenant_id=tenant_002', '*', '*.parquet')}')`);
    expect(rows.length).toBe(perTenant[0]!.n);
    expect(rows.every((r) => r.tenant_id === 'tenant_002' && r.payload.tenant_id === 'tenant_002')).toBe(true);

    const bad = await runCli(['lake', 'query', 'select * from nope', '--config', 'demo-lake-sync.yaml'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Views: .*contacts/);
  });
});
