/**
 * A record whose JSON text is longer than the longest string Node.js can hold (V8's limit,
 * `buffer.constants.MAX_STRING_LENGTH`: 536,870,888 characters on 64-bit Node 20) cannot be
 * serialized by any destination that writes it as JSON.
 *
 * - `runSync`: the local-files destination failed on it with V8's bare RangeError "Invalid
 *   string length", which its retry wrapped as "Unexpected error"; a record sampled for the
 *   batch size estimate failed the sync as "The sync failed". Now the sync fails with an
 *   error naming the stream and the limit, and commits the checkpoint before that record.
 * - `tributary write`: a stdin line that long crashed the CLI (an uncaught RangeError thrown
 *   inside node:readline, with a stack trace). Now it is a config error (exit 2) naming the line
 *   and its stream, and the STATE before that line is still committed and echoed.
 *
 * The records are cheap to build: 520 references to one 1 MiB string (1 MiB of memory) whose
 * JSON text is 520 MiB. Serializing one still builds ~512 MiB of text before V8 refuses it.
 */
import { constants } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';
import { configureCatalog, runSync, type SourceMessage } from '@tributary/core';
import localFilesDestination from '@tributary/destination-local';
import { textLines } from '../src/util/text-lines.js';
import { itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));
const MIB = 2 ** 20;
const PIECE = 'x'.repeat(MIB);
/** How many MiB pieces make a JSON text longer than the limit. */
const PIECES = Math.ceil(constants.MAX_STRING_LENGTH / MIB) + 8;
const LIMIT = constants.MAX_STRING_LENGTH.toLocaleString('en-US');

const temp = useTempStateStore('tributary-probe3-too-long-');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-too-long-out-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const STREAM = { source_defined_cursor: true, default_cursor_field: ['id'], source_defined_primary_key: [['id']] };

async function syncToLocalFiles(read: () => AsyncGenerator<SourceMessage>) {
  const destination = localFilesDestination;
  const source = itemsSource('huge', read, STREAM);
  const catalog = configureCatalog(await source.discover({} as never, {}), undefined, destination.spec.supportedDestinationSyncModes);
  return runSync({
    connection: 'huge',
    source,
    sourceConfig: {},
    destination,
    destinationConfig: { directory: join(dir, 'out') },
    catalog,
    stateStore: temp.store,
    batching: { commitIntervalMs: 0 },
  });
}

describe('a record longer than a string can be', () => {
  it('runSync into local-files fails naming the stream and the limit, with the checkpoint before it committed', async () => {
    const result = await syncToLocalFiles(async function* () {
      yield { kind: 'record', stream: 'items', data: { id: 1 } };
      yield { kind: 'checkpoint', stream: 'items', state: { id: 1 } };
      yield { kind: 'record', stream: 'items', data: { id: 2, blob: Array<string>(PIECES).fill(PIECE) } };
      yield { kind: 'checkpoint', stream: 'items', state: { id: 2 } };
    });
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toContain(`Stream "items": a record's JSON text is longer than the longest string Node.js can hold (${LIMIT} characters`);
    expect(result.error?.stream).toEqual({ name: 'items' });
    expect(result.state.streams.items).toEqual({ id: 1 });
    expect((await temp.store.load('huge'))?.streams.items).toEqual({ id: 1 });
  });

  it('the same, when the record is the one sampled for the batch size estimate (a stream\'s first)', async () => {
    const result = await syncToLocalFiles(async function* () {
      yield { kind: 'record', stream: 'items', data: { id: 1, blob: Array<string>(PIECES).fill(PIECE) } };
      yield { kind: 'checkpoint', stream: 'items', state: { id: 1 } };
    });
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toContain(`Stream "items": a record's JSON text is longer than the longest string Node.js can hold (${LIMIT} characters`);
    expect(await temp.store.load('huge')).toBeUndefined();
  });

  it('tributary write: a stdin line that long is a config error naming the line and stream; the STATE before it is echoed', async () => {
    const catalog = {
      streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['full_refresh'] }, sync_mode: 'full_refresh', destination_sync_mode: 'append' }],
    };
    await writeFile(join(dir, 'catalog.json'), JSON.stringify(catalog));
    await writeFile(join(dir, 'dest.json'), JSON.stringify({ directory: join(dir, 'write-out') }));
    const child = spawn(process.execPath, [BIN, 'write', 'local', '--config', 'dest.json', '--catalog', 'catalog.json'], {
      cwd: dir,
      env: { ...process.env, TRIBUTARY_DEBUG: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
    // The CLI stops reading once the line passed the limit: later writes fail (EPIPE), as expected.
    child.stdin.on('error', () => {});
    const send = (text: string): Promise<void> =>
      new Promise((resolve) => {
        if (child.stdin.destroyed || child.stdin.write(text)) return resolve();
        const done = (): void => {
          child.stdin.off('drain', done).off('close', done);
          resolve();
        };
        child.stdin.on('drain', done).on('close', done);
      });
    await send(JSON.stringify({ type: 'RECORD', record: { stream: 'items', emitted_at: 0, data: { id: 1 } } }) + '\n');
    await send(JSON.stringify({ type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'items' }, stream_state: { id: 1 } } } }) + '\n');
    await send('{"type":"RECORD","record":{"stream":"items","emitted_at":0,"data":{"id":2,"blob":"');
    for (let i = 0; i < PIECES && !child.stdin.destroyed; i++) await send(PIECE);
    await send('"}}}\n');
    child.stdin.end();

    expect(await exited).toBe(2);
    expect(stderr).toContain(`error: stdin line 3 (a message of stream "items") is longer than the longest string Node.js can hold (${LIMIT} characters`);
    expect(stderr).not.toContain('RangeError');
    const lines = stdout.split('\n').filter((l) => l.trim() !== '');
    for (const line of lines) expect(validateAirbyteMessage(line)).toEqual([]);
    const states = lines.map((l) => JSON.parse(l) as { type: string; state?: { stream?: { stream_state?: unknown } } }).filter((m) => m.type === 'STATE');
    expect(states.map((m) => m.state?.stream?.stream_state)).toEqual([{ id: 1 }]);
    expect(await readFile(join(dir, 'write-out', 'items.jsonl'), 'utf8')).toBe('{"id":1}\n');
  });
});

describe('textLines (what tributary write reads stdin with, in place of node:readline)', () => {
  it('splits at \\n and \\r\\n, keeps a last line without terminator, and decodes a character split across chunks', async () => {
    const e = Buffer.from('é', 'utf8');
    const chunks = [Buffer.from('a\r\nb'), Buffer.from('c\n\n'), Buffer.concat([Buffer.from('x'), e.subarray(0, 1)]), Buffer.concat([e.subarray(1), Buffer.from('y\nlast')])];
    async function* input() {
      yield* chunks;
    }
    const lines: string[] = [];
    for await (const line of textLines(input(), () => new Error('too long'))) lines.push(line);
    expect(lines).toEqual(['a', 'bc', '', 'xéy', 'last']);
  });
});
