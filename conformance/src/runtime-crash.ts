import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '@tributary/core';

export interface RuntimeCrashOptions {
  /** Names the suite, e.g. `sample → local`. */
  name: string;
  /** Writes a sync file into `workDir` and returns its path. State and output must live under `workDir`. */
  syncFile(workDir: string): Promise<string> | string;
  /** Every key each stream must end with, exactly once (e.g. computed by reading the source directly). */
  expectedKeys(): Promise<Record<string, string[]>>;
  /** Keys the destination shows now, per stream, repeats included. */
  readBack(workDir: string): Promise<Record<string, string[]>>;
  /** SIGKILLs before the sync may finish (default 6). */
  kills?: number;
  /** Seeds the kill delays so a failure can be replayed (default: random, printed on failure). */
  seed?: number;
  /**
   * Each SIGKILL lands a random [minDelayMs, maxDelayMs] (default 0–400 ms) after the sync
   * printed its first committed STATE, so it always hits a sync that is moving data — never
   * one still starting up — and earlier kills leave work for later ones.
   */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Path of the `tributary` executable (default: the nearest node_modules/.bin/tributary). */
  cli?: string;
  timeoutMs?: number;
}

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * The runtime case of the conformance suite: a real `tributary sync` child process is
 * SIGKILLed at random points, restarted each time, then allowed to finish. The destination
 * must then hold every expected key exactly once — zero lost, zero duplicated — and a
 * SIGTERM must stop the sync gracefully with a state from which the next run completes.
 */
export function runtimeCrashConformance(options: RuntimeCrashOptions): void {
  const cli = options.cli ?? findCli();
  const kills = options.kills ?? 6;
  const timeout = options.timeoutMs ?? 300_000;

  describe(`runtime conformance: ${options.name}`, () => {
    it(
      `SIGKILL at ${kills} random points, resume each time: zero lost, zero duplicated keyed rows`,
      async () => {
        const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
        const random = seededRandom(seed);
        const minDelay = options.minDelayMs ?? 0;
        const maxDelay = options.maxDelayMs ?? 400;
        const workDir = await mkdtemp(join(tmpdir(), 'tributary-crash-'));
        try {
          const file = await options.syncFile(workDir);
          let killed = 0;
          let completedEarly = false;
          for (let i = 0; i < kills; i++) {
            const delay = Math.round(minDelay + random() * (maxDelay - minDelay));
            const outcome = await runSync(cli, file, workDir, { afterStdout: '"type":"STATE"', delayMs: delay, signal: 'SIGKILL' });
            if (outcome.signal === 'SIGKILL') {
              killed++;
              continue;
            }
            expect(outcome.code, `sync failed (seed ${seed}):\n${outcome.stderr}`).toBe(0);
            completedEarly = true;
            break;
          }
          if (!completedEarly) {
            const last = await runSync(cli, file, workDir, {});
            expect(last.code, `final sync failed (seed ${seed}):\n${last.stderr}`).toBe(0);
          }
          // A case that never interrupted anything proves nothing.
          expect(killed, `no kill landed mid-sync (seed ${seed}); make the dataset larger`).toBeGreaterThanOrEqual(Math.min(2, kills));
          await expectExactlyOnce(await options.expectedKeys(), await options.readBack(workDir), seed);
        } finally {
          await rm(workDir, { recursive: true, force: true });
        }
      },
      timeout,
    );

    it(
      'SIGTERM stops reading, commits, exits 143 with a resumable state; the rerun completes exactly once',
      async () => {
        const workDir = await mkdtemp(join(tmpdir(), 'tributary-term-'));
        try {
          const file = await options.syncFile(workDir);
          // Signal once the sync has committed something, so the stop lands mid-sync.
          const stopped = await runSync(cli, file, workDir, { afterStdout: '"type":"STATE"', delayMs: 0, signal: 'SIGTERM' });
          expect(stopped.code, `expected a graceful stop mid-sync (make the dataset larger if it finished first):\n${stopped.stderr}`).toBe(143);
          expect(stopped.stderr).toMatch(/SIGTERM: stopping/);
          const rerun = await runSync(cli, file, workDir, {});
          expect(rerun.code, rerun.stderr).toBe(0);
          await expectExactlyOnce(await options.expectedKeys(), await options.readBack(workDir), 0);
        } finally {
          await rm(workDir, { recursive: true, force: true });
        }
      },
      timeout,
    );
  });
}

async function expectExactlyOnce(expected: Record<string, string[]>, actual: Record<string, string[]>, seed: number): Promise<void> {
  for (const [stream, keys] of Object.entries(expected)) {
    const seen = new Map<string, number>();
    for (const key of actual[stream] ?? []) seen.set(key, (seen.get(key) ?? 0) + 1);
    const duplicated = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
    const missing = keys.filter((k) => !seen.has(k));
    const wanted = new Set(keys);
    const unexpected = [...seen.keys()].filter((k) => !wanted.has(k));
    expect({ stream, seed, missing: missing.slice(0, 5), missingCount: missing.length, duplicated: duplicated.slice(0, 5), duplicatedCount: duplicated.length, unexpected: unexpected.slice(0, 5) }).toEqual({
      stream,
      seed,
      missing: [],
      missingCount: 0,
      duplicated: [],
      duplicatedCount: 0,
      unexpected: [],
    });
  }
}

function runSync(
  cli: string,
  file: string,
  cwd: string,
  /** Send `signal` `delayMs` after stdout first shows `afterStdout`; no signal when `delayMs` is absent. */
  kill: { afterStdout?: string; delayMs?: number; signal?: NodeJS.Signals },
): Promise<RunOutcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cli, 'sync', file, '--json'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (timer === undefined && kill.delayMs !== undefined) timer = setTimeout(() => child.kill(kill.signal ?? 'SIGKILL'), kill.delayMs);
    };
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      if (kill.afterStdout !== undefined && chunk.toString().includes(kill.afterStdout)) arm();
    });
    if (kill.afterStdout === undefined) arm();
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolvePromise({ code, signal, stderr });
    });
  });
}

/** The nearest `node_modules/.bin/tributary`, from the working directory up. */
export function findCli(from: string = process.cwd()): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', '.bin', 'tributary');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error('Cannot find the tributary CLI (node_modules/.bin/tributary); install @tributary/core');
  }
}

