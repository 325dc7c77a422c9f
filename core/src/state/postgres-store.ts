/**
 * A StateStore in a PostgreSQL table, for deployments that run many workers or no disk.
 *
 * Table (created on first write if missing, in `schema` or else the first schema of the
 * search_path):
 *   connection text PRIMARY KEY, state jsonb NOT NULL (Airbyte STATE messages; as a jsonb
 *   string of their JSON text when that holds an escape jsonb refuses, see toStateColumn),
 *   version integer NOT NULL (envelope format), updated_at timestamptz NOT NULL
 * A row is the same envelope the file store writes, split into columns, and is validated
 * by the same codec on load. `save` is one upsert statement, hence atomic; durability is
 * PostgreSQL's commit. Reads never create anything: a missing table reads as empty.
 *
 * Errors: refused credentials are `auth`, unreachable/lost connections `transient`, missing
 * database/schema or missing privileges `config`. No message ever contains the password.
 * `save` retries `transient` failures a few times with backoff (see SAVE_RETRY) before it
 * reports one: a checkpoint is not lost to a session the server ended between two commits.
 */
import pg from 'pg';
import type { SyncState } from '../connector/state.js';
import { createRedactor, type Redactor } from '../config/secrets.js';
import { TributaryError } from '../errors.js';
import { checkConnectionName, decodeState, encodeState, withoutStreams } from './codec.js';
import { createKeyedQueue } from '../concurrency/keyed-queue.js';
import type { StateStore } from './store.js';
import type { RetryPolicy } from '../resilience/policy.js';
import { withRetry } from '../resilience/retry.js';

export interface PostgresStateStoreOptions {
  /** `postgres://user:password@host:port/db` (anything `pg` accepts). */
  connectionString: string;
  /** Schema of the table; created if missing. Default: the search_path. */
  schema?: string;
  /** Default `tributary_state`. */
  table?: string;
}

export const DEFAULT_STATE_TABLE = 'tributary_state';

/**
 * Attempts of a save that fails `transient` (the server unreachable or the session ended,
 * see `classifyError`); any other failure is final at once. About 2 s of waits at most, on
 * top of the attempts themselves.
 */
const SAVE_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 250, maxDelayMs: 1_000 };

interface StateRow {
  state: unknown;
  version: unknown;
  updated_at: unknown;
}

