/**
 * The embedded default StateStore: one JSON file per connection in a directory, no servers.
 *
 * File names: a connection name is encoded so that it can never leave the directory nor
 * collide with another name, even on case-insensitive file systems: `a-z 0-9 _ -` are kept,
 * every other UTF-8 byte (including upper-case letters, `.`, `/`, `%`) becomes `%XX` with
 * upper-case hex. `HubSpot prod` is stored as `%48ub%53pot%20prod.json`.
 *
 * Durability: `save` writes a temp file in the same directory, fsyncs it, renames it over
 * the target and fsyncs the directory, so a crash leaves the old file or the new one.
 * Temp files a crash leaves behind start with `.` and end in `.tmp`; they are ignored.
 * Operations on one connection run one at a time, in call order (per store instance);
 * `close` waits for those in flight.
 */
import { createHash, randomUUID } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, readlink, stat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { SyncState } from '../connector/state.js';
import { TributaryError } from '../errors.js';
import { checkConnectionName, encodeState, parseState, unreadableState, withoutStreams } from './codec.js';
import { createKeyedQueue } from '../concurrency/keyed-queue.js';
import type { ConnectionLock, StateStore } from './store.js';
import { writeDurableTemp, writeFileAtomic } from '../fs/atomic-file.js';

const SUFFIX = '.json';
/** Keeps the file name and its temp sibling under the usual 255-byte limit. */
const MAX_ENCODED_LENGTH = 200;
const STORED_NAME = /^(?:[a-z0-9_-]|%[0-9A-F]{2})+\.json$/;

/** Encodes a connection name into a file name, or throws a `config` error if it cannot be. */
export function connectionFileName(connection: string): string {
  checkConnectionName(connection);
  let encoded = '';
  for (const byte of new TextEncoder().encode(connection)) {
    const char = String.fromCharCode(byte);
    encoded += /[a-z0-9_-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (encoded.length > MAX_ENCODED_LENGTH) {
    throw new TributaryError('config', {
      userMessage: `Invalid connection name ${JSON.stringify(connection)}: it is too long to be a file name (${encoded.length} > ${MAX_ENCODED_LENGTH} encoded bytes)`,
    });
  }
  return encoded + SUFFIX;
}

/** The connection a file name stores, or undefined for files that are not ours. */
function connectionOfFile(fileName: string): string | undefined {
  if (!STORED_NAME.test(fileName)) return undefined;
  try {
    const connection = decodeURIComponent(fileName.slice(0, -SUFFIX.length));
    return connectionFileName(connection) === fileName ? connection : undefined;
  } catch {
    return undefined;
  }
}

export function createFileStateStore(dir: string): StateStore {
  const root = resolve(dir);
  const location = `file:${root}`;
  const queue = createKeyedQueue();
  let closed = false;

  const pathOf = (connection: string): string => {
    const path = join(root, connectionFileName(connection));
    // Cannot happen with the encoding above; checked anyway because escaping the dir is fatal.
    if (dirname(path) !== root) throw new TributaryError('config', { userMessage: `Invalid connection name ${JSON.stringify(connection)}` });
    return path;
  };

  /** Runs `task` after every earlier operation on the same connection has settled. */
  const serial = async <T>(connection: string, task: (path: string) => Promise<T>): Promise<T> => {
    if (closed) throw new TributaryError('fatal', { userMessage: `State store ${location} is closed` });
    const path = pathOf(connection);
    return queue.run(connection, () => task(path));
  };

  const read = async (connection: string, path: string): Promise<SyncState | undefined> => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return undefined;
      throw unreadableState(connection, `file:${path}`, `it cannot be read (${codeOf(error) ?? String(error)})`, error);
    }
    return parseState(text, connection, `file:${path}`);
  };

  const write = async (connection: string, path: string, state: SyncState): Promise<void> => {
    try {
      await ensureDir(root);
      await writeFileAtomic(path, `${JSON.stringify(encodeState(connection, state), null, 2)}\n`);
    } catch (error) {
      throw ioError('write state to', path, error);
    }
  };

  const remove = async (path: string): Promise<void> => {
    try {
      await unlink(path);
      await syncDir(root);
    } catch (error) {
      if (codeOf(error) !== 'ENOENT') throw ioError('delete state', path, error);
    }
  };

  return {
    location,
    load: (connection) => serial(connection, (path) => read(connection, path)),
    save: (connection, state) => serial(connection, (path) => write(connection, path, state)),
    reset: (connection, streams) =>
      serial(connection, async (path) => {
        if (streams === undefined) return remove(path);
        const state = await read(connection, path);
        if (state === undefined) return;
        const kept = withoutStreams(state, streams);
        if (kept === state) return;
        return kept === undefined ? remove(path) : write(connection, path, kept);
      }),
    async list() {
      let files: string[];
      try {
        files = await readdir(root);
      } catch (error) {
        if (codeOf(error) === 'ENOENT') return [];
        throw ioError('list states in', root, error);
      }
      return files.flatMap((file) => connectionOfFile(file) ?? []).sort();
    },
    lock: (connection) => lockConnection(root, connection, pathOf(connection).slice(0, -SUFFIX.length) + LOCK_SUFFIX),
    async close() {
      closed = true;
      await queue.drain();
    },
  };
}

