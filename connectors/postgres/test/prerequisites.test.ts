import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgresSource } from '../src/index.js';
import { catalogFor, configFor, contextWithLogs, readAll, sqlClient, startPostgres, type EmbeddedPostgresServer } from './support.js';

// A server without logical decoding: CDC must say what to change; the standard method works.
let server: EmbeddedPostgresServer;
beforeAll(async () => {
  server = await startPostgres({ postgresFlags: ['-c', 'wal_level=replica'] });
  const sql = await sqlClient(server);
  await sql.query('CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())');
  await sql.query('INSERT INTO t (id) VALUES (1), (2)');
  await sql.end();
});
afterAll(async () => {
  await server?.stop();
});

it('wal_level is not logical: check and read fail with a config error that says how to fix it', async () => {
  const config = configFor(server);
  const expected = { kind: 'config', userMessage: expect.stringContaining('wal_level = logical') };
  await expect(postgresSource.check(contextWithLogs().ctx, config)).rejects.toMatchObject(expected);
  await expect(readAll(config, await catalogFor(config, ['t']))).rejects.toMatchObject(expected);
  const standard = configFor(server, { replication_method: 'standard' });
  await postgresSource.check(contextWithLogs().ctx, standard);
  const { records } = await readAll(standard, await catalogFor(standard, ['t']));
  expect(records.map((r) => r.data.id)).toEqual([1, 2]);
});
