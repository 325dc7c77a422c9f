/**
 * The CRM's storage: one JSON file per object, `<directory>/<object>.json`.
 *
 * - Every change is written atomically: a temp file in the same directory, fsync, rename
 *   over the old file, fsync of the directory. A crash leaves the old or the new file,
 *   never a torn one (stray `*.tmp` files may remain and are ignored).
 * - Operations on one file are serialized by a lock kept per absolute path for the whole
 *   process, so concurrent requests of one session, and sessions sharing a directory,
 *   never lose each other's updates. (Separate processes are not coordinated.)
 * - A parsed table is cached per path and reused while the file's (inode, size, mtime)
 *   is unchanged; any other change to the file is picked up on the next operation.
 */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { TributaryError, createKeyedQueue, writeFileAtomic } from '@tributary/core';
import type { CrmObjectName } from './objects.js';

/** A stored row: `id`, the key property, the fields written, `updated_at`. */
export type Row = Readonly<Record<string, unknown>> & { readonly id: string; readonly updated_at: string };

export interface Table {
  readonly object: CrmObjectName;
  nextId: number;
  /** Rows by key (the value of the object's id property), in creation order. */
  readonly rows: Map<string, Row>;
  /**
   * Keys removed by a delete, with that delete's idempotency key: a replayed delete of a
   * row that is already gone answers `unchanged` instead of `not found`. Bounded.
   */
  readonly deleted: Map<string, string>;
}

interface TableFile {
  object: CrmObjectName;
  next_id: number;
  rows: Row[];
  deleted: Record<string, string>;
}

/** Most recent deletes remembered for replay detection. */
const MAX_TOMBSTONES = 10_000;

const fileLocks = createKeyedQueue();
const cache = new Map<string, { signature: string; table: Table }>();

export function tablePath(directory: string, object: CrmObjectName): string {
  return resolve(directory, `${object}.json`);
}

/** Runs `task` after every earlier task on `path` settled; tasks on one path never overlap. */
export function withFileLock<T>(path: string, task: () => Promise<T>): Promise<T> {
  return fileLocks.run(path, task);
}

function emptyTable(object: CrmObjectName): Table {
  return { object, nextId: 1, rows: new Map(), deleted: new Map() };
}

/** A copy that can be changed without touching `table` (rows themselves are never mutated). */
export function cloneTable(table: Table): Table {
  return { object: table.object, nextId: table.nextId, rows: new Map(table.rows), deleted: new Map(table.deleted) };
}

async function signatureOf(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storageError(`Could not read ${path}`, error);
  }
}

function storageError(message: string, cause: unknown): TributaryError {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  // A full disk or a busy file may clear up; everything else needs an operator.
  const kind = code === 'ENOSPC' || code === 'EBUSY' || code === 'EAGAIN' || code === 'EMFILE' ? 'transient' : 'fatal';
  return new TributaryError(kind, { userMessage: message, internalMessage: cause instanceof Error ? cause.message : String(cause), cause });
}

function parseTable(object: CrmObjectName, path: string, text: string, idProperty: string): Table {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TributaryError('fatal', { userMessage: `The CRM file ${path} is not valid JSON; it was left untouched`, cause: error });
  }
  const file = parsed as Partial<TableFile> | null;
  if (!file || typeof file !== 'object' || !Array.isArray(file.rows) || typeof file.next_id !== 'number' || file.object !== object) {
    throw new TributaryError('fatal', { userMessage: `The CRM file ${path} does not hold the ${object} table; it was left untouched` });
  }
  const rows = new Map<string, Row>();
  for (const row of file.rows) rows.set(String(row[idProperty]), row);
  return { object, nextId: file.next_id, rows, deleted: new Map(Object.entries(file.deleted ?? {})) };
}

/** The current table of `object` (cached while the file is unchanged). Call under the file lock. */
export async function loadTable(path: string, object: CrmObjectName, idProperty: string): Promise<Table> {
  const signature = await signatureOf(path);
  if (signature === undefined) return emptyTable(object);
  const cached = cache.get(path);
  if (cached && cached.signature === signature) return cached.table;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw storageError(`Could not read ${path}`, error);
  }
  const table = parseTable(object, path, text, idProperty);
  const after = await signatureOf(path);
  if (after !== undefined) cache.set(path, { signature: after, table });
  return table;
}

/** Atomically replaces the file of `table` (temp + fsync + rename + directory fsync). Call under the file lock. */
export async function saveTable(path: string, table: Table): Promise<void> {
  while (table.deleted.size > MAX_TOMBSTONES) {
    const oldest = table.deleted.keys().next().value as string;
    table.deleted.delete(oldest);
  }
  const file: TableFile = {
    object: table.object,
    next_id: table.nextId,
    rows: [...table.rows.values()],
    deleted: Object.fromEntries(table.deleted),
  };
  try {
    await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`);
  } catch (error) {
    cache.delete(path);
    throw storageError(`Could not write ${path}`, error);
  }
  const signature = await signatureOf(path);
  if (signature === undefined) cache.delete(path);
  else cache.set(path, { signature, table });
}
