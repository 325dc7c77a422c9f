import pg from 'pg';
import { TributaryError } from '@tributary/core';
import type { PostgresConfig } from './config.js';

/**
 * Every connection runs with the same session settings, so a value has one text form
 * whether it comes from a snapshot query or from the replication stream (pgoutput prints
 * values with the walsender's settings): UTC, ISO dates, ISO-8601 intervals, shortest
 * exact floats.
 */
const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c standard_conforming_strings=on';

/** Every value arrives as text; `schema/values.ts` converts it, identically for both paths. */
const rawText = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export function clientConfig(config: PostgresConfig, replication = false): pg.ClientConfig {
  return {
    host: config.host,
    port: config.port ?? 5432,
    database: config.database,
    user: config.username,
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...(config.ssl ? { ssl: { rejectUnauthorized: true } } : {}),
    options: SESSION_OPTIONS,
    application_name: replication ? 'tributary-cdc' : 'tributary',
    types: rawText,
    connectionTimeoutMillis: 15_000,
    ...(replication ? { replication: 'database' } : {}),
  } as pg.ClientConfig;
}

/** Opens a connection, turning refusals into errors that say what to fix. */
export async function connect(config: PostgresConfig, replication = false): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(config, replication));
  // A dropped connection surfaces on the pending query; without a listener it would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw connectionError(error, config, replication);
  }
  return client;
}

/**
 * Whether `error` means the connection to the server was lost — the socket dropped or reset,
 * the server restarted or shutting down — rather than a refusal or a failed statement: a
 * `transient` failure (run again later; nothing to fix in the configuration). pg reports a
 * peer that went away as "Connection terminated unexpectedly" (no SQLSTATE), and every later
 * query on that client as "… not queryable".
 */
export function isConnectionLoss(error: unknown): boolean {
  if (TributaryError.is(error)) return error.kind === 'transient';
  const code = sqlState(error);
  if (code && (code.startsWith('08') || code.startsWith('57P'))) return true;
  if (code && /^E[A-Z]+$/.test(code)) return true;
  const message = error instanceof Error ? error.message : String(error);
  return /Connection terminated|ended the replication stream|ECONNRESET|EPIPE|server closed the connection|not queryable/i.test(message);
}

/**
 * `error` as the `transient` TributaryError it is when it is a connection loss that reached
 * no other handler (e.g. the snapshot's connection dropped mid-COPY): a raw pg error would
 * otherwise be reported as an unexplained fatal failure. Other errors are returned as they are.
 */
export function lostConnectionError(error: unknown, config: PostgresConfig): unknown {
  if (TributaryError.is(error) || !isConnectionLoss(error)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new TributaryError('transient', {
    userMessage: `The connection to PostgreSQL at ${config.host}:${config.port ?? 5432}/${config.database} was lost (${detail}). Nothing after the last committed checkpoint was confirmed: the next sync resumes from there.`,
    internalMessage: detail,
    cause: error,
  });
}

/** SQLSTATE of a pg error, if any. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function connectionError(error: unknown, config: PostgresConfig, replication: boolean): TributaryError {
  const code = sqlState(error);
  const detail = error instanceof Error ? error.message : String(error);
  const where = `${config.host}:${config.port ?? 5432}/${config.database}`;
  if (code === '28P01' || code === '28000') {
    if (replication && /replication/i.test(detail)) {
      return new TributaryError('config', {
        userMessage: `PostgreSQL refused a replication connection for user "${config.username}" at ${where}: the role lacks the REPLICATION attribute or pg_hba.conf has no "replication" entry for it. Run ALTER ROLE "${config.username}" REPLICATION; (as a superuser) and allow it in pg_hba.conf.`,
        internalMessage: detail,
        cause: error,
      });
    }
    return new TributaryError('auth', {
      userMessage: `PostgreSQL refused the credentials of user "${config.username}" at ${where}: check username and password.`,
      internalMessage: detail,
      cause: error,
    });
  }
  if (code === '3D000') {
    return new TributaryError('config', {
      userMessage: `Database "${config.database}" does not exist on ${config.host}:${config.port ?? 5432}.`,
      internalMessage: detail,
      cause: error,
    });
  }
  if (code === '42501' && replication) {
    return new TributaryError('config', {
      userMessage: `User "${config.username}" may not open a replication connection: grant it with ALTER ROLE "${config.username}" REPLICATION;`,
      internalMessage: detail,
      cause: error,
    });
  }
  const network = (error as { code?: unknown } | null)?.code;
  if (typeof network === 'string' && /^E[A-Z]+$/.test(network)) {
    return new TributaryError('transient', {
      userMessage: `Cannot reach PostgreSQL at ${config.host}:${config.port ?? 5432} (${network}).`,
      internalMessage: detail,
      cause: error,
    });
  }
  // A connection dropped while it was being set up (no SQLSTATE: the peer went away, or the
  // connect timed out) is no configuration problem: run again later.
  return new TributaryError(code?.startsWith('08') || code?.startsWith('57P') || (code === undefined && isConnectionLoss(error)) ? 'transient' : 'config', {
    userMessage: `Cannot connect to PostgreSQL at ${where}: ${detail}`,
    internalMessage: detail,
    cause: error,
  });
}

/** Quotes an identifier (schema, table, column, slot) for SQL text. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function qualified(namespace: string, name: string): string {
  return `${ident(namespace)}.${ident(name)}`;
}

export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
