import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { configureCatalog, createConnectorContext, createFileStateStore, parseConfig, runSync } from '@tributary/core';
import { sampleSource } from '@tributary/source-sample';
import { lakeDestination } from '../src/index.js';

// The lake's log records each sync's connection (from runSync, through the destination's
// context), so that completing a sync ends only its own connection's replay windows
// (probe4-two-connections.test.ts has the two-connection cases).
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-lake-connection-log-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

it('append and complete entries name the connection runSync was given', async () => {
  const config = parseConfig(sampleSource.spec.connectionSpecification, { seed: 3, counts: { companies: 5, contacts: 40, deals: 0, activities: 0 } });
  const catalog = configureCatalog(await sampleSource.discover(createConnectorContext({}), config), [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }], ['append', 'append_dedup']);
  const lake = { path: join(dir, 'lake') };
  const result = await runSync({ connection: 'crm-to-lake', source: sampleSource, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: createFileStateStore(join(dir, 'state')) });
  expect(result.outcome).toBe('completed');
  const logDir = join(lake.path, '_tributary', 'log');
  const entries = await Promise.all((await readdir(logDir)).sort().map(async (name) => JSON.parse(await readFile(join(logDir, name), 'utf8')) as { kind: string; connection?: string }));
  expect(entries.map((e) => [e.kind, e.connection])).toEqual([
    ['append', 'crm-to-lake'],
    ['complete', 'crm-to-lake'],
  ]);
});
