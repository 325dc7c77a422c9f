import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { TributaryError } from '@tributary/core';

/** A directory's session lock, held (see `lockDirectory`). */
export interface DirectoryLock {
  release(): Promise<void>;
}

/**
 * The locks of this process, by socket name, with the session that holds each. A session of
 * this process dropped without `close()` (what a crash leaves in a test, and what the
 * conformance suite's "dropped without close" case does) hands its lock to the next session
 * opened on the directory here: a process runs its sessions of one directory one after the
 * other, and the dropped one never writes again.
 */
const heldHere = new Map<string, { server: Server; holder: symbol }>();

/**
 * Takes the lock of `directory` (an existing directory) for one session, or throws a
 * `config` error when a session of another process holds it. Two sessions appending to one
 * directory corrupt it: each cuts the other's unacknowledged lines back on open, records
 * lengths that count the other's bytes, and replaces the other's manifest entries.
 *
 * The lock is a Unix socket in Linux's abstract namespace named after the directory's device
 * and inode (so every path to it names one lock): the kernel frees it when its process dies,
 * so a sync killed with SIGKILL leaves nothing to clean up or take over. It covers the
 * processes of one host and network namespace; elsewhere than Linux there is no lock.
 */
export async function lockDirectory(directory: string): Promise<DirectoryLock> {
  if (process.platform !== 'linux') return { async release() {} };
  const { dev, ino } = await stat(directory);
  const name = `\0tributary-local-files:${dev}:${ino}`;
  const holder = Symbol(directory);
  const here = heldHere.get(name);
  if (here) here.holder = holder;
  else heldHere.set(name, { server: await listen(name, directory), holder });
  return {
    async release() {
      const held = heldHere.get(name);
      // A lock handed on to a later session of this process is that session's to release.
      if (held === undefined || held.holder !== holder) return;
      heldHere.delete(name);
      await new Promise<void>((resolve) => held.server.close(() => resolve()));
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
