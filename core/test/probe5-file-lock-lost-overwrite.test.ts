/**
 * The file store's lock can pass to another sync while its holder still runs: the holder is
 * taken for dead (a holder of this host name in another network namespace is checked by pid,
 * and its pid does not run in the taker's PID namespace), or someone deletes the lock file
 * as the "already being synced" message advises when the holder seems gone. Sync B then ran,
 * saved further progress and finished, and the live sync A's next save wrote A's own, older
 * state over B's: the stored state moved backwards. Now A's save sees its lock is no longer
 * its own, takes it again if it is free, and refuses (fatal, writing nothing) when the state
 * changed since A last read or saved it.
 *
 * Real processes and files: B runs in this process (a second store), or in a child process in
 * new PID and network namespaces (`unshare`), where the takeover happens by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStateStore, type ConnectionLock, type SyncState } from '@tributary/core';

const CORE = fileURLToPath(new URL('..', import.meta.url));
const at = (after: number): SyncState => ({ streams: { items: { after } } });

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe5-file-lock-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function refusal(task: Promise<unknown>): Promise<unknown> {
  return task.then(
    () => undefined,
    (error: unknown) => error,
  );
}

/** Whether this machine lets us make new PID and network namespaces (root on Linux, usually). */
async function canUnshare(): Promise<boolean> {
  if (process.platform !== 'linux') return false;
  const child = spawn('unshare', ['--net', '--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
  return new Promise((resolve) => {
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

/**
 * Sync B as a process in new PID and network namespaces (same host name): takes the lock
 * (taking over `dir`'s lock when its holder looks dead from there), loads, saves `state`,
 * releases. Resolves with what B printed.
 */
async function syncInOtherNamespaces(connection: string, state: SyncState): Promise<string> {
  const script = `
    import { createFileStateStore } from '@tributary/core';
    const store = createFileStateStore(process.env.PROBE5_DIR);
    const lock = await store.lock(process.env.PROBE5_CONNECTION);
    const loaded = await store.load(process.env.PROBE5_CONNECTION);
    await store.save(process.env.PROBE5_CONNECTION, JSON.parse(process.env.PROBE5_STATE));
    await lock.release();
    await store.close();
    process.stdout.write('saved after loading ' + JSON.stringify(loaded) + '\\n');`;
  const child = spawn('unshare', ['--net', '--pid', '--fork', '--mount-proc', process.execPath, '--conditions=tributary-source', '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: CORE,
    env: { ...process.env, PROBE5_DIR: dir, PROBE5_CONNECTION: connection, PROBE5_STATE: JSON.stringify(state) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  expect({ code, out }).toMatchObject({ code: 0 });
  return out;
}

describe('file store: a sync whose lock passed to another sync never writes over that sync\'s state', () => {
  it('refuses (fatal) the save of live sync A after its lock file was deleted and sync B locked, saved further progress and finished', async () => {
    const a = createFileStateStore(dir);
    const b = createFileStateStore(dir);
    const lockA = await a.lock!('c');
    let lockB: ConnectionLock | undefined;
    try {
      expect(await a.load('c')).toBeUndefined();
      await a.save('c', at(1));
      // "If no such sync runs any more, delete <lock>": someone does, while A still runs.
      await unlink(join(dir, 'c.lock'));
      lockB = await b.lock!('c');
      expect(await b.load('c')).toEqual(at(1));
      await b.save('c', at(5));
      await lockB.release();
      lockB = undefined;

      const error = await refusal(a.save('c', at(2)));
      expect(error).toMatchObject({ kind: 'fatal' });
      expect((error as Error).message).toMatch(/another sync of this connection ran while this one had lost its lock/);
      expect(await b.load('c')).toEqual(at(5));
      expect(await refusal(a.save('c', at(3)))).toMatchObject({ kind: 'fatal' });
      expect(await b.load('c')).toEqual(at(5));
    } finally {
      await lockB?.release();
      await lockA.release();
      await a.close();
      await b.close();
    }
    // The next sync resumes from B's state.
    const next = createFileStateStore(dir);
    const lockNext = await next.lock!('c');
    expect(await next.load('c')).toEqual(at(5));
    await next.save('c', at(6));
    await lockNext.release();
    await next.close();
  });

  it('refuses the save of live sync A while the sync that took its lock still holds it', async () => {
    const a = createFileStateStore(dir);
    const b = createFileStateStore(dir);
    const lockA = await a.lock!('c');
    try {
      await a.load('c');
      await a.save('c', at(1));
      await unlink(join(dir, 'c.lock'));
      const lockB = await b.lock!('c');
      try {
        expect(await refusal(a.save('c', at(2)))).toMatchObject({ kind: 'fatal' });
        expect(await b.load('c')).toEqual(at(1));
      } finally {
        await lockB.release();
      }
    } finally {
      await lockA.release();
      await a.close();
      await b.close();
    }
  });

  it('saves normally when its lock file vanished but nobody changed the state meanwhile', async () => {
    const a = createFileStateStore(dir);
    const lockA = await a.lock!('c');
    try {
      expect(await a.load('c')).toBeUndefined();
      await unlink(join(dir, 'c.lock'));
      await a.save('c', at(1));
      await unlink(join(dir, 'c.lock'));
      // Another sync took the lock and gave it back, saving the very state A had.
      const b = createFileStateStore(dir);
      const lockB = await b.lock!('c');
      await b.save('c', (await b.load('c'))!);
      await lockB.release();
      await b.close();
      await a.save('c', at(2));
      expect(await createFileStateStore(dir).load('c')).toEqual(at(2));
      // A holds the lock again: another sync is refused.
      await expect(createFileStateStore(dir).lock!('c')).rejects.toMatchObject({ kind: 'config' });
    } finally {
      await lockA.release();
      await a.close();
    }
  });

  it('refuses the save of live sync A after a sync in other PID and network namespaces took A\'s lock over as stale and saved further progress', async (context) => {
    if (!(await canUnshare())) context.skip();
    const a = createFileStateStore(dir);
    const lockA = await a.lock!('c');
    try {
      expect(await a.load('c')).toBeUndefined();
      await a.save('c', at(1));
      // From B's namespaces A's pid does not run and A's liveness socket is not reachable: A looks dead.
      expect(await syncInOtherNamespaces('c', at(5))).toContain('saved after loading {"streams":{"items":{"after":1}}}');
      const error = await refusal(a.save('c', at(2)));
      expect(error).toMatchObject({ kind: 'fatal' });
      expect(await a.load('c')).toEqual(at(5));
    } finally {
      await lockA.release();
      await a.close();
    }
  });
});
