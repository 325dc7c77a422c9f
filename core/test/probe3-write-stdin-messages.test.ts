/**
 * `tributary write` reads Airbyte messages from stdin. A line that is JSON but not a message
 * object (`null`, `5`, an array), or a RECORD without a `record` object naming its stream,
 * failed as "The sync failed" with "Cannot read properties of undefined (reading
 * 'namespace')" (exit 1) or was skipped silently. Now each is a config error naming the line
 * (exit 2), as a line that is not JSON already was; the STATE before it is still echoed once
 * committed.
 *
 * The CLI runs as a child process (the built `bin/tributary.js`) with the local-files destination.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-write-stdin-'));
  const catalog = {
    streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['full_refresh'] }, sync_mode: 'full_refresh', destination_sync_mode: 'append' }],
  };
  await writeFile(join(dir, 'catalog.json'), JSON.stringify(catalog));
  await writeFile(join(dir, 'dest.json'), JSON.stringify({ directory: './out' }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function write(input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, 'write', 'local', '--config', 'dest.json', '--catalog', 'catalog.json'],
      { cwd: dir, env: { ...process.env, TRIBUTARY_DEBUG: '' } },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

const RECORD = JSON.stringify({ type: 'RECORD', record: { stream: 'items', emitted_at: 0, data: { id: 1 } } });
const STATE = JSON.stringify({ type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'items' }, stream_state: { id: 1 } } } });

describe('tributary write: malformed messages on stdin', () => {
  it.each([
    ['null', 'null', 'stdin line 3 is not a JSON Airbyte message (not a JSON object)'],
    ['a number', '5', 'stdin line 3 is not a JSON Airbyte message (not a JSON object)'],
    ['an array', '[{"type":"RECORD"}]', 'stdin line 3 is not a JSON Airbyte message (not a JSON object)'],
    ['a RECORD without record', '{"type":"RECORD"}', 'stdin line 3 is a RECORD without a "record" object naming its "stream" (a string)'],
    ['a RECORD whose stream is not a string', '{"type":"RECORD","record":{"stream":7,"data":{}}}', 'stdin line 3 is a RECORD without a "record" object naming its "stream" (a string)'],
  ])('%s is a config error naming the line; the STATE before it is echoed', async (_what, line, problem) => {
    const run = await write([RECORD, STATE, line, RECORD].join('\n') + '\n');
    expect(run.stderr).toContain(`error: ${problem}`);
    expect(run.stderr).not.toContain('Cannot read properties');
    expect(run.code).toBe(2);
    const lines = run.stdout.split('\n').filter((l) => l.trim() !== '');
    for (const l of lines) expect(validateAirbyteMessage(l)).toEqual([]);
    const states = lines.map((l) => JSON.parse(l) as { type: string; state?: { stream?: { stream_state?: unknown } } }).filter((m) => m.type === 'STATE');
    expect(states.map((m) => m.state?.stream?.stream_state)).toEqual([{ id: 1 }]);
  });
});
