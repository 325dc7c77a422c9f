import { spawn } from 'node:child_process';
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
