import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TributaryError,
  connectionFileName,
  createFileStateStore,
  createPostgresStateStore,
  openStateStore,
  toStateMessages,
  type StateStore,
  type SyncState,
} from '@tributary/core';
import { freePort, startPostgres, type EmbeddedPostgresServer } from './support/embedded-postgres.js';
import { growingState } from './support/growing-state.js';

/** A fresh, empty store, plus what the contract cases need to poke at it from outside. */
interface Fresh {
  store: StateStore;
  /** Another store instance on the same location (as a later process would open it). */
  reopen(): Promise<StateStore>;
  /** Makes the stored state of `connection` invalid, behind the store's back. */
  corrupt(connection: string): Promise<void>;
}

interface Harness {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<Fresh>;
  secret?: () => string;
}

const opened: StateStore[] = [];
const track = (store: StateStore): StateStore => (opened.push(store), store);
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

let tempRoot = '';
const fileHarness: Harness = {
  name: 'file',
  async setup() {
    tempRoot = await mkdtemp(join(tmpdir(), 'tributary-state-'));
  },
  async teardown() {
    await rm(tempRoot, { recursive: true, force: true });
  },
  async fresh() {
    const dir = await mkdtemp(join(tempRoot, 'store-'));
    const stateDir = join(dir, 'state');
    return {
      store: track(createFileStateStore(stateDir)),
      reopen: async () => track(createFileStateStore(stateDir)),
      corrupt: (connection) => writeFile(join(stateDir, connectionFileName(connection)), '{"version":1,"connection":"trunc'),
    };
  },
};

let server: EmbeddedPostgresServer | undefined;
let tableCounter = 0;
const pgServer = (): EmbeddedPostgresServer => {
  if (!server) throw new Error('postgres not started');
  return server;
};
async function withClient<T>(task: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgServer().url });
  await client.connect();
  try {
    return await task(client);
  } finally {
    await client.end();
  }
}
// One server for the whole file; every postgres store gets its own table.
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

const postgresHarness: Harness = {
  name: 'postgres',
  setup: async () => undefined,
  teardown: async () => undefined,
  async fresh() {
    const table = `state_${++tableCounter}`;
    const url = `${pgServer().url}?table=${table}`;
    return {
      store: track(await openStateStore(url)),
      reopen: async () => track(await openStateStore(url)),
      corrupt: async (connection) => {
        await withClient((c) => c.query(`UPDATE ${table} SET state = '[{"type":"LEGACY","data":{"x":1}}]'::jsonb WHERE connection = $1`, [connection]));
      },
    };
  },
  secret: () => pgServer().password,
};

const streamState: SyncState = {
  streams: {
    contacts: { cursor: '2024-05-01T00:00:00Z' },
    'crm.deals': { cursor: 42, page: { token: 'abc', nested: [1, null, true] } },
  },
};
const globalState: SyncState = {
  shared: { lsn: '0/16B3748', txid: 731 },
  streams: { 'public.users': { snapshot_done: true }, orders: {} },
};

