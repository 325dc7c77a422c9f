/**
 * A StateStore in a PostgreSQL table, for deployments that run many workers or no disk.
 *
 * Table (created on first write if missing, in `schema` or else the first schema of the
 * search_path):
 *   connection text PRIMARY KEY, state jsonb NOT NULL (Airbyte STATE messages; as a jsonb
 *   string of their JSON text when that holds an escape jsonb refuses, see toStateColumn),
 *   version integer NOT NULL (envelope format), updated_at timestamptz NOT NULL
 * A row is the same envelope the file store writes, split into columns, and is validated
 * by the same codec on load. `save` is one statement, hence atomic; durability is
 * PostgreSQL's commit. Reads never create anything: a missing table reads as empty.
 *
 * Errors: refused credentials are `auth`, unreachable/lost connections `transient`, missing
 * database/schema or missing privileges `config`. No message ever contains the password.
 * `save` retries `transient` failures a few times with backoff (see SAVE_RETRY) before it
 * reports one: a checkpoint is not lost to a session the server ended between two commits.
 *
 * Locking: `lock` is an advisory lock of a session of its own. While this store holds a
 * connection's lock it remembers the row version (`xmin`) and state it last read or wrote,
 * and a save is a conditional write of that version (still one statement): when the row
 * changed meanwhile — another sync took the lock while this one's lock session was lost,
 * saved and finished — the save is refused (fatal) and writes nothing, so the stored state
 * never moves back to this sync's older progress. See `saveOnce`.
 */
import pg from 'pg';
import type { SyncState } from '../connector/state.js';
import { createRedactor, type Redactor } from '../config/secrets.js';
import { TributaryError } from '../errors.js';
import { checkConnectionName, decodeState, encodeState, largestPart, stateText, withoutStreams } from './codec.js';
import { stateTooLongError } from '../util/json-text.js';
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

/** A row as read by `load`: with its version. */
interface VersionedRow extends StateRow {
  xmin: string;
}

/**
 * The row of a locked connection as this store last read or wrote it: its version (`xmin`,
 * the id of the transaction that wrote it; every write changes it) and its `state` column's
 * JSON text; or `absent` when there was no row.
 */
type KnownRow = { xmin: string; state: string } | 'absent';

/** A save's row, encoded once so that every attempt of the save writes the same. */
interface RowValues {
  state: string;
  version: number;
  updatedAt: string;
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
   * For connections whose lock this store holds: their row as this store last read or wrote
   * it (absent until it did either). Dropped when the lock is taken or released: knowledge
   * from outside a lock period says nothing about the row. See `saveOnce`.
   */
  const known = new Map<string, KnownRow>();
  const remember = (connection: string, row: KnownRow | undefined): void => {
    if (row === undefined || !locks.has(connection)) known.delete(connection);
    else known.set(connection, row);
  };

  /**
   * A lock lives in a database session, which the server may end while the sync runs
   * (restart, failover, pg_terminate_backend, idle_session_timeout): the lock goes with it
   * and another sync may take it. Before a checkpoint is saved, a lost lock is taken again on
   * a new session; if another sync holds it meanwhile, the save is refused, so that two syncs
   * never both commit checkpoints of one connection. If another sync held it and has finished,
   * the relock succeeds, and the save's conditional write (see `saveOnce`) refuses instead.
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

  /**
   * A state whose text fits in a string but not in a jsonb value (PostgreSQL caps a jsonb
   * value, and each string in it, at 256 MiB): the server refuses the statement (54000), so
   * nothing is written. Reported naming the stream whose state is largest, as a state too
   * long to serialize is, not as a bare "PostgreSQL error 54000".
   */
  const stateTooLargeForColumn = (state: SyncState, error: unknown): TributaryError =>
    stateTooLongError(
      largestPart(state),
      `it cannot be saved to ${where} (the state saved before it is kept)`,
      error,
      `PostgreSQL refuses it as a jsonb value (${target.redact(error instanceof Error ? error.message : String(error))}; a jsonb value holds at most 256 MiB)`,
    );

