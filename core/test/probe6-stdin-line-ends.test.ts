/**
 * The line ends `tributary write` reads its stdin (Airbyte messages, JSON lines) with.
 *
 * node:readline, which read these lines until stdin got its own line reader (`textLines`,
 * so that a line too long for a string fails cleanly), ends a line at `\n`, `\r\n` and a lone
 * `\r`; so do Airbyte's own readers of a destination's stdin (the Java CDK's scanner splits at
 * `[\r\n]+`, the Python CDK reads stdin with universal newlines). The new reader split at
 * `\n` only: messages with old Mac line ends (a lone CR) were read as one line, and the write
 * failed with "stdin line 1 is not a JSON Airbyte message". A raw CR never occurs inside a
 * one-line JSON text except as whitespace between tokens (which no JSON writer emits), so
 * splitting at it loses no message. CRLF stays one line end, also when a chunk of stdin
 * ends between its CR and its LF (a line count that counted it twice would misnumber errors).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textLines } from '../src/util/text-lines.js';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe6-line-ends-'));
  const catalog = {
    streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['full_refresh'] }, sync_mode: 'full_refresh', destination_sync_mode: 'append' }],
  };
  await writeFile(join(dir, 'catalog.json'), JSON.stringify(catalog));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const record = (id: number): string => JSON.stringify({ type: 'RECORD', record: { stream: 'items', emitted_at: 0, data: { id } } });
const state = (id: number): string => JSON.stringify({ type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'items' }, stream_state: { id } } } });

/** Runs `tributary write local` into `out` with `input` on stdin. */
async function write(out: string, input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  await writeFile(join(dir, `${out}.json`), JSON.stringify({ directory: join(dir, out) }));
  const child = spawn(process.execPath, [BIN, 'write', 'local', '--config', `${out}.json`, '--catalog', 'catalog.json'], { cwd: dir, env: { ...process.env, TRIBUTARY_DEBUG: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(input);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return { code, stdout, stderr };
}

const echoedStates = (stdout: string): unknown[] =>
  stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { type: string; state?: { stream?: { stream_state?: unknown } } })
    .filter((m) => m.type === 'STATE')
    .map((m) => m.state?.stream?.stream_state);

describe('tributary write: line ends on stdin', () => {
  it('messages ended by a lone CR (old Mac line ends) are read one per line, as with LF and CRLF', async () => {
    const result = await write('cr', `${record(1)}\r${state(1)}\r${record(2)}\r\n${state(2)}\n${record(3)}\r${state(3)}\r`);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // STATEs are echoed once committed; one commit may cover several (the latest is echoed).
    expect(echoedStates(result.stdout).at(-1)).toEqual({ id: 3 });
    expect(await readFile(join(dir, 'cr', 'items.jsonl'), 'utf8')).toBe('{"id":1}\n{"id":2}\n{"id":3}\n');
  });

  it('a malformed line is numbered counting CR, LF and CRLF each as one line end', async () => {
    const result = await write('numbered', `${record(1)}\r\n${state(1)}\r${record(2)}\n{"type":\r${state(2)}\r\n`);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error: stdin line 4 is not a JSON Airbyte message');
    expect(echoedStates(result.stdout)).toEqual([{ id: 1 }]);
  });
});

describe('textLines', () => {
  async function lines(chunks: string[]): Promise<string[]> {
    async function* input() {
      for (const chunk of chunks) yield Buffer.from(chunk);
    }
    const out: string[] = [];
    for await (const line of textLines(input(), () => new Error('too long'))) out.push(line);
    return out;
  }

  it('ends lines at LF, CRLF and a lone CR; empty lines between them are lines', async () => {
    expect(await lines(['a\nb\r\nc\rd\r\re\n\r\nf'])).toEqual(['a', 'b', 'c', 'd', '', 'e', '', 'f']);
  });

  it('a CRLF split between two chunks (or with empty chunks between) is one line end; a CR ending the input ends the last line', async () => {
    expect(await lines(['a\r', '\nb\r', '', '\nc\r', 'd\r'])).toEqual(['a', 'b', 'c', 'd']);
    expect(await lines(['a\r', '\r', '\n', 'b'])).toEqual(['a', '', 'b']);
  });

  it('a CRLF whole at the end of a chunk ends its line there: an LF opening the next chunk is another line end', async () => {
    expect(await lines(['a\r\n', '\nb\n'])).toEqual(['a', '', 'b']);
  });
});
