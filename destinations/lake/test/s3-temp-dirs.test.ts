import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { lakeDestination, openLakeReader } from '../src/index.js';
import { clickStream, motoLakeConfig, startMoto, type MotoServer } from './helpers.js';

// A session starting on an S3 lake removes the temp dirs that crashed processes left in the
// OS temp dir (`tributary-lake-*`, over an hour old). An hour-old dir can also belong to a
// process still running: an open reader's download cache, a long sync's staged files. Their
// age is set back here instead of waiting an hour.
let moto: MotoServer;
const bucket = 'lake-temp-dirs';
beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket(bucket);
});
afterAll(() => moto?.stop());

const lakeConfig = (prefix: string) => motoLakeConfig(moto.endpoint, bucket, { prefix, rows_per_file: 1000 });
// A tenant of this run only: it names the temp dirs' contents, so the test finds its own dirs among those of other processes.
const tenant = `t-${randomUUID()}`;
const records = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ id: from + i, tenant_id: tenant, customer_id: 'c1', event_time: '2024-01-01T00:00:00Z' }));
const open = (prefix: string, stream: string) => lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, lakeConfig(prefix)), [clickStream(stream)]);
const twoHoursAgo = () => new Date(Date.now() - 2 * 3600_000);
/** The temp dirs created since `before` holding this run's tenant. */
async function ownTempDirs(before: Set<string>): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await readdir(tmpdir())).filter((d) => d.startsWith('tributary-lake-') && !before.has(d))) {
    const entries = await readdir(join(tmpdir(), name), { recursive: true }).catch(() => [] as string[]);
    if (entries.some((e) => e.includes(`tenant_id=${tenant}`))) found.push(name);
  }
  return found;
}

it('a reader open for over an hour keeps its downloaded files when a session starts', async () => {
  const first = await open('reader/', 'clicks');
  await first.write({ stream: 'clicks', records: records(1, 3), emittedAt: Date.now() });
  await first.close({ completed: true });

  const before = new Set(await readdir(tmpdir()));
  const reader = await openLakeReader(lakeConfig('reader/'));
  try {
    const [cache] = await ownTempDirs(before);
    expect(cache).toMatch(/^tributary-lake-read-/);
    await utimes(join(tmpdir(), cache!), twoHoursAgo(), twoHoursAgo());
    const other = await open('reader/', 'views');
    await other.close({ completed: false });
    expect(await reader.query('SELECT count(*)::INT AS n FROM events')).toEqual([{ n: 3 }]);
  } finally {
    await reader.close();
  }
});

it('a sync running for over an hour keeps its staged files when another session starts; its commit holds every row', async () => {
  const before = new Set(await readdir(tmpdir()));
  const long = await open('long/', 'clicks');
  // 1,000 rows fill a stage: the next batch seals it, and its Parquet file waits in the temp dir for the commit.
  await long.write({ stream: 'clicks', records: records(1, 1000), emittedAt: Date.now() });
  await long.write({ stream: 'clicks', records: records(1001, 5), emittedAt: Date.now() });
  // The sealed stage is written in the background: wait for its file to appear.
  let own: string | undefined;
  for (let i = 0; i < 400 && own === undefined; i++) {
    [own] = await ownTempDirs(before);
    if (own === undefined) await new Promise((r) => setTimeout(r, 25));
  }
  expect(own).toBeDefined();
  await utimes(join(tmpdir(), own!), twoHoursAgo(), twoHoursAgo());
  const other = await open('long/', 'views');
  await other.close({ completed: false });
  await long.commit();
  await long.close({ completed: true });
  const reader = await openLakeReader(lakeConfig('long/'));
  try {
    expect(await reader.query('SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS ids FROM events')).toEqual([{ n: 1005, ids: 1005 }]);
  } finally {
    await reader.close();
  }
});

it('the hour-old dir of a crashed reader (its process gone) is still removed', async () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  const dir = join(tmpdir(), `tributary-lake-read-${randomUUID()}`);
  await mkdir(join(dir, 'data'), { recursive: true });
  await writeFile(join(dir, '.tributary-owner'), JSON.stringify({ host: hostname(), pid: dead }));
  await utimes(dir, twoHoursAgo(), twoHoursAgo());
  const session = await open('crashed/', 'clicks');
  await session.close({ completed: false });
  expect(await stat(dir).then(() => 'present', () => 'removed')).toBe('removed');
});