  const rowValues = (connection: string, state: SyncState): RowValues => {
    const envelope = encodeState(connection, state);
    // Serialised here: pg would send a JS array as a PostgreSQL array, not as JSON.
    const text = stateText(state, () => toStateColumn(envelope.state), `it cannot be saved to ${where} (the state saved before it is kept)`);
    return { state: text, version: envelope.version, updatedAt: envelope.updatedAt };
  };

  /** Writes the row whatever is stored; returns its new version. */
  const upsert = async (db: pg.Pool | pg.PoolClient, connection: string, row: RowValues): Promise<string> => {
    const { rows } = await db.query<{ xmin: string }>(
      `INSERT INTO ${qualified} (connection, state, version, updated_at) VALUES ($1, $2::jsonb, $3, $4)
       ON CONFLICT (connection) DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
       RETURNING xmin::text AS xmin`,
      [connection, row.state, row.version, row.updatedAt],
    );
    return rows[0]!.xmin;
  };

  /**
   * Writes the row only if it is stored as `expected` says (one statement, atomic: a
   * concurrent write makes it match nothing); returns its new version, or undefined when the
   * stored row is not `expected`. Without `expected`, writes whatever is stored.
   */
  const writeRow = async (connection: string, row: RowValues, expected: KnownRow | undefined): Promise<string | undefined> => {
    if (expected === undefined) return upsert(pool, connection, row);
    const values = [connection, row.state, row.version, row.updatedAt];
    const { rows } =
      expected === 'absent'
        ? await pool.query<{ xmin: string }>(
            `INSERT INTO ${qualified} (connection, state, version, updated_at) VALUES ($1, $2::jsonb, $3, $4)
             ON CONFLICT (connection) DO NOTHING RETURNING xmin::text AS xmin`,
            values,
          )
        : // Inserts a row only if the row `expected` names exists, locked (FOR UPDATE: a concurrent
          // write or delete is waited for, then the row no longer matches); so it always
          // conflicts with that row, which it updates. An UPDATE would do the same, but a save
          // stays one kind of statement (INSERT) for whoever watches the server's activity.
          await pool.query<{ xmin: string }>(
            `INSERT INTO ${qualified} (connection, state, version, updated_at)
               SELECT connection, $2::jsonb, $3, $4 FROM ${qualified} WHERE connection = $1 AND xmin = $5::text::xid FOR UPDATE
             ON CONFLICT (connection) DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
             RETURNING xmin::text AS xmin`,
            [...values, expected.xmin],
          );
    return rows[0]?.xmin;
  };

  /**
   * Why a conditional write matched nothing (rare: it takes a lost lock or a lost answer).
   * Returns the version to write over when nobody else changed the row: it holds this save's
   * own state (an earlier attempt of this save committed, its answer was lost: `written`), or
   * still the state this store knew (same content, new version: another sync took the lock
   * and saved nothing new, or the table was restored). Anything else — another sync saved
   * other progress or reset the state — is the fatal refusal.
   */
  const recheck = async (connection: string, row: RowValues, expected: KnownRow): Promise<{ xmin: string; written: boolean }> => {
    const { rows } = await pool.query<{ xmin: string; mine: boolean; unchanged: boolean }>(
      `SELECT xmin::text AS xmin, state = $2::jsonb AS mine, coalesce(state = $3::jsonb, false) AS unchanged FROM ${qualified} WHERE connection = $1`,
      [connection, row.state, expected === 'absent' ? null : expected.state],
    );
    const stored = rows[0];
    if (stored?.mine) return { xmin: stored.xmin, written: true };
    if (stored?.unchanged) return { xmin: stored.xmin, written: false };
    throw changedMeanwhile(connection);
  };

