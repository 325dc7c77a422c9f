import { DuckDBInstance, type DuckDBConnection, type DuckDBResultReader } from '@duckdb/node-api';

/** A private in-process DuckDB (in memory, spilling to `tempDir` when given; `threads` default: one per core). */
export async function openDuckDb(tempDir?: string, threads?: number): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:', { ...(tempDir ? { temp_directory: tempDir } : {}), ...(threads !== undefined ? { threads: String(threads) } : {}) });
  const connection = await instance.connect();
  return {
    instance,
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
export const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** Rows as plain JSON values: BIGINT → number (string beyond 2^53), TIMESTAMP → ISO string, JSON → parsed. */
export function plainRows(result: DuckDBResultReader, parseJson = true): Record<string, unknown>[] {
  const types = result.columnTypes();
  const names = result.columnNames();
  const json = new Set(parseJson ? names.filter((_, i) => types[i]!.alias === 'JSON') : []);
  return result.getRowObjectsJS().map((row) => {
    const out: Record<string, unknown> = {};
    for (const name of names) {
      const v = row[name] as unknown;
      if (v === null || v === undefined) out[name] = null;
      else if (typeof v === 'bigint') out[name] = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : String(v);
      else if (v instanceof Date) out[name] = v.toISOString();
      else if (json.has(name) && typeof v === 'string') out[name] = JSON.parse(v) as unknown;
      else out[name] = v;
    }
    return out;
  });
}
