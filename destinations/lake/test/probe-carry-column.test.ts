import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { readStreamRows } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// A field named like an envelope column is stored in that column while the mapping takes
// the envelope value from it (customer_id from `customer_id`), else in `payload_<name>` —
// a name another field of the stream may already have.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe-carry-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { payload_customer_id: { type: 'string' }, account: { type: 'string' } });

async function sync(config: Record<string, unknown>, records: RecordData[]) {
  expect(await writeSession(config, stream, [records])).toEqual([]);
}

it('a carried field moving back to the payload gets a free column when a field named payload_<name> holds that one', async () => {
  const path = join(root, 'lake');
  const row = (id: number): RecordData => ({ id, tenant_id: 't', customer_id: `c${id}`, payload_customer_id: `p${id}`, account: `a${id}` });
  await sync({ path }, [row(1)]);
  // The mapping stops carrying customer_id, then carries it again, then stops again.
  await sync({ path, streams: { orders: { customer_id_field: 'account' } } }, [row(2)]);
  await sync({ path }, [row(3)]);
  await sync({ path, streams: { orders: { customer_id_field: 'account' } } }, [row(4)]);
  await sync({ path, streams: { orders: { customer_id_field: 'account' } } }, [row(5)]);
  const registry = JSON.parse(await readFile(join(path, '_tributary', 'schemas', 'orders.json'), 'utf8')) as { versions: Array<{ change: string }> };
  expect(registry.versions.map((v) => v.change)).toEqual([
    'initial schema',
    'customer_id now stored in column payload_customer_id__2',
    'customer_id now stored in column customer_id',
    'customer_id now stored in column payload_customer_id__2',
  ]);
  const stored = await duckQuery(
    `SELECT id, customer_id, payload_customer_id, payload_customer_id__2 FROM read_parquet('${join(path, 'data', '**', '*.parquet')}', union_by_name = true, hive_partitioning = false) ORDER BY id`,
  );
  expect(stored).toEqual([
    { id: 1, customer_id: 'c1', payload_customer_id: 'p1', payload_customer_id__2: null },
    { id: 2, customer_id: 'a2', payload_customer_id: 'p2', payload_customer_id__2: 'c2' },
    { id: 3, customer_id: 'c3', payload_customer_id: 'p3', payload_customer_id__2: null },
    { id: 4, customer_id: 'a4', payload_customer_id: 'p4', payload_customer_id__2: 'c4' },
    { id: 5, customer_id: 'a5', payload_customer_id: 'p5', payload_customer_id__2: 'c5' },
  ]);
  const rows = await readStreamRows({ path }, { stream: 'orders' });
  expect(rows.map((r) => r.payload).sort((a, b) => Number(a.id) - Number(b.id))).toEqual([1, 2, 3, 4, 5].map(row));
});
