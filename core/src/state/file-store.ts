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
 *
 * Locking: see `lockConnection`. A lock can pass to another sync while its holder still runs
 * (someone deletes the lock file, or a holder in another PID and network namespace with the
 * same host name is taken for dead). So while this store holds a connection's lock, `save`
 * first checks that the lock file still names it (one small read); if not, it takes the lock
 * again and refuses (fatal, writing nothing) when the state changed since this store last
 * read or wrote it: another sync ran meanwhile, and its progress must not be overwritten
 * with this sync's older state. See `checkLock`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, readlink, stat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { SyncState } from '../connector/state.js';
import { TributaryError } from '../errors.js';
import { checkConnectionName, encodeState, parseState, stateText, unreadableState, withoutStreams } from './codec.js';
import { isStringTooLong } from '../util/json-text.js';
import { createKeyedQueue } from '../concurrency/keyed-queue.js';
import type { StateStore } from './store.js';
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
  /** The connection locks this store holds (see `lock`). */
  const locks = new Map<string, HeldFileLock>();
  let closed = false;

  /** Records what the state file of a locked connection holds, as this store last read or wrote it. */
  const remember = (connection: string, text: string | undefined): void => {
    const held = locks.get(connection);
    if (held) held.known = text ?? ABSENT;
  };

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
      if (codeOf(error) === 'ENOENT') {
        remember(connection, undefined);
        return undefined;
      }
      throw unreadableState(connection, `file:${path}`, `it cannot be read (${codeOf(error) ?? String(error)})`, error);
    }
    const state = parseState(text, connection, `file:${path}`);
    remember(connection, text);
    return state;
  };

  const write = async (connection: string, path: string, state: SyncState): Promise<void> => {
    const text = stateFileText(connection, state, path);
    try {
      await ensureDir(root);
      await writeFileAtomic(path, text);
    } catch (error) {
      throw ioError('write state to', path, error);
    }
    remember(connection, text);
  };

  const remove = async (connection: string, path: string): Promise<void> => {
    try {
      await unlink(path);
      await syncDir(root);
    } catch (error) {
      if (codeOf(error) !== 'ENOENT') throw ioError('delete state', path, error);
    }
    remember(connection, undefined);
  };

  /**
   * Before a save under the connection's lock: returns when the lock file still names this
   * store's sync (the usual case: one read of a small file). Otherwise the lock passed to
   * another sync while this one ran; takes it again if it is free (throws the fatal refusal
   * if another sync holds it), then refuses when the state file is not what this store last
   * read or wrote (see `sameState`). Not atomic with the write that follows: it closes the
   * window of a whole sync, not the moment between this check and the rename.
   */
  const checkLock = async (connection: string, path: string): Promise<void> => {
    const held = locks.get(connection);
    if (held?.refused) throw held.refused;
    if (held === undefined || (await readHolder(held.path))?.token === held.holder.token) return;
    if (!(await retakeLock(held))) {
      const holder = await readHolder(held.path);
      throw lostLock(connection, path, `its lock ${held.path} was taken by another sync${holder ? ` (process ${holder.pid} on ${holder.host}, since ${holder.since})` : ''} while this one ran`);
    }
    if (held.known === undefined) return;
    const current = await readFile(path, 'utf8').catch((error: unknown): typeof ABSENT => {
      if (codeOf(error) === 'ENOENT') return ABSENT;
      throw ioError('read state from', path, error);
    });
    if (!sameState(current, held.known)) {
      // Every later save of this lock is refused too: this sync's state is behind the stored one for good.
      held.refused = lostLock(connection, path, 'another sync of this connection ran while this one had lost its lock');
      throw held.refused;
    }
  };

  return {
    location,
    load: (connection) => serial(connection, (path) => read(connection, path)),
    save: (connection, state) =>
      serial(connection, async (path) => {
        await checkLock(connection, path);
        await write(connection, path, state);
      }),
    reset: (connection, streams) =>
      serial(connection, async (path) => {
        if (streams === undefined) return remove(connection, path);
        const state = await read(connection, path);
        if (state === undefined) return;
        const kept = withoutStreams(state, streams);
        if (kept === state) return;
        return kept === undefined ? remove(connection, path) : write(connection, path, kept);
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
    async lock(connection) {
      const held = await lockConnection(root, connection, pathOf(connection).slice(0, -SUFFIX.length) + LOCK_SUFFIX);
      locks.set(connection, held);
      return {
        async release() {
          if (locks.get(connection) === held) locks.delete(connection);
          await releaseLock(held);
        },
      };
    },
    async close() {
      closed = true;
      await queue.drain();
    },
  };
}

/**
 * A state file's text: the envelope indented, for people who read it; compact when that is
 * longer than a string can be but the compact text is not (the runtime admits any state
 * whose compact text fits). Longer still: the fatal error naming the stream (`stateText`).
 */
function stateFileText(connection: string, state: SyncState, path: string): string {
  const envelope = encodeState(connection, state);
  return stateText(
    state,
    () => {
      try {
        return `${JSON.stringify(envelope, null, 2)}\n`;
      } catch (error) {
        if (!isStringTooLong(error)) throw error;
        return `${JSON.stringify(envelope)}\n`;
      }
    },
    `it cannot be saved to ${path} (the state saved before it is kept)`,
  );
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
 *
 * A live holder can still lose its lock: someone deletes the file, or a process of another
 * PID and network namespace with the same host name, where the holder's pid does not run,
 * takes it for dead. Its store then refuses to save over the other sync's state (see
 * `checkLock` in createFileStateStore).
 */
async function lockConnection(root: string, connection: string, path: string): Promise<HeldFileLock> {
  await ensureDir(root).catch((error: unknown) => {
    throw ioError('create the state directory', root, error);
  });
  const me = newHolder();
  // Listening before the holder file exists: from the first moment anyone can read it, the
  // socket it names answers for as long as this process may hold the lock or a claim.
  const alive = await announceHolder(me);
  try {
    await takeLock(connection, path, me);
  } catch (error) {
    await alive?.close();
    throw error;
  }
  return { path, holder: me, alive };
}

/** A connection lock this store holds. */
interface HeldFileLock {
  /** The lock file. */
  path: string;
  /** This sync as the lock file names it. */
  holder: LockHolder;
  /** The liveness socket of `holder` (see `announceHolder`). */
  alive: { close(): Promise<void> } | undefined;
  /** The state file's text (or ABSENT) as this store last read or wrote it under the lock; undefined until it did. */
  known?: string | typeof ABSENT;
  /** Set once a save found that another sync saved while this one had lost the lock: every later save is refused. */
  refused?: TributaryError;
}

/** `HeldFileLock.known` of a connection without a state file. */
const ABSENT: unique symbol = Symbol('absent');

const newHolder = (): LockHolder => ({ pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomUUID() });

async function releaseLock(held: HeldFileLock): Promise<void> {
  // Only our own lock: one taken over from us (we were presumed dead) is not ours to remove.
  if ((await readHolder(held.path))?.token === held.holder.token) await unlink(held.path).catch(() => undefined);
  await held.alive?.close();
}

/**
 * Takes the lock `held` lost (deleted, or taken over) again if nobody holds it, as a new
 * holder: a token that was once taken over must never name a lock again (see
 * lockConnection). False when the lock file exists (another sync holds it).
 */
async function retakeLock(held: HeldFileLock): Promise<boolean> {
  const me = newHolder();
  const alive = await announceHolder(me);
  let created = false;
  try {
    created = await createHolderFile(held.path, held.path, me);
  } catch (error) {
    throw ioError('lock the state of', held.path, error);
  } finally {
    if (!created) await alive?.close();
  }
  if (!created) return false;
  await held.alive?.close();
  held.holder = me;
  held.alive = alive;
  return true;
}

/**
 * Whether two state file texts (or ABSENT) hold the same STATE messages: the same text, or
 * envelopes differing only in `updatedAt` (another sync took the lock and saved nothing new).
 */
function sameState(current: string | typeof ABSENT, known: string | typeof ABSENT): boolean {
  if (current === known) return true;
  if (current === ABSENT || known === ABSENT) return false;
  const messages = (text: string): string | undefined => {
    try {
      const state = (JSON.parse(text) as { state?: unknown } | null)?.state;
      return state === undefined ? undefined : JSON.stringify(state);
    } catch {
      return undefined;
    }
  };
  const stored = messages(current);
  return stored !== undefined && stored === messages(known);
}

/** The fatal refusal of a save whose sync's lock passed to another sync. */
function lostLock(connection: string, path: string, reason: string): TributaryError {
  return new TributaryError('fatal', {
    userMessage:
      `Connection ${JSON.stringify(connection)}: ${reason}. This sync stops without saving its state to ${path}, ` +
      `so that the other sync's progress is kept; the next sync resumes from the stored state.`,
  });
}

/** lockConnection's attempts, as `me`. */
async function takeLock(connection: string, path: string, me: LockHolder): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    let created: boolean;
    try {
      created = await createHolderFile(path, path, me);
    } catch (error) {
      throw ioError('lock the state of', path, error);
    }
    if (created) return;
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
