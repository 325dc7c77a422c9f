import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, type RecordData } from '@tributary/core';
import { applyRetention, lakeConfigSchema, loadLakeState, openStore, queryLake, type LakeStore } from '../src/index.js';
import { retireExpired } from '../src/maintenance.js';
import { clickStream, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

// Retention drops the data files of old partitions; the records quarantined with them (JSON
// lines per stream and session, `quarantined_at` on each) must go too once they are all
// older than the cutoff, after the same grace period as data files. Quarantined records
// are not partitioned by tenant: a tenant-scoped run removes that tenant's expired records,
// rewriting a file that also holds others without them.
let root: string;
let moto: MotoServer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-rq-'));
  moto = await startMoto();
  await moto.createBucket('probe3-retention-quarantine');
});
afterAll(async () => {
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});

const stream = clickStream();
const good = (id: number, tenant: string): RecordData => ({ id, tenant_id: tenant, customer_id: 'c1', event_time: '2024-01-01T10:00:00Z' });
// Refused by validation (id must be an integer): quarantined whole, with its tenant. Its event
// time is after every cutoff here, so these cases expire records by when they were quarantined
// (retention expires them by event time too: probe3-quarantine-event-retention.test.ts).
const bad = (id: string, tenant?: string): RecordData => ({ id, ...(tenant !== undefined ? { tenant_id: tenant } : {}), customer_id: 'c1', event_time: '2100-01-01T10:00:00Z' });

async function quarantinePaths(config: Record<string, unknown>): Promise<string[]> {
  const store = openStore(parseConfig(lakeConfigSchema, config));
  try {
    return (await loadLakeState(store)).quarantine.map((q) => q.path);
  } finally {
    store.close();
  }
}

/** Two syncs, each quarantining records: the first before `between`, the second after it. */
async function twoSyncs(config: Record<string, unknown>): Promise<{ between: number; first: string[]; second: string[] }> {
  expect(await writeSession(config, stream, [[good(1, 't1'), bad('old-secret', 't1')]])).toHaveLength(1);
  const first = await quarantinePaths(config);
  await new Promise((r) => setTimeout(r, 5));
  const between = Date.now();
  await new Promise((r) => setTimeout(r, 5));
  expect(await writeSession(config, stream, [[good(2, 't1'), bad('new-one', 't1')]])).toHaveLength(1);
  const second = (await quarantinePaths(config)).filter((p) => !first.includes(p));
  return { between, first, second };
}

async function localRetentionCase(name: string): Promise<void> {
  const config = { path: join(root, name) };
  const { between, first, second } = await twoSyncs(config);
  const result = await applyRetention(config, { before: between, graceMs: 0 });
  expect(await queryLake(config, 'SELECT record.id::VARCHAR AS id FROM quarantine')).toEqual([{ id: '"new-one"' }]);
  expect(await quarantinePaths(config)).toEqual(second);
  expect(result).toMatchObject({ filesRemoved: 2, quarantineFilesRemoved: 1, quarantineRecordsRemoved: 1 });
  // Removed from the log at once; deleted from storage by the next run past the grace period.
  expect(existsSync(join(root, name, first[0]!))).toBe(true);
  expect(await applyRetention(config, { before: between, graceMs: 0 })).toMatchObject({ filesDeleted: 3, quarantineFilesRemoved: 0 });
  expect(existsSync(join(root, name, first[0]!))).toBe(false);
  expect(existsSync(join(root, name, second[0]!))).toBe(true);
}

it('retention removes quarantine files whose records were all quarantined before the cutoff, and keeps newer ones (local lake)', async () => {
  await localRetentionCase('local');
});

it('retention removes expired quarantine files on S3 too (files read from the bucket)', async () => {
  const config = motoLakeConfig(moto.endpoint, 'probe3-retention-quarantine');
  const { between, second } = await twoSyncs(config);
  expect(await applyRetention(config, { before: between, graceMs: 0 })).toMatchObject({ filesRemoved: 2, quarantineFilesRemoved: 1, quarantineRecordsRemoved: 1 });
  expect(await quarantinePaths(config)).toEqual(second);
  expect(await queryLake(config, 'SELECT record.id::VARCHAR AS id FROM quarantine')).toEqual([{ id: '"new-one"' }]);
  expect(await applyRetention(config, { before: between, graceMs: 0 })).toMatchObject({ filesDeleted: 3 });
  const listed = await fetch(`${moto.endpoint}/probe3-retention-quarantine?list-type=2&prefix=lake/_quarantine/`).then((r) => r.text());
  expect(listed).toContain(second[0]!);
  expect((listed.match(/<Key>/g) ?? []).length).toBe(1);
});

