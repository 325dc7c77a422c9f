/**
 * A record or a state whose JSON text is longer than the longest string Node.js can hold
 * (V8's limit, `buffer.constants.MAX_STRING_LENGTH`: 536,870,888 characters on 64-bit Node 20).
 *
 * - `tributary read` failed on such a RECORD with "A value's JSON text is longer than …"
 *   without naming the stream; on such a STATE the same. Now it names the stream (or the
 *   global state) and the limit.
 * - `runSync` failed on such a checkpoint with "The destination failed" (the destination had
 *   nothing to do with it). Now the sync fails naming the stream (or the global state) and
 *   the stored state stays the one committed before.
 * - The state stores, given such a state (`tributary state set` hands them anything): the file
 *   store threw V8's bare RangeError; the PostgreSQL store said "Cannot write state to …".
 *   Now both refuse it naming the stream, writing nothing. The file store also refused a state
 *   whose indented file text alone was too long (now written compact). The PostgreSQL
 *   store reported a state too large for jsonb as "PostgreSQL error 54000"; now it names the
 *   stream too.
 *
 * The states are cheap to build: two strings of 2^28 characters (256 MiB each) are each
 * far below the limit and only together exceed it. A test still builds and refuses ~512 MiB
 * of text; the largest peaks at about 3 GiB of memory.
 */
import { constants } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';
import { createFileStateStore, createPostgresStateStore, runSync, type SourceMessage, type StateStore, type SyncState } from '@tributary/core';
import { encodeState, largestPart } from '../src/state/codec.js';
import { stateTooLongError } from '../src/util/json-text.js';
import { startPostgres, type EmbeddedPostgresServer } from './support/embedded-postgres.js';
import { discardingDestination, itemsSource } from './support/sync-fixtures.js';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));
const LIMIT = constants.MAX_STRING_LENGTH.toLocaleString('en-US');
/** Far below the limit alone; two of them exceed it. */
const HALF = 'y'.repeat(2 ** 28);
const tooLongBlob = (): Record<string, unknown> => ({ id: 2, a: HALF, b: HALF });
/** Each test serializes ~512 MiB more than once: more than the default minute on a busy machine. */
const HEAVY_TIMEOUT_MS = 240_000;
const TOO_LONG = `is longer than the longest string Node.js can hold (${LIMIT} characters`;

let dir: string;
let server: EmbeddedPostgresServer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe6-state-too-long-'));
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI in `dir`; resolves with its exit code and output. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, TRIBUTARY_DEBUG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr })));
}

/**
 * A source module whose read yields a record and a checkpoint, then (per $PROBE6_MODE) a
 * record, a stream checkpoint or a global checkpoint whose JSON text is too long.
 */
const SOURCE = `const HALF = 'y'.repeat(2 ** 28);
const big = () => ({ id: 2, a: HALF, b: HALF });
export default {
  kind: 'source', name: 'huge', spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [{ name: 'items', namespace: 'crm', json_schema: { type: 'object' }, supported_sync_modes: ['full_refresh'] }] };
  },
  async *read() {
    yield { kind: 'record', stream: 'items', namespace: 'crm', data: { id: 1 } };
    yield { kind: 'checkpoint', stream: 'items', namespace: 'crm', state: { id: 1 } };
    const mode = process.env.PROBE6_MODE;
    if (mode === 'record') yield { kind: 'record', stream: 'items', namespace: 'crm', data: big() };
    if (mode === 'state') yield { kind: 'checkpoint', stream: 'items', namespace: 'crm', state: big() };
    if (mode === 'global') yield { kind: 'global-checkpoint', shared: big(), streams: [{ stream: 'items', namespace: 'crm', state: { id: 2 } }] };
  },
};
`;

describe('tributary read of a message longer than a string can be', () => {
  beforeAll(async () => {
    await writeFile(join(dir, 'huge-source.mjs'), SOURCE);
    await writeFile(join(dir, 'empty.json'), '{}');
  });

  it.each([
    ['record', `error: Stream "crm.items": a record's JSON text ${TOO_LONG}`, 'it cannot be printed as an Airbyte RECORD message', { name: 'items', namespace: 'crm' }],
    ['state', `error: Stream "crm.items": the stream's state is too large: its JSON text ${TOO_LONG}`, 'it cannot be printed as an Airbyte STATE message', { name: 'items', namespace: 'crm' }],
  ])('a too long %s fails naming its stream (or the global state) and the limit, after printing what came before', async (mode, message, consequence, descriptor) => {
    const result = await cli(['read', './huge-source.mjs', '--config', 'empty.json'], { PROBE6_MODE: mode });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain(consequence);
    expect(result.stderr).not.toContain('RangeError');
    const lines = result.stdout.split('\n').filter((l) => l.trim() !== '');
    for (const line of lines) expect(validateAirbyteMessage(line)).toEqual([]);
    const messages = lines.map((l) => JSON.parse(l) as { type: string; trace?: { error?: { message: string; stream_descriptor?: unknown } } });
    expect(messages.map((m) => m.type)).toEqual(['RECORD', 'STATE', 'TRACE']);
    expect(messages[2]!.trace?.error?.message).toContain(message.slice('error: '.length));
    expect(messages[2]!.trace?.error?.stream_descriptor).toEqual(descriptor);
  }, HEAVY_TIMEOUT_MS);
});