export function createPostgresStateStore(options: PostgresStateStoreOptions): StateStore {
  const target = describeTarget(options.connectionString);
  const { location } = target;
  const table = options.table ?? DEFAULT_STATE_TABLE;
  const qualified = options.schema === undefined ? pg.escapeIdentifier(table) : `${pg.escapeIdentifier(options.schema)}.${pg.escapeIdentifier(table)}`;
  const where = `${location} (table ${options.schema === undefined ? table : `${options.schema}.${table}`})`;

  // Small: state traffic is a few statements per checkpoint. Idle clients do not keep the process alive.
  const pool = new pg.Pool({ connectionString: options.connectionString, max: 2, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 15_000, allowExitOnIdle: true });
  // An idle client losing its server emits here; without a listener that would crash the
  // process. The next query gets a fresh client or a classified error, so nothing is lost.
  pool.on('error', () => undefined);

  const queue = createKeyedQueue();
  /** The connection locks this store holds (see `lock`). */
  const locks = new Map<string, HeldLock>();

  /**
   * A lock lives in a database session, which the server may end while the sync runs
   * (restart, failover, pg_terminate_backend, idle_session_timeout): the lock goes with it
   * and another sync may take it. Before a checkpoint is saved, a lost lock is taken again on
   * a new session; if another sync holds it meanwhile, the save is refused, so that two syncs
   * never both commit checkpoints of one connection.
   */
  const relock = async (connection: string): Promise<void> => {
    const held = locks.get(connection);
    if (held === undefined || !held.lost) return;
    held.client = await tryAdvisoryLock(pool, `tributary:${where}:${connection}`, connection, where);
    held.lost = false;
    watchSession(held);
  };
  let ready: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  const ensureTable = (): Promise<void> =>
    (ready ??= createTable(pool, qualified, options.schema).catch((error: unknown) => {
      ready = undefined;
      throw error;
    }));

  /**
   * Runs one store operation: refuses after close, runs operations on one connection in
   * call order (like the file store), classifies every failure.
   */
  const run = async <T>(action: string, connection: string | undefined, task: () => Promise<T>): Promise<T> => {
    if (closing) throw new TributaryError('fatal', { userMessage: `State store ${location} is closed` });
    if (connection !== undefined) checkConnectionName(connection);
    try {
      return await (connection === undefined ? task() : queue.run(connection, task));
    } catch (error) {
      throw classifyError(error, action, where, target);
    }
  };

  const decodeRow = (connection: string, row: StateRow): SyncState =>
    decodeState(
      {
        version: row.version,
        connection,
        updatedAt: row.updated_at instanceof Date ? row.updated_at.toISOString() : row.updated_at,
        state: fromStateColumn(row.state),
      },
      connection,
      where,
    );

  const upsert = async (db: pg.Pool | pg.PoolClient, connection: string, state: SyncState): Promise<void> => {
    const envelope = encodeState(connection, state);
    await db.query(
      `INSERT INTO ${qualified} (connection, state, version, updated_at) VALUES ($1, $2::jsonb, $3, $4)
       ON CONFLICT (connection) DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at`,
      // Serialised here: pg would send a JS array as a PostgreSQL array, not as JSON.
      [connection, toStateColumn(envelope.state), envelope.version, envelope.updatedAt],
    );
  };

  /** One attempt of `save`: takes a lost lock again, then upserts the state. */
  const saveOnce = async (connection: string, state: SyncState): Promise<void> => {
    await relock(connection);
    await ensureTable();
    try {
      await upsert(pool, connection, state);
    } catch (error) {
      if (pgCode(error) !== '42P01') throw error;
      // The table was dropped behind our back since we created it: create it again, once.
      ready = undefined;
      await ensureTable();
      await upsert(pool, connection, state);
    }
  };

  const resetStreams = async (connection: string, streams: readonly string[]): Promise<void> => {
    const client = await pool.connect();
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<StateRow>(`SELECT state, version, updated_at FROM ${qualified} WHERE connection = $1 FOR UPDATE`, [connection]);
      const row = rows[0];
      const state = row === undefined ? undefined : decodeRow(connection, row);
      const kept = state === undefined ? undefined : withoutStreams(state, streams);
      if (state !== undefined && kept === undefined) await client.query(`DELETE FROM ${qualified} WHERE connection = $1`, [connection]);
      else if (kept !== undefined && kept !== state) await upsert(client, connection, kept);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError;
      });
      throw error;
    } finally {
      // A client whose rollback failed is in an unknown state: destroy it rather than reuse it.
      client.release(broken instanceof Error ? broken : undefined);
    }
  };

  return {
    location,
    load: (connection) =>
      run('read state from', connection, async () => {
        const rows = await readTolerant(async () => (await pool.query<StateRow>(`SELECT state, version, updated_at FROM ${qualified} WHERE connection = $1`, [connection])).rows, []);
        const row = rows[0];
        return row === undefined ? undefined : decodeRow(connection, row);
      }),
    save: (connection, state) =>
      run('write state to', connection, () =>
        // The server may end a session between two checkpoints or during one (a restart, a
        // failover, pg_terminate_backend, idle_session_timeout); the pool then connects anew.
        // Retrying is safe: a save is one upsert of the whole state, so an attempt whose commit
        // did reach the server before its answer was lost leaves the row a retry writes again,
        // and the keyed queue holds back later operations on the connection meanwhile.
        withRetry(
          async () => {
            try {
              await saveOnce(connection, state);
            } catch (error) {
              throw classifyError(error, 'write state to', where, target);
            }
          },
          SAVE_RETRY,
        ),
      ),
    reset: (connection, streams) =>
      run('reset state in', connection, async () => {
        if (streams === undefined) {
          await readTolerant(() => pool.query(`DELETE FROM ${qualified} WHERE connection = $1`, [connection]), undefined);
        } else if (streams.length > 0) {
          await readTolerant(() => resetStreams(connection, streams), undefined);
        }
      }),
    list: () =>
      run('list states in', undefined, async () => {
        const rows = await readTolerant(async () => (await pool.query<{ connection: string }>(`SELECT connection FROM ${qualified}`)).rows, []);
        // Sorted here, not by the database collation, so every store lists in the same order.
        return rows.map((r) => r.connection).sort();
      }),
    lock: (connection) =>
      run('lock state in', undefined, async () => {
        checkConnectionName(connection);
        const key = `tributary:${where}:${connection}`;
        const held: HeldLock = { client: await tryAdvisoryLock(pool, key, connection, where), lost: false, released: false };
        watchSession(held);
        locks.set(connection, held);
        return {
          async release() {
            if (locks.get(connection) === held) locks.delete(connection);
            if (held.lost) return;
            // From here the client is released below, whatever happens to its session.
            held.released = true;
            let broken: unknown;
            await held.client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]).catch((error: unknown) => (broken = error));
            held.client.release(broken instanceof Error ? broken : undefined);
          },
        };
      }),
    close: () => (closing ??= queue.drain().then(() => pool.end())),
  };
}