it('a tenant-scoped retention removes that tenant\'s expired records: a file of them goes, a file mixing them with others is rewritten without them', async () => {
  const config = { path: join(root, 'tenants') };
  expect(await writeSession(config, stream, [[bad('t1-only-a', 't1'), bad('t1-only-b', 't1')]])).toHaveLength(2);
  const onlyT1 = await quarantinePaths(config);
  // A file mixing t1's, t2's and a record without any tenant.
  expect(await writeSession(config, stream, [[bad('t1-mixed', 't1'), bad('t2-mixed', 't2'), bad('no-tenant')]])).toHaveLength(3);
  const mixed = (await quarantinePaths(config)).filter((p) => !onlyT1.includes(p));
  const cutoff = Date.now() + 60_000;
  const result = await applyRetention(config, { before: cutoff, tenant: 't1', graceMs: 0 });
  expect(result).toMatchObject({ quarantineFilesRemoved: 1, quarantineFilesRewritten: 1, quarantineRecordsRemoved: 3 });
  const rewritten = await quarantinePaths(config);
  expect(rewritten).toHaveLength(1);
  expect(rewritten).not.toEqual(mixed);
  expect(await queryLake(config, 'SELECT record.id::VARCHAR AS id FROM quarantine ORDER BY id')).toEqual([{ id: '"no-tenant"' }, { id: '"t2-mixed"' }]);
  // A run for the whole lake removes the rest.
  expect(await applyRetention(config, { before: cutoff, graceMs: 0 })).toMatchObject({ quarantineFilesRemoved: 1, quarantineRecordsRemoved: 2, quarantineFilesRewritten: 0 });
  expect(await quarantinePaths(config)).toEqual([]);
});

it('a tenant-scoped retention reads the tenant as the sync did: a constant tenant of the stream, else the field, else default_tenant', async () => {
  const config = { path: join(root, 'mapped'), default_tenant: 'fallback', streams: { clicks: { tenant_id_field: 'org' } } };
  // `org` missing: the record falls back to default_tenant, as its envelope would.
  expect(await writeSession(config, stream, [[bad('fallback-a', 'ignored'), { id: 'fallback-b', org: '', customer_id: 'c' }]])).toHaveLength(2);
  const cutoff = Date.now() + 60_000;
  expect(await applyRetention(config, { before: cutoff, tenant: 'ignored', graceMs: 0 })).toMatchObject({ quarantineFilesRemoved: 0, quarantineFilesRewritten: 0 });
  expect(await applyRetention(config, { before: cutoff, tenant: 'fallback', graceMs: 0 })).toMatchObject({ quarantineFilesRemoved: 1, quarantineRecordsRemoved: 2 });
});

it('a retention run that dies before its log entry leaves a trash record naming quarantine files the log still has: a later run never deletes them', async () => {
  const config = { path: join(root, 'died') };
  expect(await writeSession(config, stream, [[bad('kept', 't1')]])).toHaveLength(1);
  const [path] = await quarantinePaths(config);
  const store = openStore(parseConfig(lakeConfigSchema, config));
  const dying: LakeStore = {
    ...store,
    async createIfAbsent(key, body) {
      if (key.startsWith('_tributary/log/')) throw new Error('simulated crash before the log entry');
      return store.createIfAbsent(key, body);
    },
  };
  try {
    await expect(retireExpired(dying, Date.now() + 60_000, { graceMs: 0 })).rejects.toThrow('simulated crash');
  } finally {
    store.close();
  }
  // The next run (a cutoff before the record: nothing to remove) empties the trash.
  expect(await applyRetention(config, { before: 0, graceMs: 0 })).toMatchObject({ quarantineFilesRemoved: 0 });
  expect(existsSync(join(root, 'died', path!))).toBe(true);
  expect(await queryLake(config, 'SELECT record.id::VARCHAR AS id FROM quarantine')).toEqual([{ id: '"kept"' }]);
});
