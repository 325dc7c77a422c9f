/**
 * The file store's connection lock names its holder's pid, but pids are per PID namespace:
 * a sync run as a container's entrypoint is PID 1 (or another fixed pid) in every run. A sync
 * killed there (SIGKILL, OOM) left a lock naming PID 1, which the next run — PID 1 itself,
 * same host name (StatefulSet pod, host network) — took for a live holder: it refused that
 * sync and every later one, until someone deleted the lock file. Seen with real processes:
 * `unshare -p -f --mount-proc node bin/tributary.js sync s.yaml`, SIGKILL, run again → exit 2
 * "already being synced by process 1". Conversely a live sync of another PID namespace
 * sharing the state directory was taken for dead when its pid did not run here.
 *
 * Now a holder of this network namespace is alive exactly while its liveness socket answers.
 * Both cases are reproduced here from a real lock file written by a real child process, with
 * its pid rewritten to what the other PID namespace would make of it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStateStore } from '../src/index.js';

const CONTENDER = fileURLToPath(new URL('./support/lock-contender.ts', import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-lock-liveness-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A child process that takes the lock of `connection` in `dir` and keeps it until killed or its stdin closes. */
async function childHoldingLock(connection: string): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', CONTENDER, dir, connection], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let started = false;
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!started && out.includes('ready\n')) {
        started = true;
        child.stdin.write('go\n');
      }
      if (/\n(won|lost[^\n]*)\n/.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`contender exited (${code}) before taking the lock: ${out} ${err}`)));
  });
  expect(out).toContain('\nwon\n');
  return child;
}

async function kill(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Rewrites the pid named in the lock file, keeping everything else its holder wrote. */
async function rewritePid(path: string, pid: number): Promise<void> {
  const holder = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...holder, pid }));
}

describe.runIf(process.platform === 'linux')('file store lock: a holder is alive while its liveness socket answers, whatever its pid means here', () => {
  it('takes over the lock of a killed sync that had the pid this process has now (a container entrypoint run again)', async () => {
    const child = await childHoldingLock('entrypoint');
    await kill(child);
    const path = join(dir, 'entrypoint.lock');
    await rewritePid(path, process.pid);
    const store = createFileStateStore(dir);
    const lock = await store.lock!('entrypoint');
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
    // Ours now: a second lock in this process is refused until it is released.
    await expect(createFileStateStore(dir).lock!('entrypoint')).rejects.toMatchObject({ kind: 'config' });
    await lock.release();
    await store.close();
  });

  it('refuses the lock of a live sync whose pid does not run here (another PID namespace)', async () => {
    const child = await childHoldingLock('other-namespace');
    try {
      const dead = spawn(process.execPath, ['-e', '']);
      await new Promise((resolve) => dead.once('exit', resolve));
      await rewritePid(join(dir, 'other-namespace.lock'), dead.pid!);
      await expect(createFileStateStore(dir).lock!('other-namespace')).rejects.toMatchObject({
        kind: 'config',
        userMessage: expect.stringContaining(`"other-namespace" is already being synced by process ${dead.pid}`),
      });
    } finally {
      await kill(child);
    }
    // Once it is gone, its lock is taken over.
    const lock = await createFileStateStore(dir).lock!('other-namespace');
    await lock.release();
  });
});
