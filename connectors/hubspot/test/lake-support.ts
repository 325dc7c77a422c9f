// Shared by the tests that sync HubSpot streams into the event lake.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { expect } from 'vitest';
import { runSync, type ConfiguredAirbyteCatalog, type StateStore, type SyncState } from '@tributary/core';
import { lakeDestination } from '@tributary/destination-lake';
import { hubspotSource } from '../src/index.js';

/** A state store in memory: one connection's state, cloned in and out. */
export function memoryStateStore(): StateStore {
  let saved: SyncState | undefined;
  return {
    location: 'memory:',
    load: async () => (saved === undefined ? undefined : structuredClone(saved)),
    save: async (_connection, state) => void (saved = structuredClone(state)),
    reset: async () => void (saved = undefined),
    list: async () => [],
    close: async () => {},
  };
}

/** SQL over the lake's Parquet files with a fresh DuckDB: the independent reader of what the lake wrote. */
export async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/**
 * Syncs `catalog` from the HubSpot source (`config`) into a lake at `dir/lake` (tenant
 * `acme`) through the runtime; fails the test unless the sync completes with nothing
 * quarantined. Returns the lake's `read_parquet` of a stream and its column types as an
 * independent DuckDB reads them.
 */
export async function syncHubspotIntoLake(dir: string, config: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog) {
  const lake = { path: join(dir, 'lake'), source_system: 'hubspot', default_tenant: 'acme' };
  const result = await runSync({ connection: 'hubspot-lake', source: hubspotSource, sourceConfig: config, destination: lakeDestination, destinationConfig: lake, catalog, stateStore: memoryStateStore() });
  expect(result.outcome, result.error?.userMessage).toBe('completed');
  expect((await readdir(lake.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'))).toEqual([]);
  const files = (stream: string): string => `read_parquet('${join(lake.path, 'data', stream, '**', '*.parquet')}', hive_partitioning = false, union_by_name = true)`;
  const columnsOf = async (stream: string): Promise<Record<string, unknown>> => Object.fromEntries((await duck(`DESCRIBE SELECT * FROM ${files(stream)}`)).map((c) => [c.column_name, c.column_type]));
  return { lake, files, columnsOf };
}
