import { afterAll, beforeAll, describe, it } from 'vitest';
import { sourceCases, sourceConformance, type SourceCaseName, type SourceConformanceOptions } from '@tributary/conformance';
import { postgresSource } from '../src/index.js';
import { sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

// One server for both suites: the standard method (cursor column) runs the whole source
// suite; CDC runs every case that applies to a replication slot (see below).
let server: EmbeddedPostgresServer;

async function seed(url: string, rows: number): Promise<void> {
  const client = await sqlClient({ url } as EmbeddedPostgresServer);
  try {
    await client.query('CREATE TABLE contacts (id int PRIMARY KEY, name text, score numeric, updated_at timestamptz NOT NULL)');
    await client.query('CREATE TABLE notes (body text, at timestamptz)'); // no primary key: full refresh by ctid
    // Five rows share each updated_at: resuming must not lose or repeat the rest of a tie.
    await client.query(
      `INSERT INTO contacts SELECT g, 'c' || g, g * 1.25, timestamptz '2024-01-01' + (g / 5) * interval '1 minute' FROM generate_series(1, $1::int) g`,
      [rows],
    );
    await client.query(`INSERT INTO notes SELECT 'note ' || g, now() FROM generate_series(1, 23) g`);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  server = await startPostgres();
  await seed(server.url, 57);
  const admin = await sqlClient(server);
  await admin.query('CREATE DATABASE empty_db');
  await admin.end();
  await seed(server.url.replace(/\/[^/]+$/, '/empty_db'), 0);
});
afterAll(async () => {
  await server?.stop();
});

const base = (overrides: Record<string, unknown>) => () => ({
  host: server.host,
  port: server.port,
  database: server.database,
  username: server.user,
  password: server.password,
  chunk_size: 10,
  ...overrides,
});
/** The truth from the table itself: every primary key of `contacts` (`notes` has none). */
async function expectedKeys(stream: { name: string }): Promise<unknown[][] | undefined> {
  if (stream.name !== 'contacts') return undefined;
  const client = await sqlClient(server);
  try {
    const { rows } = await client.query<{ id: number }>('SELECT id FROM contacts ORDER BY id');
    return rows.map((r) => [r.id]);
  } finally {
    await client.end();
  }
}

const badConfig = () => ({ host: server.host, port: server.port, database: server.database, username: server.user, password: 'wrong-password' });

sourceConformance({
  source: postgresSource,
  config: base({ replication_method: 'standard' }),
  badConfig,
  emptyConfig: base({ replication_method: 'standard', database: 'empty_db' }),
  expectedKeys,
});

// CDC: `futureState` is left out — a CDC position lives in the GLOBAL state with its slot,
// so a per-stream cursor "in the future" is not a state this method can be given.
const cdc: SourceConformanceOptions = {
  source: postgresSource,
  config: base({ replication_method: 'cdc', slot_name: 'conformance_slot' }),
  badConfig,
  emptyConfig: base({ replication_method: 'cdc', slot_name: 'conformance_empty_slot', database: 'empty_db' }),
  expectedKeys,
};
const cdcCases: SourceCaseName[] = [
  'spec',
  'checkGoodConfig',
  'checkBadConfig',
  'discover',
  'records',
  'fullRefreshTwice',
  'incrementalFromFinalState',
  'resumeFromEveryCheckpoint',
  'completeness',
  'emptyStreams',
];
describe('source conformance: postgres (cdc)', () => {
  for (const name of cdcCases) it(sourceCases[name].name, () => sourceCases[name].run(cdc));
});