/** Beside the state file: `<encoded connection>.lock` (never listed: `list` reads `.json` files only). */
const LOCK_SUFFIX = '.lock';
/** Beside a lock: `<lock>.<hash of a stale holder's token>.takeover`, the claim to remove it. */
const TAKEOVER_SUFFIX = '.takeover';

interface LockHolder {
  pid: number;
  host: string;
  since: string;
  token: string;
  /**
   * The holder's Linux network namespace (`net:[inode]`), when it listens on its liveness
   * socket (see `announceHolder`) there. Absent in locks of older Tributary versions.
   */
  netns?: string;
}

/**
 * The file store's connection lock: a file naming its holder's process and host, put in
 * place whole (written to a temp file, then hard-linked to its name, which fails if the name
 * exists). A lock whose holder is a process of this host that no longer runs (a sync killed
 * with SIGKILL) is taken over: on Linux a holder of this network namespace runs while its
 * liveness socket answers (see `isStale`), any other holder while its pid runs.
 *
 * Takeover is exclusive: only the process that created the claim `<lock>.<h>.takeover`
 * (exclusively; `h` names the stale holder's token) may remove a lock holding that token,
 * and it removes it only after reading, while holding the claim, that the lock still holds
 * it. A lock holding a token can be removed by nobody else (its holder is dead), and no new
 * lock ever holds that token again, so of any number of processes taking over the same
 * stale lock, exactly one removes it; they then all race on creating the lock, which exactly
 * one wins. A claim left by a process that died while holding it is itself taken over the
 * same way.
 */
async function lockConnection(root: string, connection: string, path: string): Promise<ConnectionLock> {
  await ensureDir(root).catch((error: unknown) => {
    throw ioError('create the state directory', root, error);
  });
  const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomUUID() };
  // Listening before the holder file exists: from the first moment anyone can read it, the
  // socket it names answers for as long as this process may hold the lock or a claim.
  const alive = await announceHolder(me);
  try {
    const lock = await takeLock(connection, path, me);
    return {
      async release() {
        await lock.release();
        await alive?.close();
      },
    };
  } catch (error) {
    await alive?.close();
    throw error;
  }
}

/** lockConnection's attempts, as `me`. */
async function takeLock(connection: string, path: string, me: LockHolder): Promise<ConnectionLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    let created: boolean;
    try {
      created = await createHolderFile(path, path, me);
    } catch (error) {
      throw ioError('lock the state of', path, error);
    }
    if (created) {
      return {
        async release() {
          // Only our own lock: one taken over from us (we were presumed dead) is not ours to remove.
          if ((await readHolder(path))?.token === me.token) await unlink(path).catch(() => undefined);
        },
      };
    }
    const holder = await readHolder(path);
    if (holder !== undefined && (await isStale(holder, me))) {
      try {
        await removeStale(path, path, holder, me);
      } catch (error) {
        throw ioError('take over the stale lock', path, error);
      }
      continue;
    }
    if (holder === undefined && attempt < 2) {
      // Released meanwhile (or written by an older Tributary that created it empty first): look again.
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    throw new TributaryError('config', {
      userMessage:
        `Connection ${JSON.stringify(connection)} is already being synced` +
        (holder ? ` by process ${holder.pid} on ${holder.host} (since ${holder.since})` : '') +
        `: run one sync per connection at a time. If no such sync runs any more, delete ${path}`,
    });
  }
  throw new TributaryError('config', { userMessage: `Could not take the sync lock ${path}: it keeps changing hands; is another sync of ${JSON.stringify(connection)} starting?` });
}

/**
 * Whether `holder` is a process of this host that no longer runs. A holder in this network
 * namespace is alive exactly while its liveness socket answers, whatever its pid means here:
 * pids are per PID namespace, and a container's entrypoint runs as PID 1 (or another fixed
 * pid) in every run, so a pid check took the lock of a sync killed there (SIGKILL, OOM) for
 * the new run's own and refused that sync, and every later one, for good; and it took a
 * live sync of another container sharing the state directory (host network) for dead if its
 * pid was not running here. Other holders are checked by pid, as before.
 */