describe.each([fileHarness, postgresHarness])('$name state store contract', (harness) => {
  beforeAll(() => harness.setup());
  afterAll(() => harness.teardown());

  it('loads undefined for a connection never saved, and lists nothing', async () => {
    const { store } = await harness.fresh();
    expect(await store.load('nope')).toBeUndefined();
    expect(await store.list()).toEqual([]);
  });

  it('round-trips STREAM and GLOBAL state, also through another store instance', async () => {
    const { store, reopen } = await harness.fresh();
    await store.save('per-stream', streamState);
    await store.save('cdc', globalState);
    expect(await store.load('per-stream')).toEqual(streamState);
    expect(await store.load('cdc')).toEqual(globalState);
    const again = await reopen();
    expect(await again.load('per-stream')).toEqual(streamState);
    expect(await again.load('cdc')).toEqual(globalState);
  });

  it('overwrites: the last save wins, including a GLOBAL state replaced by a STREAM one', async () => {
    const { store, reopen } = await harness.fresh();
    await store.save('c', globalState);
    await store.save('c', streamState);
    expect(await store.load('c')).toEqual(streamState);
    expect(await (await reopen()).load('c')).toEqual(streamState);
    const saves = Array.from({ length: 20 }, (_, i) => store.save('c', { streams: { s: { i } } }));
    await Promise.all(saves);
    expect(await store.load('c')).toEqual({ streams: { s: { i: 19 } } });
  });

  it('resets a whole connection and leaves the others alone', async () => {
    const { store } = await harness.fresh();
    await store.save('a', streamState);
    await store.save('b', globalState);
    await store.reset('a');
    expect(await store.load('a')).toBeUndefined();
    expect(await store.load('b')).toEqual(globalState);
    expect(await store.list()).toEqual(['b']);
    await store.reset('never-saved');
    await store.reset('a');
    expect(await store.list()).toEqual(['b']);
  });

  it('resets some streams, keeping shared state until the last stream goes', async () => {
    const { store } = await harness.fresh();
    await store.save('s', { streams: { a: { n: 1 }, b: { n: 2 }, 'x.c': { n: 3 } } });
    await store.reset('s', ['a', 'x.c', 'not-there']);
    expect(await store.load('s')).toEqual({ streams: { b: { n: 2 } } });

    await store.save('g', globalState);
    await store.reset('g', ['public.users']);
    expect(await store.load('g')).toEqual({ shared: globalState.shared, streams: { orders: {} } });
    await store.reset('g', ['unknown']);
    expect(await store.load('g')).toEqual({ shared: globalState.shared, streams: { orders: {} } });
    await store.reset('g', ['orders']);
    expect(await store.load('g')).toBeUndefined();
    expect(await store.list()).toEqual(['s']);
    await store.reset('missing', ['a']);
  });

  it('lists every saved connection, sorted', async () => {
    const { store } = await harness.fresh();
    for (const name of ['zeta', 'alpha', 'Mid', 'beta']) await store.save(name, streamState);
    expect(await store.list()).toEqual(['Mid', 'alpha', 'beta', 'zeta']);
  });

  it('refuses corrupt state with a config error naming the connection and the reset command', async () => {
    const { store, corrupt } = await harness.fresh();
    await store.save('crm sync', streamState);
    await store.save('other', streamState);
    await corrupt('crm sync');
    const error = await store.load('crm sync').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(TributaryError.is(error, 'config')).toBe(true);
    const message = (error as TributaryError).userMessage;
    expect(message).toContain('State for connection "crm sync"');
    expect(message).toContain(store.location);
    expect(message).toContain("`tributary state reset 'crm sync'`");
    await expect(store.reset('crm sync', ['contacts'])).rejects.toSatisfy((e) => TributaryError.is(e, 'config'));
    // The suggested remedy works, and the other connection was never affected.
    await store.reset('crm sync');
    expect(await store.load('crm sync')).toBeUndefined();
    expect(await store.load('other')).toEqual(streamState);
  });

  it('stores names with slashes, dots, case and unicode as distinct connections', async () => {
    const { store, reopen } = await harness.fresh();
    const names = ['a/b', '../escape', '..', '.', '/abs', 'with.dots.json', 'Case', 'case', 'ünïcødé 日本語 🚀', '%41', 'A', "it's"];
    for (const [i, name] of names.entries()) await store.save(name, { streams: { s: { i, name } } });
    const again = await reopen();
    for (const [i, name] of names.entries()) expect(await again.load(name)).toEqual({ streams: { s: { i, name } } });
    expect(await again.list()).toEqual([...names].sort());
  });

  it('rejects names that cannot be stored faithfully', async () => {
    const { store } = await harness.fresh();
    for (const name of ['', 'nul\0byte', 'lone\uD800surrogate']) {
      await expect(store.save(name, streamState)).rejects.toSatisfy((e) => TributaryError.is(e, 'config'));
    }
    expect(await store.list()).toEqual([]);
  });

  it('gives a connection’s sync lock to one holder at a time, across store instances, until released', async () => {
    const { store, reopen } = await harness.fresh();
    const other = await reopen();
    const lock = await store.lock!('locked');
    await expect(other.lock!('locked')).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/"locked" is already being synced/) });
    // Other connections are not held.
    const elsewhere = await other.lock!('elsewhere');
    await elsewhere.release();
    await lock.release();
    const again = await other.lock!('locked');
    await again.release();
  });

  it('never shows a secret in its location', async () => {
    const { store } = await harness.fresh();
    const secret = harness.secret?.();
    if (secret) expect(store.location).not.toContain(secret);
    expect(store.location).toMatch(/^(file|postgres):/);
  });
});

