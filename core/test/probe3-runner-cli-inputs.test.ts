/**
 * Files a user hands to the CLI are checked before they are used, with one clear `config`
 * error (exit 2) and, on stdout, only valid Airbyte messages:
 *
 * - a state file (`tributary state set`, `tributary read --state`) is checked with the schema
 *   the state stores load a stored state with. Before, `state set` stored a `stream_state`
 *   that is not an object, and every later sync of the connection refused the stored state as
 *   unreadable; malformed messages failed as "Unexpected error" (exit 1).
 * - a STATE message on `tributary write`'s stdin is checked the same way; a malformed one
 *   failed as "The sync failed: Cannot read properties of undefined" (exit 1), and a LEGACY
 *   one was read as GLOBAL.
 * - a configured catalog (`tributary read --catalog`) is checked for its shape and against the
 *   streams the source discovered. Before, a malformed one failed inside the source as
 *   "Unexpected error: Cannot read properties of undefined" (exit 1).
 *
 * The CLI runs as a child process (the built `bin/tributary.js`) with the sample source.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));
const SOURCE_CONFIG = { seed: 3, counts: { companies: 2, contacts: 2, deals: 1, activities: 1 }, checkpoint_every: 1 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-cli-inputs-'));
  await writeFile(join(dir, 'source.json'), JSON.stringify(SOURCE_CONFIG));
  await writeFile(
    join(dir, 'sync.yaml'),
    ['connection: inputs', `source: { connector: sample, config: ${JSON.stringify(SOURCE_CONFIG)} }`, 'destination: { connector: local, config: { directory: ./out } }'].join('\n'),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in `dir` with `input` on stdin; never rejects (a non-zero exit is a result). */
