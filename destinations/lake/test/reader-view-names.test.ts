import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream } from '@tributary/core';
import { lakeDestination, openLakeReader, readLatestAsOf, readStreamRows } from '../src/index.js';

// The reader names a view after each stream, besides its own `events` and `quarantine`;
// DuckDB matches view names regardless of letter case. A stream named like one of them
// (an `events` stream is common) made every read of the lake fail.
let path: string;
const streams = ['events', 'Quarantine', 'deals', 'Deals'];
beforeAll(async () => {
  path = join(await mkdtemp(join(tmpdir(), 'tributary-lake-views-')), 'lake');
  const jsonSchema = { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' } } };
  const destinationStreams = streams.map((key): DestinationStream => ({ key, name: key, syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: [], jsonSchema, resuming: false }));
  const session = await lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, { path }), destinationStreams);
  for (const [i, stream] of streams.entries()) {
    // One more record per stream each time, and one without a customer id (quarantined).
    const records = Array.from({ length: i + 1 }, (_, id) => ({ id, tenant_id: 't1', customer_id: 'c1' }));
    await session.write({ stream, records: [...records, { id: 99, tenant_id: 't1' }], emittedAt: Date.now() });
  }
  await session.commit();
  await session.close({ completed: true });
});
afterAll(() => rm(join(path, '..'), { recursive: true, force: true }));

it('streams named like the reader views, or alike but for case: the lake stays readable, every stream through `events`', async () => {
  const reader = await openLakeReader({ path });
  try {
    expect(reader.streams).toEqual(['Deals', 'Quarantine', 'deals', 'events']);
    expect(await reader.query('SELECT stream, count(*)::INT AS n FROM events GROUP BY 1 ORDER BY 1')).toEqual([
      { stream: 'Deals', n: 4 },
      { stream: 'Quarantine', n: 2 },
      { stream: 'deals', n: 3 },
      { stream: 'events', n: 1 },
    ]);
    expect(await reader.query('SELECT count(*)::INT AS n FROM quarantine')).toEqual([{ n: 4 }]);
    // The first of two names alike but for case keeps its view.
    expect(await reader.query('SELECT count(*)::INT AS n FROM "Deals"')).toEqual([{ n: 4 }]);
  } finally {
    await reader.close();
  }
  for (const [i, stream] of streams.entries()) {
    expect((await readLatestAsOf({ path }, { stream })).map((r) => r.stream)).toEqual(Array.from({ length: i + 1 }, () => stream));
    expect((await readStreamRows({ path }, { stream })).length).toBe(i + 1);
  }
});