async function isStale(holder: LockHolder, me: LockHolder): Promise<boolean> {
  if (holder.host !== me.host) return false;
  if (holder.netns !== undefined && holder.netns === me.netns) return !(await holderAnswers(holder.token));
  return !processRuns(holder.pid);
}

/** The abstract Unix socket (Linux) on which the holder issuing `token` listens while it runs. */
const livenessSocket = (token: string): string => `\0tributary-state-lock:${token}`;

/**
 * Listens on `me`'s liveness socket and records the network namespace in `me` (Linux only;
 * elsewhere, or if it cannot listen, `me` is checked by pid as before). The kernel closes
 * the socket when the process dies, so a SIGKILL leaves no live-looking holder behind. The
 * server never keeps the process running.
 */
async function announceHolder(me: LockHolder): Promise<{ close(): Promise<void> } | undefined> {
  if (process.platform !== 'linux') return undefined;
  const netns = await readlink('/proc/self/ns/net').catch(() => undefined);
  if (netns === undefined) return undefined;
  const server: Server = createServer((socket) => socket.destroy());
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(livenessSocket(me.token), () => resolve(true));
  });
  if (!listening) return undefined;
  server.unref();
  me.netns = netns;
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Whether a process listens on the liveness socket of `token` (any failure but "nobody listens" counts as alive). */
function holderAnswers(token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(livenessSocket(token));
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT');
    });
  });
}

/**
 * Creates `path` holding `holder`, complete from the first moment anyone can read it (a
 * temp file, named after `lockPath` since claim names are too long to prefix, hard-linked
 * into place). False when `path` exists.
 */
async function createHolderFile(path: string, lockPath: string, holder: LockHolder): Promise<boolean> {
  const directory = dirname(lockPath);
  const temp = await writeDurableTemp(directory, basename(lockPath), JSON.stringify(holder));
  try {
    await link(temp, path);
  } catch (error) {
    if (codeOf(error) === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  await syncDir(directory);
  return true;
}

/**
 * Removes `path` (the lock at `lockPath`, or a claim on it) if it still holds the dead
 * `stale` holder, exclusively (see lockConnection). Returns without removing it when another
 * live process is taking it over (once that one is done, or after a while) or it has changed
 * hands meanwhile: the caller looks again.
 */
async function removeStale(path: string, lockPath: string, stale: LockHolder, me: LockHolder, depth = 0): Promise<void> {
  const claim = `${lockPath}.${createHash('sha256').update(stale.token).digest('hex').slice(0, 32)}${TAKEOVER_SUFFIX}`;
  if (!(await createHolderFile(claim, lockPath, me))) {
    const claimant = await readHolder(claim);
    // A claimant that died before finishing: its claim is taken over like a lock (a chain
    // of such deaths is bounded; past a few the caller reports the lock as held).
    if (claimant !== undefined && (await isStale(claimant, me))) {
      if (depth < 3) await removeStale(claim, lockPath, claimant, me, depth + 1);
      return;
    }
    for (let wait = 0; wait < 40 && (await exists(claim)); wait++) await new Promise((r) => setTimeout(r, 25));
    return;
  }
  try {
    if ((await readHolder(path))?.token === stale.token) {
      await unlink(path).catch((error: unknown) => {
        if (codeOf(error) !== 'ENOENT') throw error;
      });
    }
  } finally {
    await unlink(claim).catch(() => undefined);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await readFile(path, 'utf8')) as Partial<LockHolder>;
    return typeof holder.pid === 'number' && typeof holder.host === 'string' && typeof holder.token === 'string' ? (holder as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid runs on this host (EPERM: it runs, as another user). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return codeOf(error) === 'EPERM';
  }
}

/** Creates the directory; when it had to, makes the new entries durable in their parents. */
async function ensureDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let created = dir; ; created = dirname(created)) {
    await syncDir(dirname(created));
    if (created === first) break;
  }
}

/** fsync of a directory persists the renames and unlinks inside it. Not possible on Windows. */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** File-system problems the user must fix are `config`; anything else is a bug or worse. */
const USER_FIXABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENOSPC', 'EDQUOT', 'ENAMETOOLONG']);

function ioError(action: string, path: string, error: unknown): TributaryError {
  if (error instanceof TributaryError) return error;
  const code = codeOf(error);
  const detail = error instanceof Error ? error.message : String(error);
  return new TributaryError(code !== undefined && USER_FIXABLE.has(code) ? 'config' : 'fatal', {
    userMessage: `Cannot ${action} ${path}${code ? ` (${code})` : ''}`,
    internalMessage: detail,
    cause: error,
  });
}
