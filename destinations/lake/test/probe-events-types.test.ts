import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// `events` unions the streams by column name; streams are typed apart, so one name can be a
// boolean column in one stream and a number in another.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe-events-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

async function sync(config: Record<string, unknown>, key: string, flag: Record<string, unknown>, records: RecordData[]) {
  expect(await writeSession(config, keyedStream(key, { flag }), [records])).toEqual([]);
}

it('a column that is boolean in one stream and a number in others reads each stream’s values as stored (true, not 1)', async () => {
  const config = { path: join(root, 'lake') };
  await sync(config, 'a', { type: 'boolean' }, [{ id: 1, tenant_id: 't', customer_id: 'c', flag: true }, { id: 2, tenant_id: 't', customer_id: 'c', flag: false }]);
  await sync(config, 'b', { type: 'integer' }, [{ id: 1, tenant_id: 't', customer_id: 'c', flag: 5 }]);
  await sync(config, 'c', { type: 'number' }, [{ id: 1, tenant_id: 't', customer_id: 'c', flag: 0.5 }]);
  // What each stream's files hold, read by DuckDB alone.
  const stored = await duckQuery(`SELECT stream, id, flag::VARCHAR AS flag FROM read_parquet('${join(config.path, 'data', 'a', '**', '*.parquet')}', hive_partitioning = false) ORDER BY id`);
  expect(stored).toEqual([{ stream: 'a', id: 1, flag: 'true' }, { stream: 'a', id: 2, flag: 'false' }]);
  expect(await queryLake(config, 'select stream, id, flag from events order by stream, id')).toEqual([
    { stream: 'a', id: 1, flag: true },
    { stream: 'a', id: 2, flag: false },
    { stream: 'b', id: 1, flag: 5 },
    { stream: 'c', id: 1, flag: 0.5 },
  ]);
  // Each stream's own view keeps its type.
  expect(await queryLake(config, 'select flag from a order by id')).toEqual([{ flag: true }, { flag: false }]);
});
