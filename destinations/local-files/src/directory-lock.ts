import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { TributaryError } from '@tributary/core';

/** A directory's session lock, held by one session (see `openLocked`). */
export interface DirectoryLock {
  /**
   * Runs one call of the session (a write, a commit). Refused with a `config` error, before
   * `operation` starts, once a later session of this process took the directory over; while
   * it runs, a session opened on the directory here is refused.
   */
  run<T>(operation: () => Promise<T>): Promise<T>;
  /** Whether a later session of this process took the directory over: this one must not touch it again. */
  readonly superseded: boolean;
  /** The error the calls of a superseded session fail with. */
  supersededError(): TributaryError;
  release(): Promise<void>;
}

/** One session's hold on a lock of this process. */
interface Lease {
  /** Calls of the session running now (its open included). */
  busy: number;
  superseded: boolean;
}

/**
 * The locks of this process, by socket name, with the session that holds each. The socket
 * keeps other processes out; within this process the holder decides:
 * - a session opened while the holder has a call running (its open, a write, a commit) is
 *   refused: two sessions appending to one directory corrupt it (see `openLocked`);
 * - a session opened while the holder is idle takes the directory over, and the holder is
 *   superseded: each of its later calls fails before it touches a file. A session dropped
 *   without `close()` (what a crash leaves in a test, and what the conformance suite's
 *   "dropped without close" case does) looks like an idle one, so it is handed on this way;
 *   a live sync that is superseded stops with a `config` error instead of writing on.
 */
const heldHere = new Map<string, { listening: Promise<Server>; holder: Lease }>();

/**
 * Takes the lock of `directory` (an existing directory) for the session `open` opens, and
 * returns that session; releases the lock again when `open` fails. Throws a `config` error
 * when a session of another process holds the lock, or a session of this process is in the
 * middle of a call. Two sessions appending to one directory corrupt it: each cuts the
 * other's unacknowledged lines back on open, records lengths that count the other's bytes,
 * and replaces the other's manifest entries.
 *
 * Across processes the lock is a Unix socket in Linux's abstract namespace named after the
 * directory's device and inode (so every path to it names one lock): the kernel frees it
 * when its process dies, so a sync killed with SIGKILL leaves nothing to clean up or take
 * over. It covers the processes of one host and network namespace; elsewhere than Linux
 * only the sessions of one process are kept apart.
 */
export async function openLocked<T>(directory: string, open: (lock: DirectoryLock) => Promise<T>): Promise<T> {
  const { dev, ino } = await stat(directory);
  const name = `\0tributary-local-files:${dev}:${ino}`;
  // From here to `busy` being counted nothing awaits: a session opened meanwhile sees this one busy.
  const lease: Lease = { busy: 1, superseded: false };
  const here = heldHere.get(name);
  let listening: Promise<Server>;
  if (here) {
    if (here.holder.busy > 0) {
      throw new TributaryError('config', {
        userMessage: `Directory ${directory} is being written by another session of this process (a second sync or tributary write into it): run one sync per directory at a time.`,
      });
    }
    here.holder.superseded = true;
    here.holder = lease;
    listening = here.listening;
  } else {
    listening = process.platform === 'linux' ? listen(name, directory) : Promise.resolve(createServer());
    const entry = { listening, holder: lease };
    heldHere.set(name, entry);
    // Not left behind as this process's lock when another process holds it.
    listening.catch(() => {
      if (heldHere.get(name) === entry) heldHere.delete(name);
    });
  }
  const lock = lockOf(name, directory, lease);
  try {
    await listening;
    return await open(lock);
  } catch (error) {
    await lock.release();
    throw error;
  } finally {
    lease.busy--;
  }
}

function lockOf(name: string, directory: string, lease: Lease): DirectoryLock {
  const supersededError = (): TributaryError =>
    new TributaryError('config', {
      userMessage: `Directory ${directory} was opened by another session of this process (a second sync or tributary write into it) while this one was between calls; this session stopped writing: what it committed is kept, the rest is replayed by its next sync. Run one sync per directory at a time.`,
    });
  return {
    async run(operation) {
      if (lease.superseded) throw supersededError();
      lease.busy++;
      try {
        return await operation();
      } finally {
        lease.busy--;
      }
    },
    get superseded() {
      return lease.superseded;
    },
    supersededError,
    async release() {
      const held = heldHere.get(name);
      // A lock taken over by a later session of this process is that session's to release.
      if (held === undefined || held.holder !== lease) return;
      heldHere.delete(name);
      const server = await held.listening.catch(() => undefined);
      if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listen(name: string, directory: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE') {
        reject(new TributaryError('fatal', { userMessage: `Could not lock directory ${directory}`, internalMessage: String(error), cause: error }));
        return;
      }
      reject(
        new TributaryError('config', {
          userMessage: `Directory ${directory} is being written by another process (a sync or a tributary write into it): run one sync per directory at a time. The lock is freed when that process ends.`,
        }),
      );
    });
    server.listen(name, () => {
      // Held for the session, but never what keeps the process running.
      server.unref();
      resolve(server);
    });
  });
}
