import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyRetention, queryLake, readLatestAsOf, readStreamRows } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// Tenant ids that the lake's paths, SQL and retention handled unlike other ids.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-tenant-ids-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('m', { updated_at: { type: 'string', format: 'date-time' } });
const row = (id: number, tenant: string): Record<string, unknown> => ({ id, tenant_id: tenant, customer_id: `c${id}`, updated_at: '2026-03-01T10:00:00Z' });

it('tenant ids differing only in an unpaired surrogate are quarantined, not stored as one tenant', async () => {
  // UTF-8 has no form for an unpaired surrogate: both ids were stored as `a\ufffdb`, in one partition.
  const config = { path: join(root, 'surrogates') };
  const rejected = await writeSession(config, stream, [[row(1, 'a\ud800b'), row(2, 'a\udc00b'), row(3, 'plain')]]);
  expect(rejected.map((r) => r.index)).toEqual([0, 1]);
  expect(rejected[0]!.reason).toMatch(/unpaired UTF-16 surrogate/);
  const rows = await readStreamRows(config, { stream: 'm' });
  expect(rows.map((r) => [r.tenant_id, r.payload.id])).toEqual([['plain', 3]]);
});

it('a tenant id holding NUL is read back through --tenant', async () => {
  // DuckDB's parser ends a quoted string at NUL: the tenant filter failed with "unterminated quoted string".
  const config = { path: join(root, 'nul') };
  expect(await writeSession(config, stream, [[row(1, 'x\u0000y'), row(2, 'x')]])).toEqual([]);
  const latest = await readLatestAsOf(config, { stream: 'm', tenant: 'x\u0000y' });
  expect(latest.map((r) => [r.tenant_id, r.payload.id])).toEqual([['x\u0000y', 1]]);
  expect(await queryLake(config, 'SELECT count(*)::INTEGER AS n FROM m', { tenant: 'x\u0000y' })).toEqual([{ n: 1 }]);
});

it("one tenant's retention does not remove another tenant's quarantined records of a stream configured by its bare name", async () => {
  // The sync finds `streams.orders` for stream `public.orders` (its bare name); retention looked
  // the stream up by its key only, derived the default tenant for the record of tenant B, and
  // removed it when run for tenant D.
  const config = { path: join(root, 'namespaced'), default_tenant: 'D', streams: { orders: { tenant_id_field: 'org', event_time_field: 'updated_at' } } };
  const orders = keyedStream('public.orders', { org: { type: 'string' }, updated_at: { type: 'string', format: 'date-time' } }, { name: 'orders' });
  const noCustomer = { id: 1, org: 'B', updated_at: '2020-03-01T10:00:00Z' };
  const rejected = await writeSession(config, orders, [[noCustomer]]);
  expect(rejected.map((r) => r.reason)).toEqual([expect.stringMatching(/no customer id/)]);
  expect(await queryLake(config, 'SELECT tenant_id FROM quarantine')).toEqual([{ tenant_id: 'B' }]);
  expect(await applyRetention(config, { before: '2021-01-01T00:00:00Z', tenant: 'D', graceMs: 0 })).toMatchObject({ quarantineRecordsRemoved: 0 });
  expect(await applyRetention(config, { before: '2021-01-01T00:00:00Z', tenant: 'B', graceMs: 0 })).toMatchObject({ quarantineRecordsRemoved: 1 });
});
