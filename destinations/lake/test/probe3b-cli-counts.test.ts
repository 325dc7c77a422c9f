import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readStreamRows } from '../src/index.js';
import { keyedStream, runCli, writeSession } from './helpers.js';

// `tributary lake retention|compact` take counts (days, ms, files). An empty value, as a
// script with an unset variable passes it (`--keep-days="$DAYS"`), was read as 0: retention
// then removed every file before today.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3b-cli-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

it('an empty or non-decimal count is a usage error that removes nothing', async () => {
  const config = { path: join(root, 'lake'), streams: { s: { event_time_field: 'at' } } };
  await writeSession(config, keyedStream('s', { at: { type: 'string' } }), [[{ id: 1, tenant_id: 't', customer_id: 'c', at: '2024-01-01T00:00:00Z' }]]);
  await writeFile(join(root, 'lake.json'), JSON.stringify(config));
  for (const args of [['retention', '--keep-days='], ['retention', '--keep-days', ' '], ['retention', '--keep-days', '0x10'], ['retention', '--before', '2030-01-01T00:00:00Z', '--grace-ms='], ['compact', '--orphan-age-ms=']]) {
    const run = await runCli(['lake', ...args, '--config', 'lake.json'], root);
    expect(run.code, `${args.join(' ')}: ${run.stdout}${run.stderr}`).toBe(2);
    expect(run.stderr).toMatch(/must be a non-negative integer/);
    expect((await readStreamRows(config, { stream: 's' })).length).toBe(1);
  }
  // Decimal counts still work.
  const keep = await runCli(['lake', 'retention', '--keep-days', '36500', '--config', 'lake.json'], root);
  expect(keep.code, keep.stderr).toBe(0);
  expect(JSON.parse(keep.stdout)).toMatchObject({ filesRemoved: 0 });
});
