import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// The `quarantine` view reads the quarantine files with DuckDB's JSON reader, which refuses
// the `\udXXX` escape JSON.stringify writes for an unpaired UTF-16 surrogate.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe-quarantine-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const stream = keyedStream('orders', { n: { type: 'integer' } });

async function write(config: Record<string, unknown>, records: RecordData[], completed: boolean) {
  return writeSession(config, stream, [records], completed);
}

it('refused records with unpaired surrogates (in a value, or cut into the reason) are stored with U+FFFD: the quarantine view stays readable, and a replay is still recognised', async () => {
  const config = { path: join(root, 'lake'), validate_records: false };
  const records = [
    { id: 1, tenant_id: 't', customer_id: 'c', n: 'lone \ud800 high' },
    // The reason quotes the value's first 40 characters of JSON: `"` + 38 × x + the high half of 😀.
    { id: 2, tenant_id: 't', customer_id: 'c', n: `${'x'.repeat(38)}😀` },
    { id: 3, tenant_id: 't', customer_id: 'c', n: 3 },
  ] as RecordData[];
  // The first session is not completed, so its records may be replayed: the second one reads what it quarantined.
  expect((await write(config, records, false)).map((r) => r.index)).toEqual([0, 1]);
  const replay = await write(config, records, true);
  expect(replay.map((r) => r.index)).toEqual([0, 1]);
  const rows = await queryLake(config, "select reason, record->>'n' as n from quarantine order by record->>'id'");
  expect(rows).toEqual([
    // The reason quotes the value as JSON text, which spells the lone surrogate as an escape.
    { reason: 'field "n": expected an integer, got string "lone \\ud800 high"', n: 'lone \ufffd high' },
    { reason: `field "n": expected an integer, got string "${'x'.repeat(38)}\ufffd…`, n: `${'x'.repeat(38)}😀` },
  ]);
});
