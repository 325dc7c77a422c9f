import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationSession, type RecordData, type RejectedRecord } from '@tributary/core';
import { lakeConfigSchema, lakeDestination, loadLakeState, openStore, readStreamRows } from '../src/index.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

// A field the stream schema does not declare gets a column typed by its first value (a
// guess). One session, or sessions one after another, quarantine a later value that does not
// fit that column, and the sync goes on. Two sessions open at once that each guessed a
// different type: the second to claim a schema version lost the claim, evolved on top of the
// first's version, and took its own guess for a breaking change: `fail` failed the whole sync
// ('Breaking schema change … field "q" was string (schema version 2) and is now integer'),
// `new_column` stored the field in a column `q__v3`. It now keeps the first session's column
// and quarantines the records that do not fit, with the sequential case's reason.
let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-concurrent-infer-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

/** `q` is not declared: its column's type is inferred from the first value seen. */
const stream = keyedStream('clicks', { event_time: { type: 'string', format: 'date-time' } });
const click = (id: number, q: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z', q });

function open(config: Record<string, unknown>): Promise<DestinationSession> {
  return lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
}

async function write(session: DestinationSession, records: RecordData[]): Promise<RejectedRecord[]> {
  return (await session.write({ stream: 'clicks', records, emittedAt: Date.now() }))?.rejected ?? [];
}

/** What the lake holds: rows as the library rebuilds them and as DuckDB reads the files, quarantined records, registry changes. */
async function contents(path: string) {
  const store = openStore(parseConfig(lakeConfigSchema, { path }));
  const state = await loadLakeState(store).finally(() => store.close());
  const files = [...state.files.values()].map((f) => `'${join(path, f.path)}'`);
  const quarantined: Array<{ reason: string; id: unknown }> = [];
  for (const q of state.quarantine) {
    for (const line of (await readFile(join(path, q.path), 'utf8')).split('\n').filter(Boolean)) {
      const parsed = JSON.parse(line) as { reason: string; record: { id: unknown } };
      quarantined.push({ reason: parsed.reason, id: parsed.record.id });
    }
  }
  const registry = JSON.parse(await readFile(join(path, '_tributary', 'schemas', 'clicks.json'), 'utf8')) as { versions: Array<{ change: string }> };
  return {
    rows: (await readStreamRows({ path }, { stream: 'clicks' })).map((r) => [r.payload.id, r.payload.q ?? null]).sort((a, b) => Number(a[0]) - Number(b[0])),
    files: await duckQuery(`SELECT id, q, schema_version FROM read_parquet([${files.join(', ')}], union_by_name = true) ORDER BY id`),
    quarantined: quarantined.sort((a, b) => Number(a.id) - Number(b.id)),
    changes: registry.versions.map((v) => v.change),
  };
}

const cases = [
  { mode: 'fail', first: 'x', second: 1 },
  { mode: 'new_column', first: 'x', second: 1 },
  { mode: 'fail', first: 7, second: 'y' },
  { mode: 'new_column', first: 7, second: 'y' },
] as const;

it.each(cases)('on_breaking_change $mode: a field first seen as $first in one session and as $second in another open at the same time is handled as in sessions one after the other', async ({ mode, first, second }) => {
  const name = `${mode}-${typeof first}`;
  // Session B's batch: one value of its own guess (does not fit A's column), one that fits A's column.
  const batchB = [click(2, second), click(3, first)];

  const sequential = { path: join(root, `${name}-sequential`), on_breaking_change: mode };
  expect(await writeSession(sequential, stream, [[click(1, first)]])).toEqual([]);
  const rejectedSequentially = await writeSession(sequential, stream, [batchB]);

  // A and B open on schema version 1; A claims version 2 (q typed by its value) before B
  // writes, so B's claim of version 2 for its own guess is the one that loses.
  const concurrent = { path: join(root, `${name}-concurrent`), on_breaking_change: mode };
  const a = await open(concurrent);
  const b = await open(concurrent);
  expect(await write(a, [click(1, first)])).toEqual([]);
  await a.commit();
  // Seen without the fix (fail): 'Breaking schema change in stream "clicks": field "q" was string (schema version 2) and is now integer. …'
  const rejectedConcurrently = await write(b, batchB);
  await b.commit();
  await a.close({ completed: true });
  await b.close({ completed: true });

  const expectedReason = typeof first === 'string' ? 'field "q": expected a string, got number 1' : 'field "q": expected an integer, got string "y"';
  expect(rejectedSequentially).toEqual([{ index: 0, reason: expectedReason }]);
  // Seen without the fix (new_column): [{ index: 1, reason: 'field "q": expected an integer, got string "x"' }] — B moved q to a column q__v3 (its guess) and stored record 2 there.
  expect(rejectedConcurrently).toEqual(rejectedSequentially);

  const lake = await contents(concurrent.path);
  // Every record stored exactly or quarantined with its reason: 2 rows + 1 quarantined = 3 sent.
  expect(lake.rows).toEqual([
    [1, first],
    [3, first],
  ]);
  expect(lake.files).toEqual([
    { id: 1, q: first, schema_version: 2 },
    { id: 3, q: first, schema_version: 2 },
  ]);
  expect(lake.quarantined).toEqual([{ reason: expectedReason, id: 2 }]);
  expect(lake.changes).toEqual(['initial schema', `added q (${typeof first === 'string' ? 'string' : 'integer'})`]);
  // The same lake as sessions one after the other leave.
  expect(await contents(sequential.path)).toEqual(lake);
}, 60_000);

it('a field one session declares an integer and another, open at the same time, first sees as a string keeps the integer column: the string is quarantined as in sessions one after the other', async () => {
  const declaring = keyedStream('clicks', { event_time: { type: 'string', format: 'date-time' }, q: { type: 'integer' } });
  const batchB = [click(2, 'x'), click(3, 4)];

  const sequential = { path: join(root, 'declared-first-sequential') };
  await writeSession(sequential, stream, [[click(0, null)]]); // schema version 1
  expect(await writeSession(sequential, declaring, [[click(1, 7)]])).toEqual([]);
  const rejectedSequentially = await writeSession(sequential, stream, [batchB]);

  const concurrent = { path: join(root, 'declared-first-concurrent') };
  await writeSession(concurrent, stream, [[click(0, null)]]);
  // B opens on version 1; A, declaring q, claims version 2 as it opens.
  const b = await open(concurrent);
  expect(await writeSession(concurrent, declaring, [[click(1, 7)]])).toEqual([]);
  const rejectedConcurrently = await write(b, batchB);
  await b.commit();
  await b.close({ completed: true });

  expect(rejectedSequentially).toEqual([{ index: 0, reason: 'field "q": expected an integer, got string "x"' }]);
  expect(rejectedConcurrently).toEqual(rejectedSequentially);
  const lake = await contents(concurrent.path);
  expect(lake.rows).toEqual([
    [0, null],
    [1, 7],
    [3, 4],
  ]);
  expect(lake.files).toEqual([
    { id: 0, q: null, schema_version: 1 },
    { id: 1, q: 7, schema_version: 2 },
    { id: 3, q: 4, schema_version: 2 },
  ]);
  expect(lake.quarantined).toEqual([{ reason: 'field "q": expected an integer, got string "x"', id: 2 }]);
  expect(lake.changes).toEqual(['initial schema', 'added q (integer)']);
  expect(await contents(sequential.path)).toEqual(lake);
}, 60_000);
