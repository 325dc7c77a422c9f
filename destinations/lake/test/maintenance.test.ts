import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '@tributary/core';
import { lakeConfigSchema, loadLakeState, openLakeReader, openStore } from '../src/index.js';
import { duckQuery, runCli, syncSmallCommitsLake } from './helpers.js';

// Compaction and retention through the CLI binary, on a lake written in many small commits.
let dir: string;
const lake = () => ({ path: join(dir, 'lake') });
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-lake-maint-'));
  await syncSmallCommitsLake(dir, { connection: 'maint', seed: 4, contacts: 6_000 });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function visible() {
  const store = openStore(parseConfig(lakeConfigSchema, lake()));
  try {
    return [...(await loadLakeState(store)).files.values()];
  } finally {
    store.close();
  }
}

async function filesOnDisk(): Promise<number> {
  return (await readdir(join(dir, 'lake', 'data'), { recursive: true })).filter((f) => String(f).endsWith('.parquet')).length;
}

it('compaction merges each tenant/partition into one file, keeps every row, and a reader opened before it still reads its snapshot', async () => {
  const before = await visible();
  const groups = new Set(before.map((f) => `${f.tenant}/${f.partition}`));
  expect(before.length).toBeGreaterThan(groups.size);
  const reader = await openLakeReader(lake());
  try {
    const compact = await runCli(['lake', 'compact', '--min-files', '2', '--config', 'sync.json'], dir);
    expect(compact.code, compact.stderr).toBe(0);
    expect(JSON.parse(compact.stdout)).toMatchObject({ rows: 6000, duplicatesDropped: 0, filesBefore: before.length });
    const after = await visible();
    expect(after.length).toBe(groups.size);
    // Each merged file holds one tenant only (independent DuckDB over the new files).
    for (const f of after) {
      const [r] = await duckQuery(`SELECT count(*) AS n, count(DISTINCT tenant_id) AS t, min(tenant_id) AS tenant FROM read_parquet('${join(dir, 'lake', f.path)}')`);
      expect(r).toEqual({ n: f.rows, t: 1, tenant: f.tenant });
    }
    // The old snapshot's files stay until the grace period ends: the earlier reader still works.
    expect(await reader.query('select count(*) as n from contacts')).toEqual([{ n: 6000 }]);
  } finally {
    await reader.close();
  }
  const query = await runCli(['lake', 'query', 'select count(*) as n, count(distinct id) as ids from contacts', '--config', 'sync.json', '--format', 'jsonl'], dir);
  expect(JSON.parse(query.stdout)).toEqual({ n: 6000, ids: 6000 });
});

it('retention drops one tenant’s old partitions only, and deletes removed files after the grace period', async () => {
  const files = await visible();
  const tenant = files[0]!.tenant;
  const cutoff = new Date(Math.max(...files.filter((f) => f.tenant === tenant).map((f) => f.maxEventTime)) + 1).toISOString();
  const keep = files.filter((f) => f.tenant !== tenant).reduce((n, f) => n + f.rows, 0);
  const retention = await runCli(['lake', 'retention', '--before', cutoff, '--tenant', tenant, '--stream', 'contacts', '--config', 'sync.json'], dir);
  expect(retention.code, retention.stderr).toBe(0);
  expect(JSON.parse(retention.stdout)).toMatchObject({ rowsRemoved: 6000 - keep });
  const query = await runCli(['lake', 'query', 'select tenant_id, count(*) as n from contacts group by 1', '--config', 'sync.json', '--format', 'jsonl'], dir);
  expect(query.stdout.trim().split('\n').map((l) => JSON.parse(l) as { tenant_id: string; n: number })).toEqual([{ tenant_id: files.find((f) => f.tenant !== tenant)!.tenant, n: keep }]);

  const onDisk = await filesOnDisk();
  const purge = await runCli(['lake', 'compact', '--grace-ms', '0', '--config', 'sync.json'], dir);
  expect(purge.code, purge.stderr).toBe(0);
  expect(JSON.parse(purge.stdout).filesDeleted).toBeGreaterThan(0);
  expect(await filesOnDisk()).toBe((await visible()).length);
  expect(onDisk).toBeGreaterThan(await filesOnDisk());
});

it('files no commit names (a crash between publishing and committing) are invisible to readers and deleted once an hour old', async () => {
  const [file] = await visible();
  const dirOf = join(dir, 'lake', ...file!.path.split('/').slice(0, -1));
  const old = join(dirOf, 'crashed-session-1-0.parquet');
  const fresh = join(dirOf, 'crashed-session-2-0.parquet');
  await copyFile(join(dir, 'lake', file!.path), old);
  await copyFile(join(dir, 'lake', file!.path), fresh);
  const hourAgo = new Date(Date.now() - 2 * 3600_000);
  await utimes(old, hourAgo, hourAgo);
  const rowsBefore = (await visible()).reduce((n, f) => n + f.rows, 0);
  const query = await runCli(['lake', 'query', 'select count(*) as n from contacts', '--config', 'sync.json', '--format', 'jsonl'], dir);
  expect(JSON.parse(query.stdout)).toEqual({ n: rowsBefore });
  const compact = await runCli(['lake', 'compact', '--config', 'sync.json'], dir);
  expect(compact.code, compact.stderr).toBe(0);
  expect(JSON.parse(compact.stdout).orphansDeleted).toBe(1);
  expect(existsSync(old)).toBe(false);
  expect(existsSync(fresh)).toBe(true);
});

it('a file published long after it was written is not an orphan: a compaction between its publishing and the log entry keeps it', async () => {
  // A long session seals a stage (its Parquet file written in the temp dir) and commits
  // over an hour later; a compaction may list the lake after the file is published and
  // before the log names it. The file's age must count from its publishing.
  const [file] = await visible();
  const written = join(dir, 'sealed-long-ago.parquet');
  await copyFile(join(dir, 'lake', file!.path), written);
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  await utimes(written, twoHoursAgo, twoHoursAgo);
  const key = [...file!.path.split('/').slice(0, -1), 'long-session-0.parquet'].join('/');
  const store = openStore(parseConfig(lakeConfigSchema, lake()));
  try {
    await store.putFile(key, written);
  } finally {
    store.close();
  }
  const compact = await runCli(['lake', 'compact', '--config', 'sync.json'], dir);
  expect(compact.code, compact.stderr).toBe(0);
  expect(JSON.parse(compact.stdout).orphansDeleted).toBe(0);
  expect(existsSync(join(dir, 'lake', ...key.split('/')))).toBe(true);
});

it("files below data/ that are not in this lake's layout (another lake nested under it) are never swept as its orphans", async () => {
  // A lake at the root of a bucket or directory, and another whose prefix is `data/other/`:
  // the other lake's data files sit below this one's `data/`, named by that lake's log only.
  const [file] = await visible();
  const foreign = join(dir, 'lake', 'data', 'other', 'data', 'contacts', 'tenant_id=t1', 'event_date=2024-01-01', 'session-1-0.parquet');
  await mkdir(dirname(foreign), { recursive: true });
  await copyFile(join(dir, 'lake', file!.path), foreign);
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  await utimes(foreign, twoHoursAgo, twoHoursAgo);
  const compact = await runCli(['lake', 'compact', '--config', 'sync.json'], dir);
  expect(compact.code, compact.stderr).toBe(0);
  expect(JSON.parse(compact.stdout).orphansDeleted).toBe(0);
  expect(existsSync(foreign)).toBe(true);
});