/**
 * The escapes JSON.stringify writes for a NUL character (`\u0000`) and for an unpaired UTF-16
 * surrogate (`\ud800`…`\udfff`; a paired one is written as the character itself). jsonb
 * refuses both (22P05, 22P02), although they are valid JSON and the file store keeps them.
 * Also matches a literal backslash followed by such text, which merely takes the text form.
 */
const JSONB_REFUSED_ESCAPE = /\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/**
 * The `state` column's JSON text for the STATE messages: the messages themselves, a jsonb
 * array (readable in SQL) — or, when their text holds an escape jsonb refuses (a cursor or
 * page token copied from data can hold any string), a jsonb string holding that text, in
 * which the escapes are plain characters. Without this such a checkpoint could never be
 * saved, and every later sync of the connection failed at it.
 */
function toStateColumn(messages: unknown): string {
  const text = JSON.stringify(messages);
  return JSONB_REFUSED_ESCAPE.test(text) ? JSON.stringify(text) : text;
}

/** The STATE messages a `state` column holds (see `toStateColumn`); anything else is returned for the codec to refuse. */
function fromStateColumn(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

interface HeldLock {
  /** The session holding the advisory lock (checked out of the pool for as long). */
  client: pg.PoolClient;
  /** The session ended (its lock with it); `client` is unusable. */
  lost: boolean;
  /** `release` gave the client back (or is about to): its session is no longer this lock's. */
  released: boolean;
}

/** Takes the advisory lock `key` on a client of its own, or throws the `config` error saying it is held. */
async function tryAdvisoryLock(pool: pg.Pool, key: string, connection: string, where: string): Promise<pg.PoolClient> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked', [key]);
    if (rows[0]?.locked !== true) {
      throw new TributaryError('config', { userMessage: `Connection ${JSON.stringify(connection)} is already being synced (its lock in ${where} is held by another session): run one sync per connection at a time` });
    }
  } catch (error) {
    client.release();
    throw error;
  }
  return client;
}

/**
 * A checked-out pg client has no `error` listener (the pool only listens to idle ones): a
 * session ended by the server would be an unhandled `error` event, crashing the process.
 * Marks the lock lost instead and discards the client. Once the lock released its client
 * (back to the pool, where it may serve other statements), an error of that session is not
 * the lock's: releasing the client a second time would throw from the event handler.
 */
function watchSession(held: HeldLock): void {
  const client = held.client;
  client.once('error', (error: Error) => {
    client.on('error', () => undefined);
    if (held.client !== client || held.released) return;
    held.lost = true;
    client.release(error);
  });
}

