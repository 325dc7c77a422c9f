import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { lakeDestination, readStreamRows } from '../src/index.js';
import { clickStream, runCli } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe2-retention-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

it('retention --before without an offset is UTC, as every other time the lake takes, whatever the host time zone', async () => {
  const config = { path: join(root, 'lake') };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [clickStream()]);
  await session.write({
    stream: 'clicks',
    records: [
      { id: 1, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T23:00:00Z' },
      { id: 2, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-02T01:00:00Z' },
    ],
    emittedAt: Date.now(),
  });
  await session.commit();
  await session.close({ completed: true });
  await writeFile(join(root, 'lake.json'), JSON.stringify(config));

  // Los Angeles is 8 hours behind UTC in January: read as local time, the cutoff was
  // 2024-01-02T08:00Z and the day of 2024-01-02 went too.
  const retention = await runCli(['lake', 'retention', '--before', '2024-01-02T00:00:00', '--config', 'lake.json', '--grace-ms', '0'], root, { TZ: 'America/Los_Angeles' });
  expect(retention.stderr).toBe('');
  expect(retention.code).toBe(0);
  expect(JSON.parse(retention.stdout)).toMatchObject({ filesRemoved: 1, rowsRemoved: 1 });
  expect((await readStreamRows(config, { stream: 'clicks' })).map((r) => r.payload.id)).toEqual([2]);
});
