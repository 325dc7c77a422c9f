import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readStreamRows } from '../src/index.js';
import { keyedStream, runCli, writeSession } from './helpers.js';

// `tributary lake status|retention|compact` as a user checking one tenant's data runs them:
// each tenant's partition is told apart from the others, and an option the command does not
// apply, or a tenant id off by letter case or Unicode form, is said instead of ignored.
let root: string;
const config = (): { path: string } => ({ path: join(root, 'lake') });
/** Two ids sharing their first 70 characters (a table cell was cut at 60). */
const longA = `org-${'x'.repeat(70)}-a`;
const longB = `org-${'x'.repeat(70)}-b`;
const tenants = ['acme', 'Acme', 'caf\u00e9', 'cafe\u0301', 'nl\nx', 'trail ', 'a\u00a0b', longA, longB];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe7-cli-'));
  const stream = keyedStream('clicks', { event_time: { type: 'string' } });
  const records = tenants.map((tenant_id, i) => ({ id: i, tenant_id, customer_id: 'c', event_time: '2024-01-01T12:00:00Z' }));
  expect(await writeSession(config(), stream, [records])).toEqual([]);
  expect(await writeSession(config(), keyedStream('orders'), [[{ id: 1, tenant_id: 'acme', customer_id: 'c' }]])).toEqual([]);
  // A PostgreSQL table's stream: its files are kept under its namespaced key.
  const refunds = keyedStream('public.refunds', { event_time: { type: 'string' } }, { name: 'refunds', namespace: 'public' });
  expect(await writeSession(config(), refunds, [[{ id: 1, tenant_id: 'acme', customer_id: 'c', event_time: '2020-01-01T00:00:00Z' }]])).toEqual([]);
  await writeFile(join(root, 'lake.json'), JSON.stringify(config()));
});
afterAll(() => rm(root, { recursive: true, force: true }));

const lake = (...args: string[]) => runCli(['lake', ...args, '--config', 'lake.json'], root);

it('status shows each tenant on one line of its own, whole, with hidden characters and decomposed forms escaped', async () => {
  const status = await lake('status', '--stream', 'clicks');
  expect([status.code, status.stderr]).toEqual([0, '']);
  const lines = status.stdout.trimEnd().split('\n');
  // The location, the header, its rule, one line per tenant, the count.
  expect(lines.length).toBe(3 + tenants.length + 1);
  const shown = lines.slice(3, -1).map((line) => line.slice('clicks  '.length).replace(/\s+1\s+1\s+\d+$/, ''));
  expect(shown).toEqual(['Acme', 'acme', '"a\\u00a0b"', '"cafe\\u0301"', 'caf\u00e9', '"nl\\nx"', longA, longB, '"trail "']);
});

it('status --tenant and --stream count only that tenant and stream', async () => {
  const status = await lake('status', '--tenant', 'acme', '--format', 'jsonl');
  expect([status.code, status.stderr]).toEqual([0, '']);
  expect(status.stdout.split('\n').slice(1, -1).map((line) => JSON.parse(line) as unknown)).toEqual([
    { stream: 'clicks', tenant: 'acme', files: 1, rows: 1, bytes: expect.any(Number) as number },
    { stream: 'orders', tenant: 'acme', files: 1, rows: 1, bytes: expect.any(Number) as number },
    { stream: 'public.refunds', tenant: 'acme', files: 1, rows: 1, bytes: expect.any(Number) as number },
  ]);
  const one = await lake('status', '--tenant', 'acme', '--stream', 'orders', '--format', 'jsonl');
  expect(one.stdout.split('\n').slice(1, -1).map((line) => (JSON.parse(line) as { stream: string }).stream)).toEqual(['orders']);
});

it('a --tenant no data file has is named on stderr with the tenants that differ from it only in case or Unicode form', async () => {
  const retention = await lake('retention', '--before', '2000-01-01T00:00:00Z', '--tenant', 'ACME', '--stream', 'clicks');
  expect(retention.code).toBe(0);
  expect(retention.stderr).toBe('lake: no data file of stream "clicks" belongs to tenant "ACME" (tenant ids are compared exactly); tenants that differ from it only in letter case or Unicode form: "Acme", "acme"\n');
  const asOf = await lake('as-of', '--stream', 'clicks', '--tenant', 'cafe\u0301');
  expect(asOf.stderr).toBe('');
  // A reader of one tenant with no files has no views: the note says why before DuckDB's error.
  const unknown = await lake('query', 'select count(*) AS n from clicks', '--tenant', 'cafe', '--format', 'jsonl');
  expect(unknown.stderr).toMatch(/^lake: no data file belongs to tenant "cafe" \(tenant ids are compared exactly\)\n.*Table with name clicks does not exist/s);
});

it('retention refuses --keep-days with --before, and commands refuse options they do not apply, instead of ignoring them', async () => {
  const both = await lake('retention', '--keep-days', '100000', '--before', '2100-01-01T00:00:00Z', '--grace-ms', '0');
  expect(both.code).toBe(2);
  expect(both.stderr).toMatch(/takes --keep-days N or --before <ISO time>, not both/);
  const compact = await lake('compact', '--keep-days', '1', '--min-files', '1', '--grace-ms', '0');
  expect(compact.code).toBe(2);
  expect(compact.stderr).toMatch(/--keep-days does not apply to tributary lake compact \(it takes --stream, --tenant, --min-files, --grace-ms, --orphan-age-ms\)/);
  const query = await lake('query', 'select 1 AS x', '--stream', 'clicks', '--time', '2024-01-01');
  expect(query.code).toBe(2);
  expect(query.stderr).toMatch(/--stream, --time do not apply to tributary lake query/);
  // Nothing was removed or rewritten.
  expect((await readStreamRows(config(), { stream: 'clicks' })).length).toBe(tenants.length);
});

it('a --stream the lake has no file of is named on stderr with the streams of that name in a namespace', async () => {
  const bare = await lake('retention', '--before', '2021-01-01T00:00:00Z', '--stream', 'refunds', '--grace-ms', '0');
  expect(bare.code).toBe(0);
  expect(bare.stderr).toBe('lake: the lake has no file of stream "refunds"; streams of that name in a namespace or in another letter case: "public.refunds"\n');
  expect(JSON.parse(bare.stdout)).toMatchObject({ filesRemoved: 0 });
  const keyed = await lake('retention', '--before', '2021-01-01T00:00:00Z', '--stream', 'public.refunds', '--tenant', 'acme', '--grace-ms', '0');
  expect([keyed.code, keyed.stderr]).toEqual([0, '']);
  expect(JSON.parse(keyed.stdout)).toMatchObject({ filesRemoved: 1, rowsRemoved: 1 });
});
