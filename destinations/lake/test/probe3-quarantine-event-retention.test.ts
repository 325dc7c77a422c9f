import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { applyRetention, queryLake } from '../src/index.js';
import { clickStream, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

// Retention expired quarantined records only by when they were quarantined. A record whose
// event is older than the cutoff (the rows of its day are dropped) but that a sync refused
// recently stayed; one that each sync quarantines again (a full refresh re-reading an old bad
// row) stayed forever, and so did an old record sharing a file with newer ones. A user running
// `retention --keep-days N` for a retention obligation still had those events in the lake.
// Now a quarantined record expires by its event time too, and a file mixing expired records
// with others is rewritten without them.
let root: string;
let moto: MotoServer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-qer-'));
  moto = await startMoto();
  await moto.createBucket('probe3-quarantine-event-retention');
});
afterAll(async () => {
  await moto?.stop();
  await rm(root, { recursive: true, force: true });
});

const stream = clickStream();
const recent = new Date(Date.now() - 86_400_000).toISOString();
// Refused by validation (id must be an integer).
const bad = (id: string, eventTime: string): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: eventTime });
const good = (id: number, eventTime: string): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: eventTime });

/** Two syncs re-reading one old bad record (event in 2020), each with a recent bad one. */
async function requarantined(config: Record<string, unknown>): Promise<void> {
  for (const n of [1, 2]) {
    const rejected = await writeSession(config, stream, [[good(n, '2020-01-01T10:00:00Z'), good(10 + n, recent), bad('old-secret', '2020-01-01T10:00:00Z'), bad(`recent-${n}`, recent)]]);
    expect(rejected).toHaveLength(2);
  }
}

const quarantinedIds = async (config: Record<string, unknown>): Promise<string[]> =>
  (await queryLake(config, 'SELECT record.id::VARCHAR AS id FROM quarantine ORDER BY id')).map((r) => JSON.parse(String(r.id)) as string);

it('retention removes quarantined records whose event is before the cutoff, also when re-quarantined and sharing files with newer ones (local)', async () => {
  const path = join(root, 'local');
  const config = { path };
  await requarantined(config);
  const result = await applyRetention(config, { keepDays: 365, graceMs: 0 });
  expect(await quarantinedIds(config)).toEqual(['recent-1', 'recent-2']);
  expect(result).toMatchObject({ filesRemoved: 2, quarantineFilesRemoved: 0, quarantineFilesRewritten: 2, quarantineRecordsRemoved: 2 });
  expect(await queryLake(config, 'SELECT count(*)::INTEGER AS n FROM clicks')).toEqual([{ n: 2 }]);
  // Past the grace period the files that held the old record are deleted from storage too.
  await applyRetention(config, { keepDays: 365, graceMs: 0 });
  const dir = join(path, '_quarantine', 'clicks');
  const texts = await Promise.all((await readdir(dir)).map((name) => readFile(join(dir, name), 'utf8')));
  expect(texts).toHaveLength(2);
  expect(texts.join('')).not.toContain('old-secret');
  // A cutoff before every event and quarantine time removes nothing more.
  expect(await applyRetention(config, { before: '2019-01-01T00:00:00Z', graceMs: 0 })).toMatchObject({ quarantineFilesRemoved: 0, quarantineFilesRewritten: 0, quarantineRecordsRemoved: 0 });
  expect(await quarantinedIds(config)).toEqual(['recent-1', 'recent-2']);
});

it('retention rewrites quarantine files on S3 too', async () => {
  const config = motoLakeConfig(moto.endpoint, 'probe3-quarantine-event-retention');
  await requarantined(config);
  const result = await applyRetention(config, { keepDays: 365, graceMs: 0 });
  expect(await quarantinedIds(config)).toEqual(['recent-1', 'recent-2']);
  expect(result).toMatchObject({ quarantineFilesRewritten: 2, quarantineRecordsRemoved: 2 });
  await applyRetention(config, { keepDays: 365, graceMs: 0 });
  const listed = await fetch(`${moto.endpoint}/probe3-quarantine-event-retention?list-type=2&prefix=lake/_quarantine/`).then((r) => r.text());
  const keys = [...listed.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!);
  expect(keys).toHaveLength(2);
  const bodies = await Promise.all(keys.map((key) => fetch(`${moto.endpoint}/probe3-quarantine-event-retention/${key}`).then((r) => r.text())));
  expect(bodies.join('')).not.toContain('old-secret');
});
