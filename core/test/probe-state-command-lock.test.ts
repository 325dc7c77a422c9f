/**
 * `tributary state reset|set` change a connection's committed state. While a sync of the
 * connection runs, that sync holds the full state in memory and saves it whole at its next
 * checkpoint: a reset (or set) made meanwhile is silently undone, and the next sync resumes
 * from the position the user meant to drop. So these commands take the connection's sync
 * lock, like a sync, and are refused while a sync holds it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { checkpoint, createFileStateStore, record, runSync, type SourceMessage, type StateStore } from '../src/index.js';
import { main } from '../src/cli/main.js';
import { discardingDestination, itemsSource } from './support/sync-fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-state-lock-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function cli(args: string[], input?: string): Promise<{ code: number; stderr: string }> {
  const err: string[] = [];
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const originalStdin = Object.getOwnPropertyDescriptor(process, 'stdin');
  if (input !== undefined) {
    const { Readable } = await import('node:stream');
    Object.defineProperty(process, 'stdin', { value: Readable.from([Buffer.from(input)]), configurable: true });
  }
  try {
    return { code: await main(args), stderr: err.join('') };
  } finally {
    errSpy.mockRestore();
    outSpy.mockRestore();
    if (originalStdin) Object.defineProperty(process, 'stdin', originalStdin);
  }
}

/** Yields page 1 and its checkpoint, waits for `gate`, then page 2 and its checkpoint. */
function gatedSource(gate: Promise<void>) {
  return itemsSource('gated', async function* (): AsyncGenerator<SourceMessage> {
    yield record('items', { id: 1 });
    yield checkpoint('items', { page: 1 });
    await gate;
    yield record('items', { id: 2 });
    yield checkpoint('items', { page: 2 });
  });
}

const destination = discardingDestination();

async function withRunningSync(body: (stateDir: string) => Promise<void>): Promise<StateStore> {
  const stateDir = join(dir, 'state');
  const store = createFileStateStore(stateDir);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let firstSaved!: () => void;
  const saved = new Promise<void>((resolve) => (firstSaved = resolve));
  const watched: StateStore = {
    ...store,
    async save(connection, state) {
      await store.save(connection, state);
      firstSaved();
    },
  };
  const sync = runSync({
    connection: 'crm',
    source: gatedSource(gate),
    sourceConfig: {},
    destination,
    destinationConfig: {},
    catalog: { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] },
    stateStore: watched,
    batching: { commitIntervalMs: 0 },
  });
  await saved;
  try {
    await body(stateDir);
  } finally {
    open();
    expect((await sync).outcome).toBe('completed');
  }
  return store;
}

describe('tributary state reset|set while the connection is syncing', () => {
  it('reset is refused instead of being undone by the sync’s next checkpoint', async () => {
    let reset!: { code: number; stderr: string };
    const store = await withRunningSync(async (stateDir) => {
      reset = await cli(['state', 'reset', 'crm', '--store', stateDir]);
    });
    // Told the truth: nothing was reset, and why.
    expect(reset.code).toBe(2);
    expect(reset.stderr).toContain('already being synced');
    expect(await store.load('crm')).toEqual({ streams: { items: { page: 2 } } });
    await store.close();
  });

  it('set is refused instead of being overwritten by the sync’s next checkpoint', async () => {
    let set!: { code: number; stderr: string };
    const wanted = [{ type: 'STREAM', stream: { stream_descriptor: { name: 'items' }, stream_state: { page: 0 } } }];
    const store = await withRunningSync(async (stateDir) => {
      set = await cli(['state', 'set', 'crm', '--store', stateDir], JSON.stringify(wanted));
    });
    expect(set.code).toBe(2);
    expect(set.stderr).toContain('already being synced');
    expect(await store.load('crm')).toEqual({ streams: { items: { page: 2 } } });
    await store.close();
  });

  it('reset and set still work when no sync runs, and leave the lock free', async () => {
    const stateDir = join(dir, 'state');
    const store = createFileStateStore(stateDir);
    await store.save('crm', { streams: { items: { page: 5 } } });
    expect((await cli(['state', 'set', 'crm', '--store', stateDir], JSON.stringify([{ type: 'STREAM', stream: { stream_descriptor: { name: 'items' }, stream_state: { page: 1 } } }]))).code).toBe(0);
    expect(await store.load('crm')).toEqual({ streams: { items: { page: 1 } } });
    expect((await cli(['state', 'reset', 'crm', '--store', stateDir])).code).toBe(0);
    expect(await store.load('crm')).toBeUndefined();
    const lock = await store.lock!('crm');
    await lock.release();
    await store.close();
  });
});
