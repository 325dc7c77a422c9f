import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryLake } from '../src/index.js';
import { keyedStream, runCli, writeSession } from './helpers.js';

// `tributary lake query` prints whatever the SQL returns: nested values (LIST, STRUCT,
// INTERVAL) hold DuckDB's BIGINTs too.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe-cli-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { event_time: { type: 'string' } });

it('query results with nested BIGINTs and intervals print in both formats and come back as plain JSON', async () => {
  const config = { path: join(root, 'lake') };
  const records = [
    { id: 1, tenant_id: 't', customer_id: 'c', event_time: '2024-01-01T00:00:00Z' },
    { id: 2, tenant_id: 't', customer_id: 'c', event_time: '2024-01-01T00:00:01.5Z' },
  ];
  await writeSession(config, stream, [records]);
  await writeFile(join(root, 'lake.json'), JSON.stringify(config));

  const sql = "select list(id order by id) as ids, {'n': count(*), 'big': 9007199254740993::BIGINT} as s, max(event_time) - min(event_time) as span, [min(event_time)] as times from orders";
  const expected = { ids: [1, 2], s: { n: 2, big: '9007199254740993' }, span: { months: 0, days: 0, micros: 1_500_000 }, times: ['2024-01-01T00:00:00.000Z'] };
  expect(await queryLake(config, sql)).toEqual([expected]);
  const jsonl = await runCli(['lake', 'query', sql, '--config', 'lake.json', '--format', 'jsonl'], root);
  expect(jsonl.stderr).toBe('');
  expect(jsonl.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown)).toEqual([expected]);
  const table = await runCli(['lake', 'query', sql, '--config', 'lake.json'], root);
  expect(table.stderr).toBe('');
  expect(table.stdout).toContain('[1,2]');
  expect(table.stdout).toContain('{"n":2,"big":"9007199254740993"}');
  expect(table.stdout).toContain('(1 row)');
});
