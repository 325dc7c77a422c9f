// Shared by the tests that sync HubSpot streams into the event lake.
import { DuckDBInstance } from '@duckdb/node-api';
import type { StateStore, SyncState } from '@tributary/core';

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