function cli(args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, TRIBUTARY_DEBUG: '' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

function expectValidAirbyteLines(stdout: string): void {
  for (const line of stdout.split('\n').filter((l) => l.trim() !== '')) expect(validateAirbyteMessage(line)).toEqual([]);
}

async function file(name: string, value: unknown): Promise<string> {
  await writeFile(join(dir, name), JSON.stringify(value));
  return name;
}

describe('tributary state set / read --state: state files are checked as the stores check a stored state', () => {
  it('state set refuses a stream_state that is not an object (exit 2) and keeps the stored state loadable', async () => {
    const good = await file('good-state.json', [{ type: 'STREAM', stream: { stream_descriptor: { name: 'contacts' }, stream_state: { cursor: 'x' } } }]);
    expect((await cli(['state', 'set', '--sync', 'sync.yaml', '--file', good])).code).toBe(0);
    const bad = await file('string-state.json', [{ type: 'STREAM', stream: { stream_descriptor: { name: 'contacts' }, stream_state: 'abc' } }]);
    const set = await cli(['state', 'set', '--sync', 'sync.yaml', '--file', bad]);
    expect(set.stderr).toContain('state.0.stream.stream_state must be object');
    expect(set.code).toBe(2);
    const show = await cli(['state', 'show', '--sync', 'sync.yaml']);
    expect(show.stderr).toBe('');
    expect(JSON.parse(show.stdout)).toEqual([{ type: 'STREAM', stream: { stream_descriptor: { name: 'contacts' }, stream_state: { cursor: 'x' } } }]);
  });

  it.each([
    ['a STREAM message without stream_descriptor', [{ type: 'STREAM', stream: {} }], 'state.0.stream.stream_descriptor is required'],
    ['a GLOBAL message without stream_states', { type: 'GLOBAL', global: { shared_state: {} } }, 'state.0.global.stream_states is required'],
    ['a LEGACY message', [{ type: 'LEGACY', data: {} }], 'state.0.type must be equal to one of the allowed values'],
  ])('state set and read --state refuse %s with a config error naming the problem', async (_what, value, problem) => {
    const name = await file('malformed-state.json', value);
    const set = await cli(['state', 'set', '--sync', 'sync.yaml', '--file', name]);
    expect(set.stderr).toContain(problem);
    expect(set.stderr).not.toContain('Unexpected error');
    expect(set.code).toBe(2);
    const read = await cli(['read', 'sample', '--config', 'source.json', '--state', name]);
    expect(read.stderr).toContain(problem);
    expect(read.code).toBe(2);
    expectValidAirbyteLines(read.stdout);
  });
});

describe('tributary write: STATE messages on stdin are checked as the stores check a stored state', () => {
  const catalog = {
    streams: [
      {
        stream: { name: 'contacts', json_schema: { type: 'object', properties: { id: { type: 'string' } } }, supported_sync_modes: ['incremental'] },
        sync_mode: 'incremental',
        destination_sync_mode: 'append',
      },
    ],
  };
  const record = JSON.stringify({ type: 'RECORD', record: { stream: 'contacts', data: { id: 'c1' }, emitted_at: 1 } });

  it.each([
    ['a STREAM state without stream_descriptor', { type: 'STREAM', stream: {} }, 'stdin line 2 must hold Airbyte STATE messages of type STREAM or GLOBAL: state.0.stream.stream_descriptor is required'],
    ['a GLOBAL state without stream_states', { type: 'GLOBAL', global: {} }, 'state.0.global.stream_states is required'],
    ['a LEGACY state', { type: 'LEGACY', data: { cursor: 1 } }, 'state.0.type must be equal to one of the allowed values'],
  ])('refuses %s with a config error naming the line (exit 2), echoing no STATE', async (_what, state, message) => {
    await file('write-catalog.json', catalog);
    await file('write-config.json', { directory: './write-out' });
    const input = `${record}\n${JSON.stringify({ type: 'STATE', state })}\n`;
    const write = await cli(['write', 'local', '--config', 'write-config.json', '--catalog', 'write-catalog.json'], input);
    expect(write.stderr).toContain(message);
    expect(write.stderr).not.toContain('Cannot read properties');
    expect(write.code).toBe(2);
    expectValidAirbyteLines(write.stdout);
    expect(write.stdout).not.toContain('"STATE"');
  });

  it('echoes a valid GLOBAL state once committed', async () => {
    await file('write-catalog.json', catalog);
    await file('write-config.json', { directory: './write-out' });
    const state = { type: 'GLOBAL', global: { shared_state: { lsn: 7 }, stream_states: [{ stream_descriptor: { name: 'contacts' }, stream_state: { cursor: 'c1' } }] } };
    const write = await cli(['write', 'local', '--config', 'write-config.json', '--catalog', 'write-catalog.json'], `${record}\n${JSON.stringify({ type: 'STATE', state })}\n`);
    expect(write.code).toBe(0);
    expectValidAirbyteLines(write.stdout);
    expect(write.stdout).toContain('"shared_state":{"lsn":7}');
  });
});

describe('tributary read --catalog: the catalog is checked before the source reads', () => {
  const contacts = { name: 'contacts', json_schema: { type: 'object' }, supported_sync_modes: ['full_refresh', 'incremental'] };

  it.each([
    ['an object without streams', {}, 'catalog.streams is required'],
    ['an array', [], 'catalog must be object'],
    ['a stream without sync_mode', { streams: [{ stream: contacts, destination_sync_mode: 'append' }] }, 'catalog.streams.0.sync_mode is required'],
    ['no stream', { streams: [] }, 'the catalog catalog.json is empty'],
    [
      'a stream the source does not offer',
      { streams: [{ stream: { ...contacts, name: 'nosuch' }, sync_mode: 'full_refresh', destination_sync_mode: 'append' }] },
      'selects stream "nosuch", which the source does not offer. The source offers: companies, contacts, deals, activities',
    ],
    [
      'a stream in a namespace the source does not have',
      { streams: [{ stream: { ...contacts, namespace: 'crm' }, sync_mode: 'full_refresh', destination_sync_mode: 'append' }] },
      'selects stream "contacts" in namespace "crm", which the source does not offer',
    ],
  ])('refuses %s: exit 2, a config error, no RECORD', async (_what, value, message) => {
    await file('catalog.json', value);
    const read = await cli(['read', 'sample', '--config', 'source.json', '--catalog', 'catalog.json']);
    expect(read.stderr).toContain(message);
    expect(read.stderr).not.toContain('Unexpected error');
    expect(read.code).toBe(2);
    expectValidAirbyteLines(read.stdout);
    expect(read.stdout).not.toContain('"RECORD"');
  });

  it('reads a valid catalog of a discovered stream, whatever its destination_sync_mode', async () => {
    await file('catalog.json', { streams: [{ stream: contacts, sync_mode: 'incremental', destination_sync_mode: 'update' }] });
    const read = await cli(['read', 'sample', '--config', 'source.json', '--catalog', 'catalog.json']);
    expect(read.stderr).toBe('');
    expect(read.code).toBe(0);
    expectValidAirbyteLines(read.stdout);
    expect(read.stdout.split('\n').filter((l) => l.includes('"RECORD"'))).toHaveLength(2);
  });
});
