import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { findCli } from './runtime-crash.js';

/**
 * Small helpers for connector tests that start real peers and run the real CLI.
 */

/** A TCP port on 127.0.0.1 that was free a moment ago (for a peer the test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the installed `tributary` CLI (the nearest `node_modules/.bin/tributary`, as a user
 * runs it: connector packages load from their built `dist/`) in `cwd`, stdin closed, and
 * collects its output.
 */
export function runCli(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [findCli(), ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** One system call of an `strace -f -y` trace: its name, the paths it names (quoted strings, and fd paths of fsyncs) and whether it succeeded. */
export interface TracedCall {
  name: string;
  paths: string[];
  ok: boolean;
  /** An `open`/`openat` with `O_CREAT`. */
  creates: boolean;
}

/** Whether `strace` can trace here (installed, and ptrace allowed). Tests of system-call order skip without it. */
export function straceRuns(): boolean {
  return spawnSync('strace', ['-qq', '-e', 'trace=fsync', 'true']).status === 0;
}

/**
 * The calls of an `strace -f -y` trace in the order they started: a call split across
 * threads (`<unfinished ...>` then `<... resumed>`) is joined and placed where it began,
 * which is the order that matters for durability (an fsync that started before a write of
 * the manifest did not make a later entry durable).
 */
export function parseStraceCalls(text: string): TracedCall[] {
  const started: Array<{ at: number; text: string }> = [];
  const unfinished = new Map<string, { at: number; head: string }>();
  text.split('\n').forEach((line, at) => {
    const split = /^(\d+)\s+(.*) <unfinished \.\.\.>$/.exec(line);
    if (split) return void unfinished.set(split[1]!, { at, head: split[2]! });
    const resumed = /^(\d+)\s+<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (resumed) {
      const head = unfinished.get(resumed[1]!);
      if (head) started.push({ at: head.at, text: head.head + resumed[2]! });
      unfinished.delete(resumed[1]!);
      return;
    }
    const whole = /^\d+\s+(.*)$/.exec(line);
    if (whole) started.push({ at, text: whole[1]! });
  });
  return started
    .sort((a, b) => a.at - b.at)
    .flatMap(({ text: call }) => {
      const parsed = /^(\w+)\((.*)\)\s+=\s+(.*)$/.exec(call);
      if (!parsed) return [];
      const [, name, args, result] = parsed as unknown as [string, string, string, string];
      const strings = [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
      const fdPaths = name === 'fsync' || name === 'fdatasync' ? [...args.matchAll(/<([^>]*)>/g)].map((m) => m[1]!) : [];
      return [{ name, paths: [...strings, ...fdPaths], ok: !result.startsWith('-1'), creates: args.includes('O_CREAT') }];
    });
}

/**
 * The seeds a randomized test runs: `spec` (an environment variable such as PROBE10_SEEDS) as
 * a comma-separated list of seeds and ranges (`3,7,9`, `1-40`, `1-5,9`), or `defaults` when it
 * is unset or empty.
 */
export function seedList(spec: string | undefined, defaults: readonly number[]): number[] {
  if (spec === undefined || spec === '') return [...defaults];
  return spec.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    return to === undefined ? [from!] : Array.from({ length: to - from! + 1 }, (_, i) => from! + i);
  });
}