  const changedMeanwhile = (connection: string): TributaryError =>
    new TributaryError('fatal', {
      userMessage:
        `The state of connection ${JSON.stringify(connection)} in ${where} was changed by someone else since this sync last read or saved it: ` +
        `another sync of this connection ran while this one had lost its lock (its database session ended). ` +
        `This sync stops without saving, so that the other sync's progress is kept; the next sync resumes from the stored state.`,
    });

  /**
   * One attempt of `save`: takes a lost lock again, then writes the row. While the lock is
   * held and the row is known (read or written under the lock), the write is conditional on
   * the row's version (still one statement): a sync whose lock session ended may find that
   * another sync took the lock, saved and finished meanwhile, and must not write its own
   * older state over that one (see `recheck`).
   */
  const saveOnce = async (connection: string, row: RowValues): Promise<void> => {
    await relock(connection);
    await ensureTable();
    const expected = known.get(connection);
    let xmin: string | undefined;
    try {
      xmin = await writeRow(connection, row, expected);
    } catch (error) {
      if (pgCode(error) !== '42P01') throw error;
      // The table was dropped behind our back since we created it: create it again, once.
      // Every row is gone with it, so there is no version to compare with.
      ready = undefined;
      await ensureTable();
      xmin = await upsert(pool, connection, row);
    }
    if (xmin === undefined && expected !== undefined) {
      const found = await recheck(connection, row, expected);
      xmin = found.written ? found.xmin : await writeRow(connection, row, { xmin: found.xmin, state: '' });
      // Changed again between the recheck and the write, although this store holds the lock.
      if (xmin === undefined) throw changedMeanwhile(connection);
    }
    if (xmin !== undefined) remember(connection, { xmin, state: row.state });
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
      else if (kept !== undefined && kept !== state) await upsert(client, connection, rowValues(connection, kept));
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
        const rows = await readTolerant(
          async () => (await pool.query<VersionedRow>(`SELECT state, version, updated_at, xmin::text AS xmin FROM ${qualified} WHERE connection = $1`, [connection])).rows,
          [],
        );
        const row = rows[0];
        const state = row === undefined ? undefined : decodeRow(connection, row);
        // The state column's JSON text as pg parsed it (an array, or the string of `toStateColumn`).
        remember(connection, row === undefined ? 'absent' : { xmin: row.xmin, state: JSON.stringify(row.state) });
        return state;
      }),
    save: (connection, state) =>
      run('write state to', connection, () => {
        const row = rowValues(connection, state);
        // The server may end a session between two checkpoints or during one (a restart, a
        // failover, pg_terminate_backend, idle_session_timeout); the pool then connects anew.
        // Retrying is safe: a save is one write of the whole state, so an attempt whose commit
        // did reach the server before its answer was lost leaves the row a retry writes again
        // (a conditional retry then finds its own state stored, see `recheck`), and the keyed
        // queue holds back later operations on the connection meanwhile.
        return withRetry(
          async () => {
            try {
              await saveOnce(connection, row);
            } catch (error) {
              if (pgCode(error) === PROGRAM_LIMIT_EXCEEDED) throw stateTooLargeForColumn(state, error);
              throw classifyError(error, 'write state to', where, target);
            }
          },
          SAVE_RETRY,
        );
      }),
    reset: (connection, streams) =>
      run('reset state in', connection, async () => {
        if (streams === undefined) {
          await readTolerant(() => pool.query(`DELETE FROM ${qualified} WHERE connection = $1`, [connection]), undefined);
          remember(connection, 'absent');
        } else if (streams.length > 0) {
          // Its version unknown afterwards: a later save writes whatever is stored.
          remember(connection, undefined);
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
        known.delete(connection);
        return {
          async release() {
            if (locks.get(connection) === held) {
              locks.delete(connection);
              known.delete(connection);
            }
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

/** SQLSTATE program_limit_exceeded: here, a state too large for a jsonb value. */
const PROGRAM_LIMIT_EXCEEDED = '54000';

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
