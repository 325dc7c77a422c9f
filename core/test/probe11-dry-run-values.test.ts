/**
 * A dry run's ledger judges a row's later records as the writer's compare-before-write does
 * when the writer says how it compares (`WriteResult.comparedValues`): a target that stores
 * every value as text and names fields without regard to case holds the same after `1` and
 * `"1"`, or `Name` and `name`, and its real run answers the later record `unchanged`. The
 * ledger compared the records' fields as canonical JSON by exact name, and reported those
 * records `updated`. An in-test writer stands in for such a target (as HubSpot's text values
 * and Salesforce's case-insensitive names are), to show the runtime alone.
 */
import { describe, expect, it } from 'vitest';
import { defineWriter, runWriter, type WriteAuditEntry, type WriteResult, type WriterRunSummary } from '@tributary/core';
import { dryRunSyncOf, useTempStateStore } from './support/sync-fixtures.js';

/** How the target holds a field: by its name without case, as text. */
const fieldName = (name: string): string => name.toLowerCase();
const stored = (value: unknown): string => String(value);

/** The record's fields but `idProperty`, as the target holds them. */
function heldValues(fields: Record<string, unknown>, idProperty: string): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter(([name]) => name !== idProperty).map(([name, value]) => [fieldName(name), stored(value)]));
}

/**
 * Rows by key, each field held as text under its name without case. Upserts compare before
 * writing: unchanged when every field of the record already holds its text. With
 * `reportCompared`, dry-run results carry those texts as `comparedValues`.
 */
function textTarget(seed: Array<Record<string, unknown>>, reportCompared: boolean) {
  const rows = new Map<string, Record<string, string>>(seed.map((row) => [String(row.id), heldValues(row, 'id')]));
  const writer = defineWriter({
    name: 'text-target',
    spec: { connectionSpecification: { type: 'object', properties: { label: { type: 'string' } } } },
    rateLimit: { concurrency: 2 },
    maxBatchSize: 10,
    async check() {},
    async discover() {
      return [{ name: 'things', fields: [], idProperties: ['id'], modes: ['upsert'] }];
    },
    async open() {
      return {
        async write(request) {
          return request.records.map((record): WriteResult => {
            const values = heldValues(record.fields, request.idProperty);
            const base = { idempotencyKey: record.idempotencyKey, key: record.key, ...(request.dryRun && reportCompared ? { comparedValues: values } : {}) };
            const row = rows.get(record.key);
            if (row !== undefined && Object.entries(values).every(([name, value]) => row[name] === value)) return { ...base, status: 'unchanged' };
            if (!request.dryRun) rows.set(record.key, { ...row, ...values });
            return { ...base, status: row === undefined ? 'created' : 'updated' };
          });
        },
        async close() {},
      };
    },
  });
  return { writer, rows };
}

const SEED = [{ id: 'old', name: 'before', count: 5 }];

const INPUT = [
  { id: 'new', name: 'k', count: 1000, active: true },
  // The same values in other forms, and a field name in other case: unchanged in a real run.
  { id: 'new', count: '1000', active: 'true' },
  { id: 'new', Name: 'k', COUNT: 1000 },
  // A change after all: updated.
  { id: 'new', count: 1001 },
  // A row that existed: changed by the first record, the second repeats the change as text.
  { id: 'old', count: 7 },
  { id: 'old', Count: '7' },
];

const REAL = {
  new: ['created', 'unchanged', 'unchanged', 'updated'],
  old: ['updated', 'unchanged'],
};

/** Per key, its records' statuses in the order reported (a key's records keep input order). */
function byKey(results: ReadonlyArray<{ key: string; status: string }>): Record<string, string[]> {
  const keys: Record<string, string[]> = {};
  for (const r of results) (keys[r.key] ??= []).push(r.status);
  return keys;
}

const outcomes = (summary: WriterRunSummary) => byKey(summary.results ?? []);

const run = (target: ReturnType<typeof textTarget>, dryRun: boolean, audit?: (entry: WriteAuditEntry) => void) =>
  runWriter({ writer: target.writer, config: {}, object: 'things', mode: 'upsert', idProperty: 'id', records: INPUT, dryRun, ...(audit ? { audit } : {}) });

const temp = useTempStateStore('tributary-probe11-dry-values-');

describe('probe11: a dry run compares a row\'s values as the writer does when the writer says how', () => {
  it('runWriter: with comparedValues the dry run reports the real run\'s outcomes, changes nothing, and passes no comparedValues on', async () => {
    const target = textTarget(SEED, true);
    const before = [...target.rows.entries()];
    const dry = await run(target, true);
    expect([...target.rows.entries()]).toEqual(before);
    const real = await run(target, false);
    expect(outcomes(real)).toEqual(REAL);
    expect(outcomes(dry)).toEqual(outcomes(real));
    expect(dry.counts).toEqual(real.counts);
    expect(dry.results!.filter((r) => 'comparedValues' in r)).toEqual([]);
  });

  it('a dry-run sync: a row whose values come back in other forms in a later batch is judged as the real run does', async () => {
    const target = textTarget(SEED, true);
    // Two records per batch: some of a row's later records arrive in a later `write`.
    const { outcome, audit } = await dryRunSyncOf({ writer: target.writer, object: 'things', idProperty: 'id', records: INPUT, store: temp.store, recordsPerBatch: 2 });
    expect(outcome).toBe('completed');
    expect(target.rows.get('new')).toBeUndefined();
    expect(byKey(audit)).toEqual(REAL);
    expect(audit.filter((e) => 'comparedValues' in e)).toEqual([]);
  });

  it('a writer that gives no comparedValues is judged by canonical JSON, as before', async () => {
    const dry = await run(textTarget(SEED, false), true);
    expect(outcomes(dry)).toEqual({ new: ['created', 'updated', 'updated', 'updated'], old: ['updated', 'updated'] });
  });
});
