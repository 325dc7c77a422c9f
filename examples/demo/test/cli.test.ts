/**
 * End-to-end tests of the `tributary` CLI as a real child process: `node core/bin/tributary.js`
 * runs the BUILT code (`npx tsc -b` first; `npm test` builds before vitest). Every child runs
 * in a fresh temporary directory, never in the repository; the installed connectors are
 * found through the CLI's own node_modules (source `sample`, destination `local`, writer
 * `sample-crm`). Protocol output is checked against the real Airbyte protocol schema.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import type { AirbyteMessage, AirbyteStateMessage, ConfiguredAirbyteCatalog } from '@tributary/core';
import { validateAirbyteDefinition, validateAirbyteMessage } from '@tributary/conformance';

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(REPO, 'core', 'bin', 'tributary.js');

/** A small dataset: 14 records, a checkpoint every 2 records, so streams have several STATEs. */
const COUNTS = { companies: 3, contacts: 5, deals: 2, activities: 4 } as const;
type StreamName = keyof typeof COUNTS;
const STREAMS = Object.keys(COUNTS) as StreamName[];
const TOTAL = STREAMS.reduce((n, s) => n + COUNTS[s], 0);
const SOURCE_CONFIG = { seed: 7, counts: COUNTS, checkpoint_every: 2 };
/** Primary key field and id prefix of each sample stream (ids are `<prefix><10 digits>`, from 1). */
const ID_FIELD: Record<StreamName, string> = { companies: 'id', contacts: 'id', deals: 'id', activities: 'event_id' };
const ID_PREFIX: Record<StreamName, string> = { companies: 'co_', contacts: 'ct_', deals: 'dl_', activities: 'ev_' };

const SECRET = 'sk-live-0123456789abcdef';
const MASK = '**********';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout split into lines (without the empty piece after the final newline). */
  lines: string[];
  /** The stdout lines that parse as JSON, as Airbyte messages (validity is checked separately). */
  messages: AirbyteMessage[];
}

interface RunOptions {
  cwd: string;
  /** Added to the environment; `undefined` removes a variable. TRIBUTARY_* and NODE_OPTIONS are never inherited. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. */
  input?: string;
}

interface RunningCli {
  child: ChildProcessWithoutNullStreams;
  /** Called synchronously for every complete stdout line as it arrives. */
  onLine(listener: (line: string) => void): void;
  /** Resolves with the first stdout line (already seen or future) matching `predicate`. */
  waitForLine(predicate: (line: string) => boolean, what: string): Promise<string>;
  result: Promise<CliResult>;
}

const CHILD_TIMEOUT_MS = 60_000;
const tempDirs: string[] = [];

async function workDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-cli-'));
  tempDirs.push(dir);
  return dir;
}

function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TRIBUTARY_') && key !== 'NODE_OPTIONS') env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function parseMessages(lines: string[]): AirbyteMessage[] {
  const out: AirbyteMessage[] = [];
  for (const line of lines) {
    try {
      out.push(JSON.parse(line) as AirbyteMessage);
    } catch {
      // Not JSON: reported by expectValidAirbyte.
    }
  }
  return out;
}

