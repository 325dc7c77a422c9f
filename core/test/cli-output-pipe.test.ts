/**
 * The CLI's stdout when its reader is slow or goes away, as in `tributary read … | head` or
 * `… | tributary write …`. Node ignores SIGPIPE, so a write to a pipe whose reader exited
 * fails with EPIPE: unhandled, it crashed the CLI with a stack trace. And stdout to a pipe
 * is asynchronous: without waiting for it, `read` held its whole output in memory.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-cli-pipe-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the CLI in `dir`; `onStdout` gets its stdout stream (to read from, or to close). */
function run(args: string[], onStdout: (stdout: NodeJS.ReadableStream & { destroy(): void }) => void): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  onStdout(child.stdout);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

it('a read whose reader goes away after one line stops, exits 141 as SIGPIPE would, and prints no stack trace', async () => {
  // ~60 MB of output: far more than a pipe holds, so the read cannot finish before the reader is gone.
  await writeFile(join(dir, 'big.json'), JSON.stringify({ seed: 1, counts: { companies: 1000, contacts: 200_000, deals: 0, activities: 0 } }));
  let first = '';
  const result = await run(['read', 'sample', '--config', 'big.json'], (stdout) => {
    stdout.on('data', (chunk: Buffer) => {
      if (first.includes('\n')) return;
      first += chunk.toString();
      if (first.includes('\n')) stdout.destroy(); // `head -1`
    });
  });
  expect(JSON.parse(first.split('\n')[0]!)).toMatchObject({ type: expect.any(String) });
  expect(result.stderr).not.toMatch(/EPIPE|Unhandled|at /);
  expect(result.code).toBe(141);
});

it('a sync whose stdout reader goes away goes on: it completes and stores every record', async () => {
  await writeFile(
    join(dir, 'sync.yaml'),
    ['connection: pipe', 'source: { connector: sample, config: { seed: 2, counts: { companies: 500, contacts: 3000, deals: 0, activities: 0 } } }', 'destination: { connector: local, config: { directory: ./out } }', 'streams: [{ name: contacts, sync_mode: incremental, destination_sync_mode: append }]'].join('\n'),
  );
  const result = await run(['sync', 'sync.yaml'], (stdout) => stdout.destroy());
  expect(result.stderr).not.toMatch(/EPIPE|Unhandled/);
  expect(result.code).toBe(0);
  const lines = (await readFile(join(dir, 'out', 'contacts.jsonl'), 'utf8')).split('\n').filter((l) => l.length > 0);
  expect(lines).toHaveLength(3000);
});