const catalog = {
  streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental' as const] }, sync_mode: 'incremental' as const, destination_sync_mode: 'append' as const }],
};

describe('runSync with a checkpoint whose state is longer than a string can be', () => {
  it.each([
    ['stream', { kind: 'checkpoint', stream: 'items', state: tooLongBlob() } as SourceMessage, `Stream "items": the stream's state is too large: its JSON text ${TOO_LONG}`],
  ])('a %s state fails the sync naming it and the limit; the state committed before stays stored and loadable', async (_scope, checkpoint, message) => {
    const store = createFileStateStore(join(dir, `sync-${_scope}`));
    try {
      const source = itemsSource('big-state', async function* () {
        yield { kind: 'record', stream: 'items', data: { id: 1 } };
        yield { kind: 'checkpoint', stream: 'items', state: { id: 1 } };
        yield { kind: 'record', stream: 'items', data: { id: 2 } };
        yield checkpoint;
      });
      const result = await runSync({
        connection: 'big-state',
        source,
        sourceConfig: {},
        destination: discardingDestination(),
        destinationConfig: {},
        catalog,
        stateStore: store,
        batching: { commitIntervalMs: 0 },
      });
      expect(result.outcome).toBe('failed');
      expect(result.error?.kind).toBe('fatal');
      expect(result.error?.userMessage).toContain(message);
      expect(result.error?.userMessage).toContain('so it cannot be saved (the state saved before it is kept)');
      expect(result.state).toEqual({ streams: { items: { id: 1 } } });
      expect(await store.load('big-state')).toEqual({ streams: { items: { id: 1 } } });
    } finally {
      await store.close();
    }
  }, HEAVY_TIMEOUT_MS);
});

/** Saves a small state, then `state`; returns the second save's error (if any) and what loads afterwards. */
async function saveOver(store: StateStore, connection: string, state: SyncState): Promise<{ error: unknown; loaded: SyncState | undefined }> {
  await store.save(connection, { streams: { items: { id: 1 } } });
  const error = await store.save(connection, state).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, loaded: await store.load(connection) };
}

describe('the file state store, saving a state too long for its file', () => {
  it('a state whose compact text fits but whose indented file text does not is saved compact, and loads', async () => {
    const store = createFileStateStore(join(dir, 'file-compact'));
    try {
      const shape = (b: string): SyncState => ({ streams: { items: { a: HALF, b } } });
      // The envelope around the two strings, compact; `b` makes the whole exactly fit.
      const overhead = JSON.stringify(encodeState('c', shape(''))).length - HALF.length + 1;
      const b = 'z'.repeat(constants.MAX_STRING_LENGTH - overhead - HALF.length);
      expect(overhead + HALF.length + b.length).toBe(constants.MAX_STRING_LENGTH);
      await store.save('c', shape(b));
      const loaded = await store.load('c');
      expect(loaded?.streams.items?.a === HALF && loaded.streams.items.b === b).toBe(true);
    } finally {
      await store.close();
    }
  }, HEAVY_TIMEOUT_MS);
});

describe('the PostgreSQL state store, saving a state too long for it', () => {
  it('a state too large for a jsonb value (300 MiB of text) is refused naming the stream, not as "PostgreSQL error 54000"; the row keeps the state before', async () => {
    const store = createPostgresStateStore({ connectionString: server.url, table: 'probe6_jsonb' });
    try {
      const { error, loaded } = await saveOver(store, 'c', { streams: { small: { id: 1 }, items: { page: 'p'.repeat(300 * 2 ** 20) } } });
      expect(error).toMatchObject({ kind: 'fatal', stream: { name: 'items' } });
      expect((error as { userMessage: string }).userMessage).toMatch(/^Stream "items": the stream's state is too large: PostgreSQL refuses it as a jsonb value \(.*jsonb.*; a jsonb value holds at most 256 MiB\)/);
      expect(loaded).toEqual({ streams: { items: { id: 1 } } });
    } finally {
      await store.close();
    }
  }, HEAVY_TIMEOUT_MS);
});

describe('naming the part of a state that is too long', () => {
  // The heavy cases above build states past the string limit for a stream's state; a global
  // state (one GLOBAL message holds it all) is named as such, checked here without the memory.
  it('a global state is named as the global state; a stream state by its stream', () => {
    expect(largestPart({ shared: { lsn: 1 }, streams: { items: { id: 1 } } })).toBe('global');
    expect(largestPart({ streams: { a: { id: 1 }, 'crm.items': { page: 'x'.repeat(100) } } })).toEqual({ name: 'items', namespace: 'crm' });
    const error = stateTooLongError('global', 'it cannot be saved', new RangeError('Invalid string length'));
    expect(error).toMatchObject({ kind: 'fatal' });
    expect(error.userMessage).toMatch(/^The global state is too large: its JSON text is longer than the longest string Node.js can hold .*, so it cannot be saved\./);
  });
});