/** Spawns `command args` and collects its output; the process is killed after CHILD_TIMEOUT_MS. */
function startProcess(command: string, args: string[], options: RunOptions): RunningCli {
  const child = spawn(command, args, { cwd: options.cwd, env: cliEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const seen: string[] = [];
  const listeners: Array<(line: string) => void> = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    partial += chunk;
    let newline: number;
    while ((newline = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      seen.push(line);
      for (const listener of listeners) listener(line);
    }
  });
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  // The child may exit without reading stdin (e.g. on a usage error).
  child.stdin.on('error', () => {});

  const result = new Promise<CliResult>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not exit within ${CHILD_TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, CHILD_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = splitLines(stdout);
      resolvePromise({ code, stdout, stderr, lines, messages: parseMessages(lines) });
    });
  });

  return {
    child,
    onLine: (listener) => listeners.push(listener),
    waitForLine: (predicate, what) =>
      new Promise<string>((resolveLine, reject) => {
        const found = seen.find(predicate);
        if (found !== undefined) return resolveLine(found);
        listeners.push((line) => {
          if (predicate(line)) resolveLine(line);
        });
        void result.then(
          (r) => reject(new Error(`the CLI exited (code ${r.code}) before printing ${what}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)),
          reject,
        );
      }),
    result,
  };
}

function startCli(args: string[], options: RunOptions): RunningCli {
  return startProcess(process.execPath, [CLI, ...args], options);
}

/** Runs `tributary <args>` to completion. */
async function runCli(args: string[], options: RunOptions): Promise<CliResult> {
  const running = startCli(args, options);
  running.child.stdin.end(options.input ?? '');
  return running.result;
}

/** Every stdout line is a JSON Airbyte message valid against the protocol schema. */
function expectValidAirbyte(result: CliResult): void {
  const problems = result.lines.flatMap((line, i) => validateAirbyteMessage(line).map((p) => `line ${i + 1}: ${p} in ${line.slice(0, 200)}`));
  expect(problems).toEqual([]);
  expect(result.messages).toHaveLength(result.lines.length);
}

/** Exit `code`, stderr starts with `error: ` and matches `pattern`, and carries no stack trace. */
function expectCleanError(result: CliResult, code: number, pattern: RegExp): void {
  expect({ code: result.code, stderr: result.stderr }).toMatchObject({ code, stderr: expect.stringMatching(/^error: \S/) });
  expect(result.stderr).toMatch(pattern);
  expect(splitLines(result.stderr).filter((line) => /^\s+at\s/.test(line))).toEqual([]);
}

function ofType<T extends AirbyteMessage['type']>(messages: AirbyteMessage[], type: T): Array<Extract<AirbyteMessage, { type: T }>> {
  return messages.filter((m): m is Extract<AirbyteMessage, { type: T }> => m.type === type);
}

type StreamStateMessage = Extract<AirbyteStateMessage, { type: 'STREAM' }>;

function streamStates(messages: AirbyteMessage[]): StreamStateMessage[] {
  return ofType(messages, 'STATE')
    .map((m) => m.state)
    .filter((s): s is StreamStateMessage => s.type === 'STREAM');
}

/** Sum of `recordCount` of the STATE messages, per stream, for `sourceStats` or `destinationStats`. */
function statsByStream(messages: AirbyteMessage[], which: 'sourceStats' | 'destinationStats'): Record<string, number> {
  const sums: Record<string, number> = Object.fromEntries(STREAMS.map((s) => [s, 0]));
  for (const state of streamStates(messages)) {
    const name = state.stream.stream_descriptor.name;
    sums[name] = (sums[name] ?? 0) + (state[which]?.recordCount ?? 0);
  }
  return sums;
}

/** The last STATE message of each stream. */
function finalStates(messages: AirbyteMessage[]): Map<string, StreamStateMessage> {
  const last = new Map<string, StreamStateMessage>();
  for (const state of streamStates(messages)) last.set(state.stream.stream_descriptor.name, state);
  return last;
}

function expectedIds(stream: StreamName, count: number = COUNTS[stream]): string[] {
  return Array.from({ length: count }, (_, i) => `${ID_PREFIX[stream]}${String(i + 1).padStart(10, '0')}`);
}

function idOf(stream: StreamName, data: unknown): string {
  return String((data as Record<string, unknown>)[ID_FIELD[stream]]);
}

/** The records of a JSON lines file (missing file: none). */
async function readJsonLines(path: string): Promise<Array<Record<string, unknown>>> {
  if (!existsSync(path)) return [];
  return splitLines(await readFile(path, 'utf8')).map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function outputIds(outDir: string): Promise<Record<string, string[]>> {
  const ids: Record<string, string[]> = {};
  for (const stream of STREAMS) ids[stream] = (await readJsonLines(join(outDir, `${stream}.jsonl`))).map((r) => idOf(stream, r));
  return ids;
}

const allExpectedIds = (): Record<string, string[]> => Object.fromEntries(STREAMS.map((s) => [s, expectedIds(s)]));

/** Every regular file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

interface SyncFileOptions {
  connection: string;
  sourceConfig?: Record<string, unknown>;
  /** Destination directory, relative to the sync file (default `./out`). */
  directory?: string;
  streams?: Array<Record<string, unknown>>;
  sourceConnector?: string;
}

/** Writes `<dir>/<connection>.yaml` (sample → local) and returns its path. */
async function writeSyncFile(dir: string, options: SyncFileOptions): Promise<string> {
  const path = join(dir, `${options.connection}.yaml`);
  const file = {
    connection: options.connection,
    source: { connector: options.sourceConnector ?? 'sample', config: options.sourceConfig ?? SOURCE_CONFIG },
    destination: { connector: 'local', config: { directory: options.directory ?? './out' } },
    ...(options.streams ? { streams: options.streams } : {}),
    // Commit on every checkpoint, so STATE messages follow the data closely.
    batching: { commit_interval_ms: 0 },
  };
  await writeFile(path, toYaml(file));
  return path;
}

async function writeJson(path: string, value: unknown): Promise<string> {
  await writeFile(path, JSON.stringify(value, null, 2));
  return path;
}

/** A configured catalog of every discovered stream: incremental, append_dedup on its primary key. */
async function incrementalCatalog(dir: string, configPath: string): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await runCli(['discover', 'sample', '--config', configPath], { cwd: dir });
  expect(discovered.code).toBe(0);
  const [message] = ofType(discovered.messages, 'CATALOG');
  if (!message) throw new Error(`discover printed no CATALOG:\n${discovered.stdout}\n${discovered.stderr}`);
  return {
    streams: message.catalog.streams.map((stream) => ({
      stream,
      sync_mode: 'incremental',
      destination_sync_mode: 'append_dedup',
      ...(stream.default_cursor_field ? { cursor_field: stream.default_cursor_field } : {}),
      ...(stream.source_defined_primary_key ? { primary_key: stream.source_defined_primary_key } : {}),
    })),
  };
}

beforeAll(() => {
  if (!existsSync(join(REPO, 'core', 'dist', 'cli', 'main.js'))) {
    throw new Error('The CLI is not built: run `npx tsc -b` at the repository root (npm test builds first)');
  }
});

afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

// ---------------------------------------------------------------------------------------
// 1. spec / check / discover / read
// ---------------------------------------------------------------------------------------

describe('tributary spec/check/discover/read: Airbyte protocol on stdout', () => {
  let dir: string;
  let configPath: string;

  beforeAll(async () => {
    dir = await workDir();
    configPath = await writeJson(join(dir, 'source.json'), SOURCE_CONFIG);
  });

  it('spec sample prints one valid SPEC with the secret field marked', async () => {
    const result = await runCli(['spec', 'sample'], { cwd: dir });
    expect(result.code).toBe(0);
    expectValidAirbyte(result);
    expect(result.messages.map((m) => m.type)).toEqual(['SPEC']);
    const [spec] = ofType(result.messages, 'SPEC');
    const properties = spec!.spec.connectionSpecification.properties as Record<string, Record<string, unknown>>;
    expect(properties.api_key).toMatchObject({ type: 'string', airbyte_secret: true });
    expect(spec!.spec.supportsIncremental).toBe(true);
  });

  it('check: SUCCEEDED for a good config; FAILED and a non-zero exit for a refused api_key', async () => {
    const good = await runCli(['check', 'sample', '--config', configPath], { cwd: dir });
    expect(good.code).toBe(0);
    expectValidAirbyte(good);
    expect(ofType(good.messages, 'CONNECTION_STATUS').map((m) => m.connectionStatus.status)).toEqual(['SUCCEEDED']);

    const refusedPath = await writeJson(join(dir, 'refused.json'), { api_key: 'invalid' });
    const refused = await runCli(['check', 'sample', '--config', refusedPath], { cwd: dir });
    expect(refused.code).not.toBe(0);
    expectValidAirbyte(refused);
    const statuses = ofType(refused.messages, 'CONNECTION_STATUS').map((m) => m.connectionStatus);
    expect(statuses).toEqual([{ status: 'FAILED', message: expect.stringMatching(/api_key/) }]);
  });

  it('discover prints a valid CATALOG of the four sample streams', async () => {
    const result = await runCli(['discover', 'sample', '--config', configPath], { cwd: dir });
    expect(result.code).toBe(0);
    expectValidAirbyte(result);
    const catalogs = ofType(result.messages, 'CATALOG');
    expect(catalogs).toHaveLength(1);
    expect(catalogs[0]!.catalog.streams.map((s) => s.name)).toEqual(STREAMS);
    for (const stream of catalogs[0]!.catalog.streams) expect(stream.supported_sync_modes).toContain('incremental');
  });

  it('read emits each stream\'s RECORDs followed by STATEs whose sourceStats count the records since the previous STATE', async () => {
    const result = await runCli(['read', 'sample', '--config', configPath], { cwd: dir });
    expect(result.code).toBe(0);
    expectValidAirbyte(result);

    const seen = new Map<string, { ids: string[]; sinceState: number; lastRecordAt: number; lastStateAt: number; lastStateId?: unknown }>();
    const problems: string[] = [];
    result.messages.forEach((message, at) => {
      if (message.type === 'RECORD') {
        const s = seen.get(message.record.stream) ?? { ids: [], sinceState: 0, lastRecordAt: -1, lastStateAt: -1 };
        s.ids.push(idOf(message.record.stream as StreamName, message.record.data));
        s.sinceState++;
        s.lastRecordAt = at;
        seen.set(message.record.stream, s);
      } else if (message.type === 'STATE' && message.state.type === 'STREAM') {
        const name = message.state.stream.stream_descriptor.name;
        const s = seen.get(name) ?? { ids: [], sinceState: 0, lastRecordAt: -1, lastStateAt: -1 };
        if (message.state.sourceStats?.recordCount !== s.sinceState) {
          problems.push(`STATE at line ${at + 1} of ${name}: sourceStats.recordCount ${message.state.sourceStats?.recordCount}, ${s.sinceState} RECORDs since the previous STATE`);
        }
        s.sinceState = 0;
        s.lastStateAt = at;
        s.lastStateId = message.state.stream.stream_state?.id;
        seen.set(name, s);
      }
    });
    expect(problems).toEqual([]);
    expect([...seen.keys()]).toEqual(STREAMS);
    for (const stream of STREAMS) {
      const s = seen.get(stream)!;
      expect(s.ids, stream).toEqual(expectedIds(stream));
      // Every record is covered by a later STATE, which names the last record.
      expect(s.sinceState, stream).toBe(0);
      expect(s.lastStateAt, stream).toBeGreaterThan(s.lastRecordAt);
      expect(s.lastStateId, stream).toBe(expectedIds(stream).at(-1));
    }
    // Streams are read one after the other: all of a stream's messages precede the next stream's records.
    const order = ofType(result.messages, 'RECORD').map((m) => m.record.stream);
    expect(order).toEqual(STREAMS.flatMap((s) => Array<string>(COUNTS[s]).fill(s)));
  });

  it('read --state with the final STATE messages yields no RECORD for incremental streams; a mid-stream STATE resumes after it', async () => {
    const catalogPath = await writeJson(join(dir, 'incremental-catalog.json'), await incrementalCatalog(dir, configPath));
    const first = await runCli(['read', 'sample', '--config', configPath, '--catalog', catalogPath], { cwd: dir });
    expect(first.code).toBe(0);
    expectValidAirbyte(first);
    expect(ofType(first.messages, 'RECORD')).toHaveLength(TOTAL);

    const finals = finalStates(first.messages);
    expect([...finals.keys()]).toEqual(STREAMS);
    const statePath = await writeJson(join(dir, 'final-state.json'), [...finals.values()]);
    const resumed = await runCli(['read', 'sample', '--config', configPath, '--catalog', catalogPath, '--state', statePath], { cwd: dir });
    expect(resumed.code).toBe(0);
    expectValidAirbyte(resumed);
    expect(ofType(resumed.messages, 'RECORD')).toEqual([]);
    // The position is kept: each stream ends at the state it started from.
    for (const [name, state] of finalStates(resumed.messages)) expect(state.stream.stream_state, name).toEqual(finals.get(name)!.stream.stream_state);

    // Control: the state is really applied. contacts resumes after its first checkpoint (2 records).
    const firstContactsState = streamStates(first.messages).find((s) => s.stream.stream_descriptor.name === 'contacts')!;
    expect(firstContactsState.stream.stream_state?.id).toBe(expectedIds('contacts')[1]);
    const midPath = await writeJson(join(dir, 'mid-state.json'), [...finals.values()].map((s) => (s.stream.stream_descriptor.name === 'contacts' ? firstContactsState : s)));
    const partial = await runCli(['read', 'sample', '--config', configPath, '--catalog', catalogPath, '--state', midPath], { cwd: dir });
    expect(partial.code).toBe(0);
    expectValidAirbyte(partial);
    expect(ofType(partial.messages, 'RECORD').map((m) => idOf(m.record.stream as StreamName, m.record.data))).toEqual(expectedIds('contacts').slice(2));
  });
});

// ---------------------------------------------------------------------------------------
// 2. write
// ---------------------------------------------------------------------------------------

describe('tributary write: Airbyte messages on stdin → local files', () => {
  it('echoes each STATE only once the records before it are committed, and the files hold the records', async () => {
    const dir = await workDir();
    const configPath = await writeJson(join(dir, 'source.json'), SOURCE_CONFIG);
    const catalogPath = await writeJson(join(dir, 'catalog.json'), await incrementalCatalog(dir, configPath));
    const outDir = join(dir, 'out');
    const destPath = await writeJson(join(dir, 'dest.json'), { directory: outDir });

    const read = await runCli(['read', 'sample', '--config', configPath, '--catalog', catalogPath], { cwd: dir });
    expect(read.code).toBe(0);
    const input = read.lines;
    const inputRecords = ofType(read.messages, 'RECORD');
    const inputFinals = finalStates(read.messages);

    /** Ids of `stream` within the committed length the local destination's manifest records. */
    const committedIds = (stream: StreamName): string[] => {
      const manifestPath = join(outDir, '_tributary', 'manifest.json');
      if (!existsSync(manifestPath)) return [];
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: Record<string, number> };
      const length = manifest.files[`${stream}.jsonl`] ?? 0;
      const text = readFileSync(join(outDir, `${stream}.jsonl`)).subarray(0, length).toString('utf8');
      return splitLines(text).map((line) => idOf(stream, JSON.parse(line)));
    };

    const writer = startCli(['write', 'local', '--config', destPath, '--catalog', catalogPath], { cwd: dir });
    // At the moment a STATE line appears, every record up to the one it names must be committed.
    const violations: string[] = [];
    let statesSeen = 0;
    writer.onLine((line) => {
      const [message] = parseMessages([line]); // non-JSON lines fail expectValidAirbyte below
      if (message?.type !== 'STATE' || message.state.type !== 'STREAM') return;
      statesSeen++;
      const stream = message.state.stream.stream_descriptor.name as StreamName;
      const upTo = expectedIds(stream).indexOf(String(message.state.stream.stream_state?.id));
      const committed = new Set(committedIds(stream));
      const missing = expectedIds(stream).slice(0, upTo + 1).filter((id) => !committed.has(id));
      if (upTo < 0 || missing.length > 0) violations.push(`STATE ${line} printed before ${missing.join(', ') || 'its record'} was committed`);
    });

    // Phase 1: companies and contacts, then wait (stdin open) until their final STATE is echoed.
    const firstDeals = input.findIndex((line) => line.includes('"deals"'));
    writer.child.stdin.write(input.slice(0, firstDeals).join('\n') + '\n');
    const contactsFinal = JSON.stringify(inputFinals.get('contacts')!.stream.stream_state);
    await writer.waitForLine((line) => line.includes('"STATE"') && line.includes(contactsFinal), 'the final contacts STATE');
    expect(await outputIds(outDir)).toMatchObject({ companies: expectedIds('companies'), contacts: expectedIds('contacts') });
    // Phase 2: the rest.
    writer.child.stdin.end(input.slice(firstDeals).join('\n') + '\n');
    const result = await writer.result;

    expect(result.code, result.stderr).toBe(0);
    expectValidAirbyte(result);
    expect(violations).toEqual([]);
    expect(statesSeen).toBeGreaterThanOrEqual(STREAMS.length);
    // The last echoed STATE of each stream is the last one read, and the stats add up to the records.
    for (const [name, state] of finalStates(result.messages)) expect(state.stream.stream_state, name).toEqual(inputFinals.get(name)!.stream.stream_state);
    expect([...finalStates(result.messages).keys()].sort()).toEqual([...STREAMS].sort());
    expect(statsByStream(result.messages, 'destinationStats')).toEqual(COUNTS);
    // The files hold exactly the records, in order.
    for (const stream of STREAMS) {
      const expected = inputRecords.filter((m) => m.record.stream === stream).map((m) => m.record.data);
      expect(await readJsonLines(join(outDir, `${stream}.jsonl`)), stream).toEqual(expected);
    }
  });
});

// ---------------------------------------------------------------------------------------
// 3. sync and state
// ---------------------------------------------------------------------------------------

describe('tributary sync and state', () => {
  it('sync --json: valid Airbyte messages with stats, the files hold every record; a second run commits nothing new', async () => {
    const dir = await workDir();
    const file = await writeSyncFile(dir, { connection: 'crm-to-files' });
    const outDir = join(dir, 'out');

    const first = await runCli(['sync', file, '--json'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expectValidAirbyte(first);
    const states = streamStates(first.messages);
    expect(states.length).toBeGreaterThanOrEqual(STREAMS.length);
    for (const state of states) {
      expect(state.sourceStats?.recordCount).toEqual(expect.any(Number));
      expect(state.destinationStats?.recordCount).toEqual(expect.any(Number));
    }
    expect(statsByStream(first.messages, 'sourceStats')).toEqual(COUNTS);
    expect(statsByStream(first.messages, 'destinationStats')).toEqual(COUNTS);
    expect(ofType(first.messages, 'LOG').map((m) => m.log.message)).toContainEqual(expect.stringMatching(`^completed: ${TOTAL} records committed`));
    expect(await outputIds(outDir)).toEqual(allExpectedIds());
    const filesAfterFirst = await Promise.all(STREAMS.map((s) => readFile(join(outDir, `${s}.jsonl`), 'utf8')));

    const second = await runCli(['sync', file, '--json'], { cwd: dir });
    expect(second.code, second.stderr).toBe(0);
    expectValidAirbyte(second);
    expect(statsByStream(second.messages, 'destinationStats')).toEqual(Object.fromEntries(STREAMS.map((s) => [s, 0])));
    expect(ofType(second.messages, 'LOG').map((m) => m.log.message)).toContainEqual(expect.stringMatching(/^completed: 0 records committed/));
    expect(await Promise.all(STREAMS.map((s) => readFile(join(outDir, `${s}.jsonl`), 'utf8')))).toEqual(filesAfterFirst);
  });

  it('state show prints the committed STATE messages; reset makes the next sync re-read everything; set round-trips', async () => {
    const dir = await workDir();
    const connection = 'crm-state';
    const file = await writeSyncFile(dir, { connection });
    const outDir = join(dir, 'out');

    const first = await runCli(['sync', file, '--json'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    const committed = finalStates(first.messages);

    // show: a JSON array of Airbyte STATE messages, equal to the last committed ones.
    const shown = await runCli(['state', 'show', connection, '--sync', file], { cwd: dir });
    expect(shown.code, shown.stderr).toBe(0);
    const shownStates = JSON.parse(shown.stdout) as AirbyteStateMessage[];
    expect(shownStates.flatMap((s) => validateAirbyteDefinition('AirbyteStateMessage', s))).toEqual([]);
    expect(shownStates.flatMap((s) => validateAirbyteMessage({ type: 'STATE', state: s }))).toEqual([]);
    expect(shownStates).toEqual([...committed.values()].map(({ type, stream }) => ({ type, stream })));

    const listed = await runCli(['state', 'list', '--sync', file], { cwd: dir });
    expect(splitLines(listed.stdout)).toEqual([connection]);

    // reset: no state any more; the next sync reads every record again (and the keyed files stay exact).
    const reset = await runCli(['state', 'reset', connection, '--sync', file], { cwd: dir });
    expect(reset.code, reset.stderr).toBe(0);
    const afterReset = await runCli(['state', 'show', connection, '--sync', file], { cwd: dir });
    // No state is a normal condition: the empty list of STATE messages, exit 0, a note on stderr.
    expect(afterReset.code, afterReset.stderr).toBe(0);
    expect(JSON.parse(afterReset.stdout)).toEqual([]);
    expect(afterReset.stderr).toMatch(/no state/);
    const reread = await runCli(['sync', file, '--json'], { cwd: dir });
    expect(reread.code, reread.stderr).toBe(0);
    expectValidAirbyte(reread);
    expect(statsByStream(reread.messages, 'sourceStats')).toEqual(COUNTS);
    expect(await outputIds(outDir)).toEqual(allExpectedIds());

    // set: contacts back to its position after 2 records, the other streams at their end.
    const midContacts = await runCli(['read', 'sample', '--config', await writeJson(join(dir, 'source.json'), SOURCE_CONFIG)], { cwd: dir });
    const contactsAfterTwo = streamStates(midContacts.messages).find((s) => s.stream.stream_descriptor.name === 'contacts')!;
    expect(contactsAfterTwo.stream.stream_state?.id).toBe(expectedIds('contacts')[1]);
    const toSet: AirbyteStateMessage[] = [...committed.values()].map((s) =>
      s.stream.stream_descriptor.name === 'contacts'
        ? { type: 'STREAM', stream: contactsAfterTwo.stream }
        : { type: 'STREAM', stream: s.stream },
    );
    const setPath = await writeJson(join(dir, 'set-state.json'), toSet);
    const set = await runCli(['state', 'set', connection, '--sync', file, '--file', setPath], { cwd: dir });
    expect(set.code, set.stderr).toBe(0);
    const shownAfterSet = await runCli(['state', 'show', connection, '--sync', file], { cwd: dir });
    expect(shownAfterSet.code, shownAfterSet.stderr).toBe(0);
    expect(JSON.parse(shownAfterSet.stdout)).toEqual(toSet);

    const resumed = await runCli(['sync', file, '--json'], { cwd: dir });
    expect(resumed.code, resumed.stderr).toBe(0);
    expectValidAirbyte(resumed);
    expect(statsByStream(resumed.messages, 'sourceStats')).toEqual({ companies: 0, contacts: COUNTS.contacts - 2, deals: 0, activities: 0 });
    expect(await outputIds(outDir)).toEqual(allExpectedIds());
  });

  it('a primary_key of the sync file naming declared fields, nested ones included, is accepted in place of the source-defined key', async () => {
    const dir = await workDir();
    const file = await writeSyncFile(dir, {
      connection: 'chosen-keys',
      streams: [
        { name: 'contacts', primary_key: [['email']] },
        { name: 'activities', primary_key: [['event_id'], ['properties', 'channel']] },
      ],
    });
    const result = await runCli(['sync', file, '--json'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expectValidAirbyte(result);
    expect(statsByStream(result.messages, 'destinationStats')).toMatchObject({ contacts: COUNTS.contacts, activities: COUNTS.activities });
    expect(await outputIds(join(dir, 'out'))).toMatchObject({ contacts: expectedIds('contacts'), activities: expectedIds('activities') });
    for (const stream of ['contacts', 'activities']) expect(await readJsonLines(join(dir, 'out', '_quarantine', `${stream}.jsonl`))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// 4. secrets
// ---------------------------------------------------------------------------------------

describe('secrets from ${ENV} never leave the process', () => {
  const withKey = { TRIBUTARY_TEST_KEY: SECRET };
  const secretConfig = { ...SOURCE_CONFIG, api_key: '${TRIBUTARY_TEST_KEY}' };

  it('appears in no output, state file, data file or quarantine file', async () => {
    const dir = await workDir();
    // The quarantine path is exercised too: without companies every contact's company_id is
    // null, so contacts keyed by (id, company_id) lack part of their key and the destination
    // quarantines them (and the runtime logs a warning); deals are stored.
    const file = await writeSyncFile(dir, {
      connection: 'secret-sync',
      sourceConfig: { ...secretConfig, counts: { ...COUNTS, companies: 0 } },
      streams: [{ name: 'contacts', primary_key: [['id'], ['company_id']] }, { name: 'deals' }],
    });
    const results = [await runCli(['sync', file, '--json'], { cwd: dir, env: withKey })];
    expect(results[0]!.code, results[0]!.stderr).toBe(0);
    expectValidAirbyte(results[0]!);
    expect(ofType(results[0]!.messages, 'LOG').map((m) => m.log.message)).toContainEqual(
      expect.stringMatching(new RegExp(`records committed, ${COUNTS.contacts} quarantined`)),
    );
    const quarantined = await readJsonLines(join(dir, 'out', '_quarantine', 'contacts.jsonl'));
    expect(quarantined.map((q) => [q.reason, idOf('contacts', q.record)])).toEqual(
      expectedIds('contacts').map((id) => ['primary key field company_id is missing', id]),
    );
    expect(await outputIds(join(dir, 'out'))).toMatchObject({ contacts: [], deals: expectedIds('deals') });

    results.push(await runCli(['sync', file], { cwd: dir, env: withKey }));
    results.push(await runCli(['state', 'show', 'secret-sync', '--sync', file], { cwd: dir, env: withKey }));
    // The connector commands, with the key in a config file.
    const configPath = await writeJson(join(dir, 'source.json'), { ...SOURCE_CONFIG, api_key: SECRET });
    for (const command of ['check', 'discover', 'read']) results.push(await runCli([command, 'sample', '--config', configPath], { cwd: dir }));
    for (const result of results) {
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).not.toContain(SECRET);
      expect(result.stderr).not.toContain(SECRET);
    }

    const written = (await filesUnder(dir)).filter((path) => path !== configPath);
    expect(written.some((path) => path.includes(`${join('.tributary', 'state')}`))).toBe(true);
    expect(written.some((path) => path.includes('_quarantine'))).toBe(true);
    for (const path of written) expect(await readFile(path, 'utf8'), path).not.toContain(SECRET);
  });

  it('a failing sync does not print it either', async () => {
    const dir = await workDir();
    // The destination directory's path contains the secret and cannot be created (a file is
    // in the way), so the error message carries the secret unless it is masked.
    await writeFile(join(dir, `blocked-${SECRET}`), 'a file, not a directory\n');
    const file = await writeSyncFile(dir, { connection: 'secret-fail', sourceConfig: secretConfig, directory: './blocked-${TRIBUTARY_TEST_KEY}/out' });
    for (const args of [['sync', file, '--json'], ['sync', file]]) {
      const result = await runCli(args, { cwd: dir, env: withKey });
      expect(result.code).not.toBe(0);
      expect(result.stdout).not.toContain(SECRET);
      expect(result.stderr).not.toContain(SECRET);
      expect(result.stderr).toMatch(/^error: /);
      // Non-vacuous: the path did reach the output, masked.
      expect(result.stdout + result.stderr).toContain(`blocked-${MASK}`);
    }

    // A protocol command reports errors on stdout too (TRACE): a catalog naming a stream
    // after the secret makes the source's error message echo it.
    const configPath = await writeJson(join(dir, 'source.json'), { ...SOURCE_CONFIG, api_key: SECRET });
    const catalog = await incrementalCatalog(dir, configPath);
    catalog.streams[0]!.stream.name = SECRET;
    const catalogPath = await writeJson(join(dir, 'catalog.json'), catalog);
    const read = await runCli(['read', 'sample', '--config', configPath, '--catalog', catalogPath], { cwd: dir });
    expect(read.code).not.toBe(0);
    expectValidAirbyte(read);
    expect(read.stdout).not.toContain(SECRET);
    expect(read.stderr).not.toContain(SECRET);
    const errors = ofType(read.messages, 'TRACE').flatMap((m) => (m.trace.type === 'ERROR' ? [m.trace.error.message] : []));
    expect(errors).toEqual([expect.stringContaining(`"${MASK}"`)]);
  });

  it('a missing environment variable exits 2 naming the variable', async () => {
    const dir = await workDir();
    const file = await writeSyncFile(dir, { connection: 'secret-missing', sourceConfig: secretConfig });
    const result = await runCli(['sync', file, '--json'], { cwd: dir, env: { TRIBUTARY_TEST_KEY: undefined } });
    expectCleanError(result, 2, /TRIBUTARY_TEST_KEY/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// 5. errors
// ---------------------------------------------------------------------------------------

describe('errors: one clear message on stderr, non-zero exit, no stack trace', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await workDir();
  });

  it('a config field of the wrong type names source config.<field>', async () => {
    const file = await writeSyncFile(dir, { connection: 'bad-config', sourceConfig: { seed: 'seven' } });
    const result = await runCli(['sync', file], { cwd: dir });
    expectCleanError(result, 2, /source config\.seed\b.*integer/);
  });

  it('an unknown connector lists the installed ones', async () => {
    const file = await writeSyncFile(dir, { connection: 'bad-connector', sourceConnector: 'nosuch' });
    const sync = await runCli(['sync', file], { cwd: dir });
    expectCleanError(sync, 2, /Unknown source connector "nosuch"\. Installed sources: (.*, )?sample\b/);

    const spec = await runCli(['spec', 'nosuch'], { cwd: dir });
    expectCleanError(spec, 2, /Unknown connector "nosuch"\. Installed: .*local \(destination\).*sample \(source\).*sample-crm \(writer\)/);
    // The protocol commands also report it on stdout, as a valid TRACE error.
    expectValidAirbyte(spec);
    expect(ofType(spec.messages, 'TRACE').map((m) => m.trace.type)).toEqual(['ERROR']);
  });

  it('an unknown stream in the sync file lists the available streams', async () => {
    const file = await writeSyncFile(dir, { connection: 'bad-stream', streams: [{ name: 'tickets' }] });
    const result = await runCli(['sync', file], { cwd: dir });
    expectCleanError(result, 2, /Unknown stream "tickets"\. The source offers: companies, contacts, deals, activities/);
  });

  it('a primary_key naming no field of the stream is refused before anything is read or written, nested paths included', async () => {
    const own = await workDir();
    const typo = await writeSyncFile(own, { connection: 'bad-key', streams: [{ name: 'companies', primary_key: [['no_such_field']] }] });
    expectCleanError(
      await runCli(['sync', typo], { cwd: own }),
      2,
      /^error: Stream "companies": primary_key no_such_field is not a field of the stream \(its fields: id, tenant_id, name, domain, industry, country, employees, created_at, updated_at\)$/m,
    );
    // One bad component of a composite key is enough; a nested typo lists its parent's fields.
    const nested = await writeSyncFile(own, {
      connection: 'bad-nested-key',
      streams: [{ name: 'contacts' }, { name: 'activities', primary_key: [['event_id'], ['properties', 'chanel']] }],
    });
    expectCleanError(
      await runCli(['sync', nested, '--json'], { cwd: own }),
      2,
      /^error: Stream "activities": primary_key properties\.chanel is not a field of the stream \(fields of properties: channel, value\)$/m,
    );
    expect(existsSync(join(own, 'out'))).toBe(false);
    expect(existsSync(join(own, '.tributary'))).toBe(false);
  });

  it('an unreadable state says so and how to reset it; following the advice works', async () => {
    const connection = 'bad-state';
    const file = await writeSyncFile(dir, { connection });
    const first = await runCli(['sync', file], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    const stateFile = join(dir, '.tributary', 'state', `${connection}.json`);
    expect(existsSync(stateFile)).toBe(true);
    await writeFile(stateFile, '{"version": 1, garbage');

    const broken = await runCli(['sync', file], { cwd: dir });
    expectCleanError(broken, 2, new RegExp(`unreadable[^]*tributary state reset ${connection}`));

    const reset = await runCli(['state', 'reset', connection, '--sync', file], { cwd: dir });
    expect(reset.code, reset.stderr).toBe(0);
    const again = await runCli(['sync', file], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
  });

  it('invalid YAML', async () => {
    const path = join(dir, 'broken.yaml');
    await writeFile(path, 'source: [unclosed\n  connector: : sample\n');
    const result = await runCli(['sync', path], { cwd: dir });
    expectCleanError(result, 2, /broken\.yaml is not valid YAML/);
  });

  it('an unknown command', async () => {
    const result = await runCli(['frobnicate'], { cwd: dir });
    expectCleanError(result, 2, /^error: Unknown command "frobnicate"/);
  });

  it('state set with a missing --file', async () => {
    const result = await runCli(['state', 'set', 'some-connection', '--file', 'missing-state.json'], { cwd: dir });
    expectCleanError(result, 2, /^error: Cannot read state file missing-state\.json/);
    expect(existsSync(join(dir, '.tributary', 'state', 'some-connection.json'))).toBe(false);
  });

  it('read without --config', async () => {
    const result = await runCli(['read', 'sample'], { cwd: dir });
    expectCleanError(result, 2, /^error: .*needs --config/);
    expectValidAirbyte(result);
    expect(ofType(result.messages, 'RECORD')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// 6. connectors
// ---------------------------------------------------------------------------------------

describe('tributary connectors', () => {
  it('lists sample, local and sample-crm with their kinds, packages and versions', async () => {
    const dir = await workDir();
    const result = await runCli(['connectors'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    const version = (path: string): string => (JSON.parse(readFileSync(join(REPO, path, 'package.json'), 'utf8')) as { version: string }).version;
    const rows = splitLines(result.stdout).map((line) => line.trim().split(/\s+/));
    expect(rows[0]).toEqual(['KIND', 'NAME', 'PACKAGE', 'VERSION']);
    expect(rows.slice(1)).toEqual(
      expect.arrayContaining([
        ['source', 'sample', '@tributary/source-sample', version('connectors/sample')],
        ['destination', 'local', '@tributary/destination-local', version('destinations/local-files')],
        ['writer', 'sample-crm', '@tributary/writer-sample', version('connectors/sample-writer')],
      ]),
    );
  });
});

// ---------------------------------------------------------------------------------------
// 7. progress on a terminal
// ---------------------------------------------------------------------------------------

describe('tributary sync on a terminal', () => {
  it('shows the per-stream progress table and the summary line, and no JSON', async () => {
    const dir = await workDir();
    const file = await writeSyncFile(dir, { connection: 'tty-sync' });
    const quote = (arg: string): string => `'${arg.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, CLI, 'sync', file].map(quote).join(' ');
    // util-linux `script` runs the command on a pseudo-terminal; -e returns its exit code.
    const running = startProcess('script', ['-qec', command, '/dev/null'], { cwd: dir });
    running.child.stdin.end();
    const result = await running.result;
    // The table is redrawn in place (cursor up, erase below): without those escapes, each
    // drawing starts its own lines, and the last one shows every stream COMPLETE.
    // eslint-disable-next-line no-control-regex
    const output = result.stdout.replace(/\r/g, '').replace(/\x1b\[\d*[A-Za-z]/g, '');

    expect(result.code, output).toBe(0);
    expect(output).toMatch(/sync tty-sync: sample → local, 4 stream\(s\)/);
    for (const stream of STREAMS) {
      expect(output).toMatch(new RegExp(`^\\s+${stream}\\s+COMPLETE\\s.*\\brec/s\\s+committed ${COUNTS[stream]}\\b`, 'm'));
    }
    expect(output).toMatch(new RegExp(`^completed: ${TOTAL} records committed in `, 'm'));
    expect(splitLines(output).filter((line) => line.trimStart().startsWith('{'))).toEqual([]);
    expect(await outputIds(join(dir, 'out'))).toEqual(allExpectedIds());
  });
});
