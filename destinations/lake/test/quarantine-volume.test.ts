import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { lakeDestination, queryLake } from '../src/index.js';

// Syncs whose records are mostly refused (no tenant id here): the quarantine must hold them
// all, however many, and a replay of them must not store them twice.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-quarantine-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const jsonSchema = { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, note: { type: 'string' } } };
const stream: DestinationStream = { key: 'notes', name: 'notes', syncMode: 'incremental', destinationSyncMode: 'append', primaryKey: [['id']], cursorField: [], jsonSchema, resuming: false };
const untenanted = (id: number, note = 'n'): RecordData => ({ id, customer_id: `c${id}`, note });

/** One session writing `batches`; returns the stage counts the close line reports. */
async function sync(config: Record<string, unknown>, batches: RecordData[][], completed = true): Promise<string> {
  const lines: string[] = [];
  const ctx = createConnectorContext({ logger: { info: (m: string) => lines.push(m), warn: () => undefined, error: () => undefined, debug: () => undefined } });
  const session = await lakeDestination.open(ctx, parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  for (const records of batches) await session.write({ stream: 'notes', records, emittedAt: Date.now() });
  await session.commit();
  await session.close({ completed });
  return lines.join('\n');
}

it('a commit whose quarantined records are more text than one string can hold (2^29 characters) stores them all', async () => {
  const config = { path: join(root, 'large') };
  const mib = 'x'.repeat(1 << 20);
  // 520 records of 1 MiB: ~545M characters of JSON lines.
  const batches = Array.from({ length: 4 }, (_, b) => Array.from({ length: 130 }, (_, i) => untenanted(b * 130 + i, mib)));
  await sync(config, batches);
  expect(await queryLake(config, 'SELECT count(*) AS n, count(DISTINCT record.id) AS ids, min(length(record.note::VARCHAR)) AS len FROM quarantine')).toEqual([{ n: 520, ids: 520, len: (1 << 20) + 2 }]);
}, 120_000);

it('quarantined records go to files of 10,000 between commits; replayed after a crash, they are reported, not stored again', async () => {
  const config = { path: join(root, 'many') };
  const batches = Array.from({ length: 13 }, (_, b) => Array.from({ length: 2_000 }, (_, i) => untenanted(b * 2_000 + i)));
  expect(await sync(config, batches, false)).toContain('26000 record(s) quarantined');
  const files = await readdir(join(root, 'many', '_quarantine', 'notes'));
  expect(files.length).toBe(3);
  // The rerun after the crash: the same records, all already in the quarantine.
  const rerun = await sync(config, batches);
  expect(rerun).toContain('26000 record(s) quarantined (26000 of them replays already in the quarantine)');
  expect(await queryLake(config, 'SELECT count(*) AS n, count(DISTINCT record.id) AS ids FROM quarantine')).toEqual([{ n: 26_000, ids: 26_000 }]);
});
