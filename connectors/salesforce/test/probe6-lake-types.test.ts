/**
 * Salesforce → event lake, in-process through runSync, REST and Bulk API 2.0 alike: every
 * field type the source emits lands in the column a user expects (checked with an
 * independent DuckDB read of the Parquet files), no record the source emits is quarantined
 * (the lake validates records against the declared schema), and the lake's reader gives back
 * exactly what the source emitted — Number(18,0) and long digits, date-time milliseconds,
 * multi-select picklists, compound fields. The lake mapping is the README's: one tenant per
 * org (`default_tenant`).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { expect, it } from 'vitest';
import { runSync } from '@tributary/core';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { salesforceSource } from '../src/index.js';
import { catalogOf, credentials, memoryStateStore, readAll, useOrgs } from './helpers.js';

const org = useOrgs();

/** SQL over Parquet files with a fresh DuckDB: the independent reader of what the lake wrote. */
async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

const EXTRA_FIELDS = [
  { name: 'Big__c', type: 'double', precision: 18, scale: 0 },
  { name: 'Long__c', type: 'long' },
  { name: 'Precise__c', type: 'double', precision: 18, scale: 6 },
  { name: 'Any__c', type: 'anyType' },
  { name: 'When__c', type: 'datetime' },
];

const ROWS = [
  {
    Name: 'full',
    Type: 'Partner',
    AnnualRevenue: 123456789.12,
    NumberOfEmployees: 2147483647,
    Description: 'a,"b"\nc',
    BillingStreet: '1 Main\nSuite 2',
    BillingCity: 'Paris',
    BillingLatitude: 48.856614,
    BillingLongitude: 2.3522219,
    Tier__c: 'Gold;Silver',
    Active__c: true,
    Renewal_Date__c: '2024-02-29',
    Health_Score__c: 99.99,
    Opening_Time__c: '09:30:00.000Z',
    HQ__Latitude__s: -33.8688,
    HQ__Longitude__s: 151.2093,
    Big__c: 123456789012345678n,
    Long__c: -9007199254740993n,
    Precise__c: 0.000001,
    Any__c: 42,
    When__c: '2024-03-10T01:59:59.123+0000',
  },
  { Name: 'nulls' },
  { Name: 'edge', AnnualRevenue: 0, NumberOfEmployees: -5, Tier__c: 'Gold', Renewal_Date__c: '0001-01-01', Big__c: 42, Long__c: 9223372036854775807n, Any__c: 'text', When__c: '1969-12-31T23:59:59.999+0000' },
];

it.each(['never', 'always'])('Salesforce (bulk: %s) → lake: typed columns, nothing quarantined, values read back as emitted', async (bulk) => {
  const sim = await org({ extraFields: { Account: EXTRA_FIELDS } });
  sim.insert('Account', ROWS);
  const dir = await mkdtemp(join(tmpdir(), 'salesforce-lake-types-'));
  try {
    const config = { ...credentials(sim), bulk, bulk_poll_interval_ms: 0, hard_deletes: false };
    const catalog = await catalogOf(config, ['Account']);
    const lake = { path: join(dir, 'lake'), source_system: 'salesforce', default_tenant: 'acme' };
    const result = await runSync({ connection: 'salesforce-lake', source: salesforceSource, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: memoryStateStore() });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect((await readdir(lake.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'))).toEqual([]);

    const files = `read_parquet('${join(lake.path, 'data', '**', '*.parquet')}', hive_partitioning = false, union_by_name = true)`;
    const columns = Object.fromEntries((await duck(`DESCRIBE SELECT * FROM ${files}`)).map((c) => [c.column_name, c.column_type]));
    expect(columns).toMatchObject({
      Id: 'VARCHAR',
      IsDeleted: 'BOOLEAN',
      Name: 'VARCHAR',
      Type: 'VARCHAR',
      AnnualRevenue: 'DOUBLE',
      NumberOfEmployees: 'BIGINT',
      Description: 'VARCHAR',
      BillingLatitude: 'DOUBLE',
      BillingAddress: 'JSON',
      Tier__c: 'VARCHAR',
      Active__c: 'BOOLEAN',
      Health_Score__c: 'DOUBLE',
      HQ__c: 'JSON',
      Big__c: 'BIGINT',
      Long__c: 'BIGINT',
      Precise__c: 'DOUBLE',
      Any__c: 'VARCHAR',
      // The lake has no date or time column type: ISO text, exact (see the README).
      Renewal_Date__c: 'VARCHAR',
      Opening_Time__c: 'VARCHAR',
      When__c: 'VARCHAR',
      SystemModstamp: 'VARCHAR',
    });
    const rows = await duck(
      `SELECT Name, Big__c::VARCHAR AS big, Long__c::VARCHAR AS long, NumberOfEmployees::VARCHAR AS employees, AnnualRevenue, Tier__c, Active__c,
              Renewal_Date__c, Opening_Time__c, When__c, Any__c, Description, HQ__c::VARCHAR AS hq, Precise__c,
              strftime(event_time, '%Y-%m-%dT%H:%M:%S.%gZ') = SystemModstamp AS event_time_is_cursor
       FROM ${files} ORDER BY Name`,
    );
    expect(rows).toEqual([
      { Name: 'edge', big: '42', long: '9223372036854775807', employees: '-5', AnnualRevenue: 0, Tier__c: 'Gold', Active__c: false, Renewal_Date__c: '0001-01-01', Opening_Time__c: null, When__c: '1969-12-31T23:59:59.999Z', Any__c: 'text', Description: null, hq: null, Precise__c: null, event_time_is_cursor: true },
      {
        Name: 'full',
        big: '123456789012345678',
        long: '-9007199254740993',
        employees: '2147483647',
        AnnualRevenue: 123456789.12,
        Tier__c: 'Gold;Silver',
        Active__c: true,
        Renewal_Date__c: '2024-02-29',
        Opening_Time__c: '09:30:00.000Z',
        When__c: '2024-03-10T01:59:59.123Z',
        Any__c: '42',
        Description: 'a,"b"\nc',
        hq: '{"latitude":-33.8688,"longitude":151.2093}',
        Precise__c: 0.000001,
        event_time_is_cursor: true,
      },
      { Name: 'nulls', big: null, long: null, employees: null, AnnualRevenue: null, Tier__c: null, Active__c: false, Renewal_Date__c: null, Opening_Time__c: null, When__c: null, Any__c: null, Description: null, hq: null, Precise__c: null, event_time_is_cursor: true },
    ]);

    // The lake's reader returns each record as the source emitted it.
    const { records } = await readAll(config, catalog);
    const latest = await readLatestAsOf(lake, { stream: 'Account' });
    const byId = (a: Record<string, unknown>, b: Record<string, unknown>): number => String(a.Id).localeCompare(String(b.Id));
    expect(latest.map((r) => r.payload as Record<string, unknown>).sort(byId)).toEqual([...records].sort(byId));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