describe('file state store', () => {
  let root = '';
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'tributary-file-state-'));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('writes a versioned envelope holding Airbyte STATE messages', async () => {
    const dir = join(root, 'envelope');
    const store = track(createFileStateStore(dir));
    expect(store.location).toBe(`file:${resolve(dir)}`);
    await store.save('HubSpot prod', globalState);
    expect(await readdir(dir)).toEqual(['%48ub%53pot%20prod.json']);
    const envelope = JSON.parse(await readFile(join(dir, '%48ub%53pot%20prod.json'), 'utf8')) as Record<string, unknown>;
    expect(envelope).toEqual({ version: 1, connection: 'HubSpot prod', updatedAt: expect.any(String), state: toStateMessages(globalState) });
    expect(Number.isNaN(Date.parse(envelope.updatedAt as string))).toBe(false);
  });

  it('keeps every file directly inside its directory, whatever the name', async () => {
    const parent = join(root, 'escape');
    const dir = join(parent, 'state');
    const store = track(createFileStateStore(dir));
    const names = ['../x', '../../etc/passwd', '..', '/tmp/y', 'a\\b', 'c:d'];
    for (const name of names) await store.save(name, streamState);
    expect(await readdir(parent)).toEqual(['state']);
    const files = await readdir(dir);
    expect(files).toHaveLength(names.length);
    for (const file of files) expect(file).toMatch(/^[a-z0-9_%A-F-]+\.json$/);
  });

  it('refuses state written by a newer format or for another connection', async () => {
    const dir = join(root, 'foreign');
    const store = track(createFileStateStore(dir));
    await store.save('a', streamState);
    await store.save('b', streamState);
    const fileA = join(dir, connectionFileName('a'));
    const envelope = JSON.parse(await readFile(fileA, 'utf8')) as Record<string, unknown>;
    await writeFile(fileA, JSON.stringify({ ...envelope, version: 2 }));
    await expect(store.load('a')).rejects.toThrow(/format version 2/);
    // A file copied over another connection's must not be taken for it.
    await writeFile(join(dir, connectionFileName('b')), JSON.stringify(envelope));
    await expect(store.load('b')).rejects.toThrow(/belongs to connection "a"/);
  });

  it('takes over a sync lock whose holder process is gone, and a release never removes a lock taken over from it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-lock-'));
    try {
      const store = createFileStateStore(dir);
      // A sync killed with SIGKILL leaves its lock file behind: its pid no longer runs.
      const dead = spawn(process.execPath, ['-e', '']);
      await new Promise((r) => dead.once('exit', r));
      const path = join(dir, 'stale.lock');
      await writeFile(path, JSON.stringify({ pid: dead.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', token: 'dead' }));
      const lock = await store.lock!('stale');
      expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
      // Presumed dead in turn and taken over by another holder: releasing leaves that one's lock.
      await writeFile(path, JSON.stringify({ pid: process.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', token: 'someone else' }));
      await lock.release();
      expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ token: 'someone else' });
      // A holder on another host is never presumed dead.
      await writeFile(path, JSON.stringify({ pid: dead.pid, host: `not-${hostname()}`, since: '2026-01-01T00:00:00.000Z', token: 'remote' }));
      await expect(store.lock!('stale')).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringContaining(`process ${dead.pid} on not-${hostname()}`) });
      expect(await store.list()).toEqual([]);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives a stale sync lock to exactly one of many processes taking it over at the same moment', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-lock-race-'));
    const contender = fileURLToPath(new URL('./support/lock-contender.ts', import.meta.url));
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => dead.once('exit', r));
    try {
      for (let round = 0; round < 3; round++) {
        await rm(join(dir, 'race.lock'), { force: true });
        await writeFile(join(dir, 'race.lock'), JSON.stringify({ pid: dead.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', token: `dead-${round}` }));
        const outcomes = await raceForLock(contender, dir, 'race', 8);
        expect(outcomes.filter((o) => o === 'won'), outcomes.join('\n')).toHaveLength(1);
        for (const outcome of outcomes.filter((o) => o !== 'won')) expect(outcome).toMatch(/^lost .*"race" is already being synced by process \d+ on /);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes over a stale sync lock even when a process died while taking it over', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-lock-claim-'));
    try {
      const store = createFileStateStore(dir);
      const dead = spawn(process.execPath, ['-e', '']);
      await new Promise((r) => dead.once('exit', r));
      const stale = { pid: dead.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z' };
      await writeFile(join(dir, 'stale.lock'), JSON.stringify({ ...stale, token: 'dead-holder' }));
      const claim = `stale.lock.${createHash('sha256').update('dead-holder').digest('hex').slice(0, 32)}.takeover`;
      await writeFile(join(dir, claim), JSON.stringify({ ...stale, token: 'dead-claimant' }));
      const lock = await store.lock!('stale');
      expect(JSON.parse(await readFile(join(dir, 'stale.lock'), 'utf8'))).toMatchObject({ pid: process.pid });
      await lock.release();
      expect(await readdir(dir)).toEqual([]);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never leaves a torn file when the writing process is SIGKILLed', async () => {
    const dir = join(root, 'crash');
    const writer = fileURLToPath(new URL('./support/state-writer.ts', import.meta.url));
    const store = track(createFileStateStore(dir));
    let next = 1;
    for (let round = 0; round < 10; round++) {
      const acked = await runWriterUntilKilled(writer, dir, next, 1 + Math.floor(Math.random() * 20));
      expect(acked.length).toBeGreaterThan(0);
      const lastAcked = acked[acked.length - 1] ?? 0;
      const loaded = await store.load('crash');
      const index = (loaded?.streams['crm.contacts'] as { cursor?: number } | undefined)?.cursor ?? -1;
      // Every acknowledged save survived; at most the one in flight when killed got further.
      expect(index === lastAcked || index === lastAcked + 1).toBe(true);
      expect(loaded).toEqual(growingState(index));
      next = index + 1;
    }
    // Temp files a kill may leave behind are never mistaken for connections.
    expect(await store.list()).toEqual(['crash']);
  });
});

/**
 * Starts `count` lock-contender children, lets them all try to take the lock at once and
 * resolves with what each printed (`won` or `lost <message>`), after they all exited.
 */
async function raceForLock(contender: string, dir: string, connection: string, count: number): Promise<string[]> {
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', contender, dir, connection], { stdio: ['pipe', 'pipe', 'pipe'] }),
  );
  const lines = children.map((child) => {
    const queue: string[] = [];
    const waiters: ((line: string) => void)[] = [];
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) {
        const waiter = waiters.shift();
        if (waiter) waiter(part);
        else queue.push(part);
      }
    });
    const exited = new Promise<void>((resolveExit) => child.once('close', () => resolveExit()));
    const next = (): Promise<string> =>
      Promise.race([
        new Promise<string>((resolveLine) => {
          const line = queue.shift();
          if (line !== undefined) resolveLine(line);
          else waiters.push(resolveLine);
        }),
        exited.then(() => Promise.reject(new Error(`contender exited early: ${stderr}`))),
      ]);
    return { next, exited };
  });
  try {
    expect(await Promise.all(lines.map((l) => l.next()))).toEqual(children.map(() => 'ready'));
    for (const child of children) child.stdin.write('go\n');
    return await Promise.all(lines.map((l) => l.next()));
  } finally {
    for (const child of children) child.stdin.end();
    await Promise.all(lines.map((l) => l.exited));
  }
}