/** Runs a statement that needs the table to exist; when it does not, returns `absent`. */
async function readTolerant<T>(task: () => Promise<T>, absent: T): Promise<T> {
  try {
    return await task();
  } catch (error) {
    if (pgCode(error) === '42P01') return absent; // undefined_table: nothing was ever saved
    throw error;
  }
}

async function createTable(pool: pg.Pool, qualified: string, schema: string | undefined): Promise<void> {
  // Checked first so a user without CREATE privilege can use a table an admin created.
  const { rows } = await pool.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [qualified]);
  if (rows[0]?.present) return;
  try {
    if (schema !== undefined) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${qualified} (
         connection text PRIMARY KEY,
         state jsonb NOT NULL,
         version integer NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
  } catch (error) {
    // IF NOT EXISTS still races with a concurrent creator; losing that race is fine.
    if (!['23505', '42P06', '42P07'].includes(pgCode(error) ?? '')) throw error;
  }
}

interface Target {
  location: string;
  host: string;
  port: number;
  database: string;
  user: string;
  redact: Redactor;
}

/** Where `pg` will connect (connection string, then PG* environment, then defaults). */
function describeTarget(connectionString: string): Target {
  let probe: pg.Client;
  try {
    // Constructing a client only parses its parameters; it opens nothing.
    probe = new pg.Client({ connectionString });
  } catch (error) {
    // The parser's message may quote the string, password included; do not pass it on.
    throw new TributaryError('config', {
      userMessage: `Invalid PostgreSQL connection string for the state store (${error instanceof Error ? error.name : 'unparseable'}). Expected postgres://user:password@host:port/database`,
    });
  }
  const host = probe.host || 'localhost';
  const database = probe.database ?? probe.user ?? 'postgres';
  const password = (probe as unknown as { password?: unknown }).password;
  return {
    location: `postgres:${host.includes(':') ? `[${host}]` : host}:${probe.port}/${database}`,
    host,
    port: probe.port,
    database,
    user: probe.user ?? '',
    redact: createRedactor(typeof password === 'string' ? [password, encodeURIComponent(password)] : []),
  };
}

function pgCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
const LOST_CONNECTION = /Connection terminated|timeout exceeded when trying to connect|Connection ended unexpectedly/i;

/** Maps a pg/network failure to a TributaryError. Messages name host/db/user, never the password. */
function classifyError(error: unknown, action: string, where: string, target: Target): TributaryError {
  if (error instanceof TributaryError) return error;
  const code = pgCode(error);
  const message = target.redact(error instanceof Error ? error.message : String(error));
  const details = { internalMessage: message, cause: error };
  const server = `PostgreSQL at ${target.host}:${target.port}/${target.database}`;

  if (code === '28P01' || code === '28000' || /^SASL|password must be a string/.test(message)) {
    return new TributaryError('auth', {
      userMessage: `${server} refused user ${JSON.stringify(target.user)} for the state store (${code ?? message}). Check the user and password in the state store URL.`,
      ...details,
    });
  }
  if (code === '3D000') {
    return new TributaryError('config', { userMessage: `Database ${JSON.stringify(target.database)} does not exist on ${target.host}:${target.port} (state store).`, ...details });
  }
  if (code === '42501' || code === '3F000') {
    return new TributaryError('config', {
      userMessage: `Cannot ${action} ${where}: ${message}. Grant the privileges, or choose another ?schema= / ?table= in the state store URL.`,
      ...details,
    });
  }
  if ((code !== undefined && (NETWORK_CODES.has(code) || /^(08|57P0|53)/.test(code))) || LOST_CONNECTION.test(message)) {
    return new TributaryError('transient', { userMessage: `Cannot reach the state store ${server} (${code ?? message}).`, ...details });
  }
  if (/SSL|certificate/i.test(message)) {
    return new TributaryError('config', { userMessage: `TLS problem connecting to ${server} for the state store: ${message}`, ...details });
  }
  return new TributaryError('fatal', { userMessage: `Cannot ${action} ${where}${code ? ` (PostgreSQL error ${code})` : ''}`, ...details });
}
