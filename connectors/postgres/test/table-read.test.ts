import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/connection.js';
import { readChunks, rowDecoder, type Chunk, type ChunkPosition } from '../src/read/table-read.js';
import { loadTables, type TableInfo } from '../src/schema/tables.js';
import { TypeRegistry } from '../src/schema/values.js';
import { configFor, startPostgres, type EmbeddedPostgresServer } from './support.js';

// The snapshot's COPY path on a real server: rows decoded from COPY bytes must equal the same
// rows decoded from a query's text values (the path every other read uses), and one COPY
// spanning several chunks must still hand on a checkpoint after every chunk.

let server: EmbeddedPostgresServer;
let client: pg.Client;
let types: TypeRegistry;

const COLUMNS = `i2 int2, i4 int4, i8 int8, o oid, b bool, t text, ts timestamptz, lt timestamp, n numeric, f float8, j jsonb, arr text[], d date, u uuid, iv interval, blob bytea`;
// Edge values for the byte converters: NULLs, escapes, non-ASCII, signs, 15/16-digit int8,
// timestamps the fast path must leave to the text path (infinity, BC, 5-digit years).
const EDGE_ROWS = [
  `NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL`,
  `-32768, -2147483648, -999999999999999, 4294967295, false, E'tab\\there\\nnew line \\\\ back\\\\N é漢', 'infinity', 'infinity', '-0.5', '-Infinity', '{"k": "a\\tb"}', ARRAY[E'x\\ty', NULL, 'N'], '-infinity', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '-1 day', '\\x00ff'`,
  `32767, 2147483647, 999999999999999, 0, true, '\\N', '0044-03-15 12:00:00+00 BC', '0044-03-15 12:00:00 BC', '1e-20', 'NaN', '[]', '{}', '2024-02-29', '00000000-0000-0000-0000-000000000000', '0', ''`,
  `0, -0, 1234567890123456, 1, true, '', '10000-01-01 00:00:00+00', '10000-01-01 00:00:00', '12345678901234567890.123456789012', '0.1', 'null', '{"a b"}', '0001-01-01', NULL, '1 year 2 mons', '\\x41'`,
  `-1, -7, -9223372036854775808, 7, false, 'N', '2024-02-29 23:59:59.123456+02', '2024-02-29 23:59:59', '1', '1e300', '1', '{"\\\\"}', '2024-01-01', NULL, NULL, NULL`,
];

beforeAll(async () => {
  server = await startPostgres();
  client = await connect(configFor(server));
  types = await TypeRegistry.load(client);
  for (const name of ['keyed', 'heap']) {
    await client.query(`CREATE TABLE ${name} (id int ${name === 'keyed' ? 'PRIMARY KEY' : 'NOT NULL'}, ${COLUMNS})`);
    for (const [i, values] of EDGE_ROWS.entries()) await client.query(`INSERT INTO ${name} VALUES (${i + 1}, ${values})`);
    await client.query(
      `INSERT INTO ${name} (id, i4, i8, t, ts, lt) SELECT g, g, g * 1000003, 'row ' || g, timestamptz '2024-01-01' + g * interval '1.000001 s', timestamp '2024-01-01' + g * interval '1 min' FROM generate_series(${EDGE_ROWS.length + 1}, 60) g`,
    );
  }
});
afterAll(async () => {
  await client?.end();
  await server?.stop();
});

async function table(name: string): Promise<TableInfo> {
  return (await loadTables(client, ['public'])).find((t) => t.name === name)!;
}

async function collect(chunks: AsyncGenerator<Chunk>): Promise<{ rows: Record<string, unknown>[]; positions: ChunkPosition[] }> {
  const rows: Record<string, unknown>[] = [];
  const positions: ChunkPosition[] = [];
  for await (const chunk of chunks) {
    rows.push(...chunk.rows);
    if (chunk.next !== undefined) positions.push(chunk.next);
  }
  return { rows, positions };
}

/** The rows as the text path decodes them (a query, values as text), in `order`. */
async function expected(info: TableInfo, order: string): Promise<Record<string, unknown>[]> {
  const decoder = rowDecoder(info, types);
  const result = await client.query<(string | null)[]>({ text: `SELECT ${decoder.columns.join(', ')} FROM ${info.name} ORDER BY ${order}`, rowMode: 'array' });
  return result.rows.map((values) => decoder.decode(values));
}

