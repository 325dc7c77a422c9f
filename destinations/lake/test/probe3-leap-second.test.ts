import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readLatestAsOf } from '../src/reader.js';
import { clickStream, duckQuery, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-leap-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

it('an event at a leap second (23:59:60Z, a valid RFC 3339 date-time) is stored, not quarantined, as the last millisecond of its day', async () => {
  const lake = join(root, 'lake');
  const rejected = await writeSession({ path: lake }, clickStream(), [
    [
      { id: 1, tenant_id: 't', customer_id: 'c', event_time: '2016-12-31T23:59:59.998Z' },
      { id: 2, tenant_id: 't', customer_id: 'c', event_time: '2016-12-31T23:59:60Z' },
      { id: 3, tenant_id: 't', customer_id: 'c', event_time: '2017-01-01T00:00:00Z' },
      { id: 4, tenant_id: 't', customer_id: 'c', event_time: '2016-12-31T23:59:60.5Z' },
    ],
  ]);
  expect(rejected).toEqual([]);
  expect(await readdir(lake)).not.toContain('_quarantine');

  // DuckDB reads the files directly: the leap second is 23:59:59.999 of Dec 31, in that day's partition, between its neighbours.
  const rows = await duckQuery(
    `SELECT id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS at, CAST(event_date AS VARCHAR) AS event_date FROM read_parquet('${join(lake, 'data', 'clicks')}/**/*.parquet', hive_partitioning = true) ORDER BY event_time, id`,
  );
  expect(rows).toEqual([
    { id: 1, at: '2016-12-31T23:59:59.998Z', event_date: '2016-12-31' },
    { id: 2, at: '2016-12-31T23:59:59.999Z', event_date: '2016-12-31' },
    { id: 4, at: '2016-12-31T23:59:59.999Z', event_date: '2016-12-31' },
    { id: 3, at: '2017-01-01T00:00:00.000Z', event_date: '2017-01-01' },
  ]);

  // A point-in-time read at the leap second takes it (as-of parses the same way).
  const asOf = await readLatestAsOf({ path: lake }, { stream: 'clicks', asOf: '2016-12-31T23:59:60Z' });
  expect(asOf.map((r) => r.entity_key).sort()).toEqual(['1', '2', '4']);
});

it('the leap second with an offset (RFC 3339: 15:59:60-08:00 is 23:59:60Z) is stored at the same instant when records are not validated', async () => {
  // Validation's fast date-time format accepts second 60 only written 23:59:60 (see the README).
  const lake = join(root, 'offset-lake');
  const rejected = await writeSession({ path: lake, validate_records: false }, clickStream(), [
    [
      { id: 1, tenant_id: 't', customer_id: 'c', event_time: '2016-12-31T15:59:60-08:00' },
      // 22:59:60 UTC: no leap second there.
      { id: 2, tenant_id: 't', customer_id: 'c', event_time: '2016-12-31T23:59:60+01:00' },
    ],
  ]);
  expect(rejected.map((r) => r.index)).toEqual([1]);
  const rows = await duckQuery(`SELECT id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS at FROM read_parquet('${join(lake, 'data', 'clicks')}/**/*.parquet')`);
  expect(rows).toEqual([{ id: 1, at: '2016-12-31T23:59:59.999Z' }]);
});
