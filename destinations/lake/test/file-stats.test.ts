import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDuckDb } from '../src/duck.js';
import { readFileStats } from '../src/file-stats.js';

// The commit log states each file's rows, tenant, day, event-time range and schema version.
// They come from the Parquet footers, or from the rows when a footer cannot say exactly.

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-stats-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

it('reads file stats from the footers, and from the rows when a footer statistic is cut short (a 300-character tenant)', async () => {
  const duck = await openDuckDb();
  try {
    const long = `tenant-${'x'.repeat(293)}`;
    const write = async (name: string, tenant: string, rows: number) => {
      const file = join(root, `${name}.parquet`);
      await duck.connection.run(
        `COPY (SELECT '${tenant}' AS tenant_id, make_timestamp(CAST((1714521600000 + i * 1000) * 1000 AS BIGINT)) AS event_time, (1 + i % 2)::INTEGER AS schema_version, '2024-05-01' AS event_date ` +
          `FROM range(${rows}) t(i)) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 1000)`,
      );
      return file;
    };
    const short = await write('short', 't1', 2500);
    const longFile = await write('long', long, 30);
    const expected = new Map([
      [short, { tenant: 't1', partition: '2024-05-01' }],
      [longFile, { tenant: long, partition: '2024-05-01' }],
    ]);

    const stats = await readFileStats(duck.connection, [short, longFile], 'event_date', expected);
    expect(stats.get(short)).toEqual({ n: 2500, lo: 1714521600000, hi: 1714521600000 + 2499_000, v: 2, tenants: ['t1'], partitions: ['2024-05-01'] });
    expect(stats.get(longFile)).toEqual({ n: 30, lo: 1714521600000, hi: 1714521600000 + 29_000, v: 2, tenants: [long], partitions: ['2024-05-01'] });

    // Footers alone (one file, short values), several row groups: counts and bounds add up across them.
    const alone = await readFileStats(duck.connection, [short], 'event_date', expected);
    expect(alone.get(short)?.n).toBe(2500);
  } finally {
    duck.close();
  }
});
