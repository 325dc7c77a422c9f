import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { lakeDestination } from '../src/index.js';
import { clickStream, runCli } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe2-tenant-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

it('--tenant T shows no other tenant\'s quarantined records (the quarantine is not partitioned by tenant)', async () => {
  const config = { path: join(root, 'lake') };
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [clickStream()]);
  await session.write({
    stream: 'clicks',
    records: [
      { id: 1, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T10:00:00Z' },
      // Refused (id is not an integer): quarantined with the whole record, tenant t2's data.
      { id: 'secret-of-t2', tenant_id: 't2', customer_id: 'c2', event_time: '2024-01-01T11:00:00Z' },
    ],
    emittedAt: Date.now(),
  });
  await session.commit();
  await session.close({ completed: true });
  await writeFile(join(root, 'lake.json'), JSON.stringify(config));

  const all = await runCli(['lake', 'query', 'select count(*) AS n from quarantine', '--config', 'lake.json', '--format', 'jsonl'], root);
  expect(all.stdout).toBe('{"n":1}\n');
  const t1 = await runCli(['lake', 'query', 'select record from quarantine', '--config', 'lake.json', '--tenant', 't1', '--format', 'jsonl'], root);
  expect(t1.stdout).not.toContain('secret-of-t2');
  expect(t1.code).not.toBe(0);
  expect(t1.stderr).toContain('--tenant');
  const events = await runCli(['lake', 'query', 'select count(*) AS n from events', '--config', 'lake.json', '--tenant', 't1', '--format', 'jsonl'], root);
  expect([events.code, events.stdout]).toEqual([0, '{"n":1}\n']);
});
