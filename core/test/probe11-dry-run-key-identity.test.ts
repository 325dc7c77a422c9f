/**
 * A dry run's ledger judges a repeated row as the real run does when the row's records carry
 * its key in different forms of one key identity (`keyIdentity`): the real run matches the
 * later record to the row by its id field and compares the other fields, so repeating the
 * values is `unchanged`. The ledger compared the id field's text too (`"1.0"` against `1`,
 * `abc-1` against `ABC-1`) and reported those records `updated`. An in-test writer stands in
 * for a target whose ids are numbers or case-insensitive text, to show the runtime alone.
 */
import { describe, expect, it } from 'vitest';
import { defineWriter, runWriter, type WriteResult, type WriterRunSummary } from '@tributary/core';
import { dryRunSyncOf, useTempStateStore } from './support/sync-fixtures.js';

/** A key's row: the number it denotes when it is one (`1`, `1.0`, `1e0`), else its text without case. */
const rowOf = (key: string): string => (key.trim() !== '' && Number.isFinite(Number(key)) ? String(Number(key)) : key.toLowerCase());

/**
 * Rows by `rowOf(key)`. Upserts compare before writing, as the repository's writers do: the id
 * field matches the row and is not compared; the other fields decide `unchanged`.
 */
function keyedTarget(seed: Array<Record<string, unknown>> = []) {
  const rows = new Map<string, Record<string, unknown>>(seed.map((row) => [rowOf(String(row.id)), row]));
  const writer = defineWriter({
    name: 'keyed-target',
    spec: { connectionSpecification: { type: 'object', properties: { label: { type: 'string' } } } },
    rateLimit: { concurrency: 2 },
    maxBatchSize: 10,
    keyIdentity: (_object, _idProperty, key) => rowOf(key),
    async check() {},
    async discover() {
      return [{ name: 'things', fields: [], idProperties: ['id'], modes: ['upsert'] }];
    },
    async open() {
      return {
        async write(request) {
          return request.records.map((record): WriteResult => {
            const base = { idempotencyKey: record.idempotencyKey, key: record.key };
            const row = rows.get(rowOf(record.key));
            const values = Object.entries(record.fields).filter(([name]) => name !== request.idProperty);
            if (row !== undefined && values.every(([name, value]) => row[name] === value)) return { ...base, status: 'unchanged' };
            if (!request.dryRun) rows.set(rowOf(record.key), { ...row, ...record.fields });
            return { ...base, status: row === undefined ? 'created' : 'updated' };
          });
        },
        async close() {},
      };
    },
  });
  return { writer, rows };
}

const SEED = [{ id: 7, name: 'seven' }];

const INPUT = [
  { id: 1, name: 'one' },
  // The row of 1, with its values again: unchanged in a real run.
  { id: '1.0', name: 'one' },
  { id: '1e0', name: 'one' },
  { id: 'ABC-1', name: 'a' },
  { id: 'abc-1', name: 'a' },
  // A change of a row the run created: updated.
  { id: 'Abc-1', name: 'a2' },
  // A row that existed, keyed in two other forms with its values: unchanged both times.
  { id: '7.0', name: 'seven' },
  { id: '7e0', name: 'seven' },
];

/**
 * Per row, its records' [key, status] in the order reported: results come in completion
 * order, which keeps a row's records in input order (the runtime applies them so) but may
 * interleave rows.
 */
function byRow(results: ReadonlyArray<{ key: string; status: string }>): Record<string, Array<[string, string]>> {
  const rows: Record<string, Array<[string, string]>> = {};
  for (const r of results) (rows[rowOf(r.key)] ??= []).push([r.key, r.status]);
  return rows;
}

const outcomes = (summary: WriterRunSummary) => byRow(summary.results ?? []);

const REAL = {
  '1': [
    ['1', 'created'],
    ['1.0', 'unchanged'],
    ['1e0', 'unchanged'],
  ],
  'abc-1': [
    ['ABC-1', 'created'],
    ['abc-1', 'unchanged'],
    ['Abc-1', 'updated'],
  ],
  '7': [
    ['7.0', 'unchanged'],
    ['7e0', 'unchanged'],
  ],
};

const temp = useTempStateStore('tributary-probe11-dry-key-');

describe('probe11: a dry run judges records of one key identity in different key forms as the real run does', () => {
  it('runWriter: the dry run reports the real run\'s per-record outcomes, and changes nothing', async () => {
    const target = keyedTarget(SEED);
    const run = (dryRun: boolean) => runWriter({ writer: target.writer, config: {}, object: 'things', mode: 'upsert', idProperty: 'id', records: INPUT, dryRun });
    const dry = await run(true);
    expect([...target.rows.values()]).toEqual(SEED);
    const real = await run(false);
    expect(outcomes(real)).toEqual(REAL);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
  });

  it('a dry-run sync: a key form that comes back in a later batch is judged as the real run does', async () => {
    const target = keyedTarget(SEED);
    // Two records per batch: some of a row's later forms arrive in a later `write`.
    const { outcome, audit } = await dryRunSyncOf({ writer: target.writer, object: 'things', idProperty: 'id', records: INPUT, store: temp.store, recordsPerBatch: 2 });
    expect(outcome).toBe('completed');
    expect([...target.rows.values()]).toEqual(SEED);
    expect(byRow(audit)).toEqual(REAL);
  });
});
