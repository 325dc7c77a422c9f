/**
 * The file store's stale-lock takeover under a forced interleaving: contender B reads the
 * stale lock, then stalls while contender A takes the lock over completely; B then goes on
 * with what it read. Exactly one of them may end up holding the lock.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { createFileStateStore } from '@tributary/core';

/** When set, the next read of a file named like `suffix` is held (after reading) until `release`. */
const gate: { suffix?: string; reached?: () => void; release?: Promise<void> } = {};

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const readFile = (async (...args: Parameters<typeof actual.readFile>) => {
    const content = await actual.readFile(...args);
    if (gate.suffix !== undefined && String(args[0]).endsWith(gate.suffix)) {
      const release = gate.release;
      gate.suffix = undefined;
      gate.reached?.();
      await release;
    }
    return content;
  }) as typeof actual.readFile;
  return { ...actual, readFile, default: { ...actual, readFile } };
});

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

it('a contender that read the stale lock before another took it over does not take it too', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-lock-interleave-'));
  dirs.push(dir);
  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => dead.once('exit', r));
  await writeFile(join(dir, 'race.lock'), JSON.stringify({ pid: dead.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', token: 'dead' }));

  let open!: () => void;
  const reached = new Promise<void>((resolve) => (gate.reached = resolve));
  Object.assign(gate, { suffix: 'race.lock', release: new Promise<void>((resolve) => (open = resolve)) });

  const late = createFileStateStore(dir).lock!('race').then(
    () => 'won',
    (error: unknown) => `lost ${(error as Error).message}`,
  );
  await reached; // B holds what it read: the dead holder.
  const first = await createFileStateStore(dir).lock!('race').then(
    () => 'won',
    (error: unknown) => `lost ${(error as Error).message}`,
  );
  expect(first).toBe('won');
  open();
  expect(await late).toMatch(/^lost Connection "race" is already being synced by process \d+ on /);
});