/**
 * Runs the writer child until it acknowledged `killAfter` saves, then SIGKILLs it at a random
 * moment shortly after. Resolves with every index it acknowledged, once its stdout closed.
 */
function runWriterUntilKilled(writer: string, dir: string, first: number, killAfter: number): Promise<number[]> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', writer, dir, 'crash', String(first)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: number[] = [];
    let buffered = '';
    let stderr = '';
    let killing = false;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      acked.push(...lines.map(Number));
      if (!killing && acked.length >= killAfter) {
        killing = true;
        setTimeout(() => child.kill('SIGKILL'), Math.random() * 20);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer exited by itself (code ${String(code)}): ${stderr}`));
      else resolvePromise(acked);
    });
  });
}

describe('postgres state store', () => {

  it('names host, port and database in its location, never the password', () => {
    const { url, port, password } = pgServer();
    const store = track(createPostgresStateStore({ connectionString: url }));
    expect(store.location).toBe(`postgres:127.0.0.1:${port}/tributary`);
    expect(store.location).not.toContain(password);
  });

  it('creates its table in the schema and table named in the URL and stores Airbyte STATE messages', async () => {
    const store = track(await openStateStore(`${pgServer().url}?schema=tenant_a&table=checkpoints`));
    await store.save('c1', streamState);
    const rows = await withClient(async (c) => (await c.query('SELECT connection, state, version FROM tenant_a.checkpoints')).rows);
    expect(rows).toEqual([{ connection: 'c1', state: toStateMessages(streamState), version: 1 }]);
    // A second store on the same table (the table now exists) sees the same state.
    const again = track(await openStateStore(`${pgServer().url}?schema=tenant_a&table=checkpoints`));
    expect(await again.load('c1')).toEqual(streamState);
    // Dropped behind the store's back: reads see nothing, the next save recreates it.
    await withClient((c) => c.query('DROP TABLE tenant_a.checkpoints'));
    expect(await store.load('c1')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    await store.save('c2', globalState);
    expect(await again.load('c2')).toEqual(globalState);
  });

  it('reports refused credentials as auth, without the password', async () => {
    const { port, password } = pgServer();
    const wrong = 'not-the-password-123';
    const store = track(createPostgresStateStore({ connectionString: `postgres://postgres:${wrong}@127.0.0.1:${port}/tributary` }));
    const error = await store.load('x').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(TributaryError.is(error, 'auth')).toBe(true);
    const text = `${(error as TributaryError).userMessage} ${(error as TributaryError).internalMessage ?? ''} ${store.location}`;
    expect(text).toContain(`127.0.0.1:${port}/tributary`);
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(password);
  });

  it('reports an unreachable server as transient and a missing database as config', async () => {
    const { port, password } = pgServer();
    const closedPort = await freePort();
    const unreachable = track(createPostgresStateStore({ connectionString: `postgres://postgres:${password}@127.0.0.1:${closedPort}/tributary` }));
    const e1 = await unreachable.list().then(() => undefined, (e: unknown) => e);
    expect(TributaryError.is(e1, 'transient')).toBe(true);
    expect((e1 as TributaryError).userMessage).toContain(`127.0.0.1:${closedPort}`);
    expect((e1 as TributaryError).userMessage).not.toContain(password);

    const missing = track(createPostgresStateStore({ connectionString: `postgres://postgres:${password}@127.0.0.1:${port}/no_such_db` }));
    const e2 = await missing.save('x', streamState).then(() => undefined, (e: unknown) => e);
    expect(TributaryError.is(e2, 'config')).toBe(true);
    expect((e2 as TributaryError).userMessage).toContain('"no_such_db"');
    expect((e2 as TributaryError).userMessage).not.toContain(password);
  });

  it('survives the server ending its lock session: refuses to save while another sync holds the lock, takes it again once free', async () => {
    const table = `state_${++tableCounter}`;
    const url = `${pgServer().url}?table=${table}`;
    const syncing = track(await openStateStore(url));
    const other = track(await openStateStore(url));
    const lock = await syncing.lock!('lost');
    const advisoryLocks = (): Promise<number> =>
      withClient(async (c) => Number((await c.query(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted`)).rows[0].n));
    // A server restart, failover or admin ends the session: its advisory lock goes with it.
    await withClient((c) => c.query(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted`));
    let taken: Awaited<ReturnType<NonNullable<StateStore['lock']>>> | undefined;
    // The backend exits asynchronously: wait for the server to free the lock.
    while (!taken) taken = await other.lock!('lost').catch(() => undefined);
    // The client learns about the ended session asynchronously too; from then on its saves are refused.
    let refused: unknown;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      refused = await syncing.save('lost', streamState).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (refused === undefined) await new Promise((r) => setTimeout(r, 25));
    }
    expect(refused).toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/"lost" is already being synced/) });
    await taken.release();
    // Free again: the next save takes the lock again on a new session.
    await syncing.save('lost', { streams: { contacts: { cursor: 'after' } } });
    expect(await advisoryLocks()).toBe(1);
    await expect(other.lock!('lost')).rejects.toMatchObject({ kind: 'config' });
    await lock.release();
    expect(await advisoryLocks()).toBe(0);
    expect(await other.load('lost')).toEqual({ streams: { contacts: { cursor: 'after' } } });
  });

  it('closes its pool: no server session remains, close is idempotent, use after close fails', async () => {
    const appName = `close-test-${process.pid}`;
    const store = createPostgresStateStore({ connectionString: `${pgServer().url}?application_name=${appName}` });
    await Promise.all([store.save('a', streamState), store.save('b', streamState), store.list()]);
    const sessions = (): Promise<number> =>
      withClient(async (c) => Number((await c.query('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [appName])).rows[0].n));
    expect(await sessions()).toBeGreaterThan(0);
    await store.close();
    await store.close();
    // Backends exit asynchronously after the client's Terminate; wait for the server to agree.
    while ((await sessions()) > 0) await new Promise((r) => setTimeout(r, 50));
    await expect(store.load('a')).rejects.toSatisfy((e) => TributaryError.is(e, 'fatal'));
  });
});

describe('openStateStore', () => {
  let base = '';
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'tributary-open-'));
  });
  afterAll(() => rm(base, { recursive: true, force: true }));

  it('defaults to a file store under <baseDir>/.tributary/state', async () => {
    expect((await openStateStore(undefined, base)).location).toBe(`file:${join(base, '.tributary', 'state')}`);
    expect((await openStateStore('', base)).location).toBe(`file:${join(base, '.tributary', 'state')}`);
  });

  it('accepts plain paths, file:<path> and file:// URLs', async () => {
    expect((await openStateStore('rel/dir', base)).location).toBe(`file:${join(base, 'rel', 'dir')}`);
    expect((await openStateStore('file:other', base)).location).toBe(`file:${join(base, 'other')}`);
    expect((await openStateStore(`file:${base}/abs`, '/elsewhere')).location).toBe(`file:${join(base, 'abs')}`);
    expect((await openStateStore(`file://${base}/url`)).location).toBe(`file:${join(base, 'url')}`);
  });

  it('refuses unknown schemes, naming the accepted forms but not the rest of the URL', async () => {
    const error = await openStateStore('mysql://root:hunter22@db/state').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(TributaryError.is(error, 'config')).toBe(true);
    const message = (error as TributaryError).userMessage;
    expect(message).toContain('"mysql:"');
    expect(message).toContain('file:<path>');
    expect(message).toContain('postgres://');
    expect(message).not.toContain('hunter22');
  });

  it('refuses a path that is a file', async () => {
    await writeFile(join(base, 'plain-file'), 'x');
    await expect(openStateStore('plain-file', base)).rejects.toSatisfy((e) => TributaryError.is(e, 'config'));
  });

  it('opens postgres:// and postgresql:// URLs without connecting', async () => {
    const a = track(await openStateStore('postgres://u:secret-pw@db.example:6543/crm?schema=s&table=t'));
    const b = track(await openStateStore('postgresql://u:secret-pw@db.example/crm'));
    expect(a.location).toBe('postgres:db.example:6543/crm');
    expect(b.location).toBe('postgres:db.example:5432/crm');
  });
});