describe('table reads over COPY', () => {
  it('rows decoded from COPY bytes equal the text path, byte for byte, across chunks and queries', async () => {
    const info = await table('keyed');
    // Chunks of 7 rows, queries of 21 (rounded up from 20): 60 rows take three queries and a partial one.
    const { rows, positions } = await collect(readChunks(client, info, types, 7, null, undefined, { queryRows: 20 }));
    const want = await expected(info, 'id');
    expect(rows).toHaveLength(60);
    expect(JSON.stringify(rows)).toBe(JSON.stringify(want));
    expect(rows[1]).toMatchObject({ t: 'tab\there\nnew line \\ back\\N é漢', ts: 'infinity', i8: -999999999999999, f: '-Infinity', arr: ['x\ty', null, 'N'] });
    expect(rows[2]).toMatchObject({ t: '\\N', ts: '0044-03-15T12:00:00Z BC', lt: '0044-03-15T12:00:00 BC' });
    expect(rows[3]).toMatchObject({ i4: 0, i8: 1234567890123456, ts: '10000-01-01T00:00:00Z', lt: '10000-01-01T00:00:00' });
    expect(rows[4]).toMatchObject({ ts: '2024-02-29T21:59:59.123456Z', lt: '2024-02-29T23:59:59', i8: '-9223372036854775808' });
    // A checkpoint after every 7th row, then the end of the table.
    expect(positions).toEqual([...Array.from({ length: 8 }, (_, i) => ({ after: [(i + 1) * 7] })), null]);

    // Resuming after any checkpoint reads exactly the rest.
    const rest = await collect(readChunks(client, info, types, 7, positions[4]!, undefined, { queryRows: 20 }));
    expect(JSON.stringify(rest.rows)).toBe(JSON.stringify(want.slice(35)));
    expect(rest.positions).toEqual([{ after: [42] }, { after: [49] }, { after: [56] }, null]);
  });

  it('a table without a primary key is read in ctid order, with a ctid checkpoint after every chunk', async () => {
    const info = await table('heap');
    const { rows, positions } = await collect(readChunks(client, info, types, 9, null, undefined, { queryRows: 20 }));
    expect(JSON.stringify(rows)).toBe(JSON.stringify(await expected(info, 'ctid')));
    expect(positions).toHaveLength(7);
    expect(positions.at(-1)).toBeNull();
    const ctids = (await client.query<{ c: string }>('SELECT ctid::text AS c FROM heap ORDER BY ctid')).rows.map((r) => r.c);
    expect(positions.slice(0, -1)).toEqual([9, 18, 27, 36, 45, 54].map((n) => ({ ctid: ctids[n - 1] })));
    const rest = await collect(readChunks(client, info, types, 9, positions[2]!, undefined, { queryRows: 20 }));
    expect(rest.rows.map((r) => r.id)).toEqual(rows.slice(27).map((r) => r.id));
  });

  it('an abandoned read leaves the connection usable (its COPY paused for backpressure, the next one queued)', async () => {
    await client.query(`CREATE TABLE big AS SELECT g AS id, repeat('x', 500) || g AS t FROM generate_series(1, 30000) g`);
    await client.query('ALTER TABLE big ADD PRIMARY KEY (id)');
    const info = await table('big');
    let marks = 0;
    // Chunks of 1 000 rows, queries of 10 000: the 10th checkpoint ends the first query and
    // queues the second, whose pages then wait unconsumed until the socket is paused.
    for await (const chunk of readChunks(client, info, types, 1_000, null, undefined, { queryRows: 10_000 })) {
      if (chunk.next !== undefined && ++marks === 10) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        break;
      }
    }
    expect((await client.query<{ n: string }>('SELECT count(*) AS n FROM keyed')).rows[0]!.n).toBe('60');
  });

  it('a partitioned table without a primary key is read in (partition, ctid) order: every row once across queries', async () => {
    // Every partition numbers its rows from (0,1): ordered and resumed by ctid alone, a query
    // ending between rows of equal ctids skipped the others (20 of these 30 rows were read).
    await client.query('CREATE TABLE parts (id int, k int) PARTITION BY LIST (k)');
    for (const k of [1, 2, 3]) await client.query(`CREATE TABLE parts_${k} PARTITION OF parts FOR VALUES IN (${k})`);
    await client.query('INSERT INTO parts SELECT g, 1 + g % 3 FROM generate_series(1, 30) g');
    const info = await table('parts');
    const { rows, positions } = await collect(readChunks(client, info, types, 4, null, undefined, { queryRows: 4 }));
    expect(rows.map((r) => r.id as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // A resumed read continues after the saved (partition, ctid).
    const rest = await collect(readChunks(client, info, types, 4, positions[3]!, undefined, { queryRows: 4 }));
    expect(rest.rows.map((r) => r.id)).toEqual(rows.slice(16).map((r) => r.id));
  });

  it('a COPY the server fails (here: the table was dropped after it was listed) fails the read instead of hanging', async () => {
    await client.query('CREATE TABLE gone (id int PRIMARY KEY)');
    const info = await table('gone');
    await client.query('DROP TABLE gone');
    // `pg` drops a query on its ErrorResponse: the COPY never saw its end and waited forever.
    await expect(collect(readChunks(client, info, types, 10, null))).rejects.toThrow(/"public.gone" does not exist/);
    expect((await client.query<{ n: string }>('SELECT count(*) AS n FROM keyed')).rows[0]!.n).toBe('60');
  });
});
