import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import { queryLake, readLatestAsOf } from '../src/index.js';
import { keyedStream, writeSession } from './helpers.js';

// A replay after a crash is a record whose event id AND content match a row the crashed
// sync committed. Derived ids cover (stream, key, cursor, op), so two changes of one row
// within one cursor value share an id: the id alone took the second change for a replay.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-replay-content-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const T = '2026-03-01T10:00:00Z';
const accounts = keyedStream('accounts', { updated_at: { type: 'string', format: 'date-time' }, amount: { type: 'integer' } }, { cursorField: ['updated_at'] });
const account = (id: number, amount: number): RecordData => ({ id, tenant_id: 't1', customer_id: `c${id}`, updated_at: T, amount });

it('a change within the same cursor value, arriving in the resume after a crash, is stored (it was dropped as a replay)', async () => {
  const config = { path: join(root, 'tie') };
  // The crashed sync committed both rows (its checkpoint was not stored: they come again).
  await writeSession(config, accounts, [[account(1, 10), account(2, 5)]], false);
  // The resume: account 2 is the same (a replay), account 1 changed within the same second.
  await writeSession(config, accounts, [[account(1, 11), account(2, 5)]]);
  const stored = await queryLake(config, 'SELECT id, amount FROM accounts ORDER BY ingest_time, id');
  expect(stored.map((r) => [r.id, r.amount])).toEqual([
    [1, 10],
    [2, 5],
    [1, 11],
  ]);
  const latest = await readLatestAsOf(config, { stream: 'accounts' });
  expect(latest.map((r) => [r.payload.id, r.payload.amount])).toEqual([
    [1, 11],
    [2, 5],
  ]);
});

// Every kind of value a row can hold, in the forms that differ between a record and the
// stored file (lone surrogates, -0, integers read back as BIGINT, JSON text, CDC fields,
// a composite key, a numeric customer id, an undeclared field): an exact replay must match.
const kinds = keyedStream(
  'kinds',
  {
    customer_id: { type: 'integer' },
    updated_at: { type: 'string', format: 'date-time' },
    name: { type: 'string' },
    n: { type: 'integer' },
    x: { type: 'number' },
    flag: { type: 'boolean' },
    props: { type: 'object' },
    tags: { type: 'array' },
    nothing: { type: ['string', 'null'] },
    _tributary_op: { type: 'string' },
    _tributary_position: { type: 'string' },
    _tributary_txid: { type: 'string' },
    _tributary_before: { type: ['object', 'null'] },
    _tributary_unchanged: { type: ['array', 'null'] },
  },
  { primaryKey: [['id'], ['name']], cursorField: ['updated_at'] },
);
const kindRows = (): RecordData[] => [
  { id: 1, tenant_id: 't1', customer_id: 42, updated_at: T, name: 'é \ud800 x\u001ey', n: 2 ** 53 - 1, x: -0, flag: true, props: { a: [1, 2.5, 'ü\udfff'], b: null, c: 1e21 }, tags: ['a', 'b'], nothing: null, extra: 'undeclared', _tributary_op: 'u', _tributary_position: '0/16B3748', _tributary_txid: '771', _tributary_before: { amount: 1 }, _tributary_unchanged: ['blob'] },
  { id: 2, tenant_id: 't2', customer_id: 43, updated_at: T, name: 'plain', n: -7, x: 0.1, flag: false, props: {}, tags: [], nothing: 'z', extra: 'three', _tributary_op: 'c', _tributary_position: '0/16B3750', _tributary_txid: '772', _tributary_before: null, _tributary_unchanged: null },
  { id: 3, tenant_id: 't1', customer_id: 44, updated_at: T, name: 'snap', n: 0, x: 1e-300, flag: true, props: { nested: { deep: ['x'] } }, tags: [null], nothing: null, _tributary_op: 'r' },
];

it('an exact replay of every kind of value is recognised (nothing written twice); a changed one is written', async () => {
  const config = { path: join(root, 'kinds') };
  expect(await writeSession(config, kinds, [kindRows()], false)).toEqual([]);
  const count = async (): Promise<number> => Number((await queryLake(config, 'SELECT count(*) AS n FROM kinds'))[0]!.n);
  expect(await count()).toBe(3);
  // A second crashed sync replays all three: none is stored again.
  await writeSession(config, kinds, [kindRows()], false);
  expect(await count()).toBe(3);
  // Each record changed in one value that the id does not cover: all three are stored.
  const changed = kindRows();
  changed[0]!.props = { a: [1, 2.5, 'ü\udfff'], b: null, c: 1e22 };
  changed[1]!.extra = 'four';
  changed[2]!._tributary_before = { amount: 2 };
  await writeSession(config, kinds, [changed]);
  expect(await count()).toBe(6);
});
