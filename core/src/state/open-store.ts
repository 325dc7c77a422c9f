/**
 * Opens the StateStore a user configured with one string (CLI flag, sync file, env):
 * - absent               → file store in `<baseDir>/.tributary/state`
 * - `file:<path>`, `file:///abs/path` or a plain path → file store there
 * - `postgres://…` / `postgresql://…` → PostgreSQL store; `?schema=` and `?table=` pick the
 *   table and are removed before connecting.
 * Relative paths resolve against `baseDir` (default: the working directory).
 * Opening does not connect; the first operation does, and reports unreachable servers.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TributaryError } from '../errors.js';
import { createFileStateStore } from './file-store.js';
import { createPostgresStateStore, type PostgresStateStoreOptions } from './postgres-store.js';
import type { StateStore } from './store.js';

export const DEFAULT_STATE_DIR = '.tributary/state';

const ACCEPTED_FORMS = 'a directory path, file:<path>, or postgres://user:password@host:port/database[?schema=…&table=…]';

export async function openStateStore(url: string | undefined, baseDir?: string): Promise<StateStore> {
  const base = resolve(baseDir ?? process.cwd());
  const spec = url?.trim() ?? '';
  if (spec === '') return openFileStore(resolve(base, DEFAULT_STATE_DIR));

  // A scheme is 2+ characters, so Windows drive letters (`C:\state`) read as paths.
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(spec)?.[1]?.toLowerCase();
  if (scheme === undefined) return openFileStore(resolve(base, spec));
  if (scheme === 'file') return openFileStore(spec.startsWith('file://') ? fileURLToPath(spec) : resolve(base, spec.slice('file:'.length)));
  if (scheme === 'postgres' || scheme === 'postgresql') return createPostgresStateStore(postgresOptions(spec));
  // Only the scheme is echoed: the rest of an unknown URL may hold a password.
  throw new TributaryError('config', { userMessage: `Unsupported state store "${scheme}:". Use ${ACCEPTED_FORMS}.` });
}

async function openFileStore(dir: string): Promise<StateStore> {
  const info = await stat(dir).catch(() => undefined);
  if (info !== undefined && !info.isDirectory()) {
    throw new TributaryError('config', { userMessage: `State store path ${dir} exists but is not a directory.` });
  }
  return createFileStateStore(dir);
}

function postgresOptions(spec: string): PostgresStateStoreOptions {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new TributaryError('config', { userMessage: `Invalid PostgreSQL state store URL. Use ${ACCEPTED_FORMS}.` });
  }
  const take = (name: string): string | undefined => {
    const value = url.searchParams.get(name) ?? undefined;
    url.searchParams.delete(name);
    if (value === '') throw new TributaryError('config', { userMessage: `The state store URL has an empty ?${name}=.` });
    return value;
  };
  const schema = take('schema');
  const table = take('table');
  const options: PostgresStateStoreOptions = { connectionString: url.toString() };
  if (schema !== undefined) options.schema = schema;
  if (table !== undefined) options.table = table;
  return options;
}
