import { spawn } from 'node:child_process';
import { dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import {
  TributaryError,
  parseConfig,
  streamKey,
  type DeliverySemantics,
  type DestinationStream,
  type DestinationSyncMode,
  type JsonSchemaObject,
  type RecordBatch,
  type RecordData,
  type WriteOutcome,
} from '@tributary/core';
import {
  assertSpec,
  contextFor,
  preview,
  stableJson,
  valueAt,
  type DestinationUnderTest,
  type RawConfig,
  validated,
} from './harness.js';
import type { CrashRunnerInput } from './destination-crash-runner.js';

/** A stream the suite writes, with a generator for its records. */
export interface DestinationConformanceStream {
  name: string;
  namespace?: string;
  /** Field paths, e.g. [['id']]. The suite's replay and malformed-record cases need one. */
  primaryKey: string[][];
  cursorField?: string[];
  jsonSchema: JsonSchemaObject;
  /** The i-th record (i ≥ 0). Distinct i must give distinct primary keys; the same i, equal records. */
  record(i: number): RecordData;
}

export interface DestinationConformanceOptions {
  destination: DestinationUnderTest;
  /** A config pointing at a fresh, empty target. Called once per case (by `crashAtIoSteps`, once per crash point). */
  config: () => RawConfig | Promise<RawConfig>;
  /**
   * Every row of a stream the target holds now, as JSON values equal to what was written
   * (extra columns the destination adds, e.g. metadata, are allowed).
   */
  readBack(config: RawConfig, streamName: string, namespace?: string): Promise<RecordData[]>;
  /**
   * Streams to write. Default: `defaultDestinationStreams`, two keyed streams with the same
   * key values (so a destination that ignores, merges or confuses streams is caught).
   */
  streams?: DestinationConformanceStream[];
  /**
   * Where the crash case's child process imports the destination from: a package name
   * resolvable from this package (workspace packages are) or a `file:` URL.
   */
  module: string;
  /** The export holding the destination. Default: the export whose value is a destination named like `destination.name`. */
  exportName?: string;
  /** Records per batch in every case (default 50). */
  batchSize?: number;
  /**
   * How many I/O steps of writing and committing a batch the `crashAtIoSteps` case crashes at
   * (default 8, spread evenly over the steps counted first; each is one child process).
   */
  ioCrashSteps?: number;
  /** Dotted paths of fields whose name looks secret but is not. */
  notSecret?: readonly string[];
}

export interface DestinationCase {
  readonly name: string;
  /** The case's vitest timeout when it needs more than the configured default (it runs several child processes). */
  readonly timeoutMs?: number;
  run(options: DestinationConformanceOptions): Promise<void>;
}

/** The default stream: the shape of CRM data (ids, names, numbers, flags, timestamps, lists, nested objects). */
export const defaultDestinationStream: DestinationConformanceStream = {
  name: 'conformance_people',
  primaryKey: [['id']],
  cursorField: ['updated_at'],
  jsonSchema: {
    type: 'object',
    required: ['id'],
    properties: {
      id: { type: 'integer' },
      name: { type: 'string' },
      score: { type: 'number' },
      active: { type: 'boolean' },
      updated_at: { type: 'string', format: 'date-time' },
      tags: { type: 'array', items: { type: 'string' } },
      address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: ['string', 'null'] } } },
    },
  },
  record: (i) => ({
    id: i + 1,
    name: `Person ${i + 1}`,
    score: Math.round(i * 7.25 * 100) / 100,
    active: i % 2 === 0,
    updated_at: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString(),
    tags: i % 3 === 0 ? [] : [`tag-${i % 5}`, 'crm'],
    address: { city: `City ${i % 7}`, zip: i % 4 === 0 ? null : `${10000 + i}` },
  }),
};

/**
 * The second default stream: another shape (amounts, stages, a nested owner) under the same
 * key values as `conformance_people`, so each key exists in both streams. A destination that
 * writes only one stream, sends every batch to the first stream's table, or stores rows by key
 * without their stream fails the cases that read back either stream.
 */
export const defaultSecondDestinationStream: DestinationConformanceStream = {
  name: 'conformance_deals',
  primaryKey: [['id']],
  cursorField: ['updated_at'],
  jsonSchema: {
    type: 'object',
    required: ['id'],
    properties: {
      id: { type: 'integer' },
      title: { type: 'string' },
      amount: { type: 'number' },
      stage: { type: 'string' },
      closed: { type: 'boolean' },
      updated_at: { type: 'string', format: 'date-time' },
      owner: { type: 'object', properties: { email: { type: 'string' }, team: { type: ['string', 'null'] } } },
    },
  },
  record: (i) => ({
    id: i + 1,
    title: `Deal ${i + 1}`,
    amount: Math.round((i + 1) * 1234.5) / 10,
    stage: ['lead', 'qualified', 'won', 'lost'][i % 4]!,
    closed: i % 4 >= 2,
    updated_at: new Date(Date.UTC(2024, 5, 1) + i * 90_000).toISOString(),
    owner: { email: `owner${i % 3}@example.com`, team: i % 5 === 0 ? null : `team-${i % 2}` },
  }),
};

/** The streams every case writes unless the connector's test passes its own. */
export const defaultDestinationStreams: readonly DestinationConformanceStream[] = [defaultDestinationStream, defaultSecondDestinationStream];

const NEW_COLUMN = 'conformance_new_column';

interface Prepared {
  raw: RawConfig;
  /** `raw` validated against the spec, defaults filled in. */
  config: RawConfig;
  streams: DestinationConformanceStream[];
}

async function prepare(options: DestinationConformanceOptions): Promise<Prepared> {
  const raw = await options.config();
  const config = parseConfig(options.destination.spec.connectionSpecification, raw, 'config');
  return { raw, config, streams: options.streams ?? [...defaultDestinationStreams] };
}

/** The sync mode the replay cases use: the keyed one when the destination promises dedupe. */
function keyedMode(destination: { delivery: DeliverySemantics; spec: { supportedDestinationSyncModes: readonly DestinationSyncMode[] } }): DestinationSyncMode {
  const supported = destination.spec.supportedDestinationSyncModes;
  const preferred: DestinationSyncMode[] = destination.delivery === 'append' ? ['append', 'append_dedup'] : ['append_dedup', 'append', 'update'];
  const mode = preferred.find((m) => supported.includes(m)) ?? supported[0];
  if (mode === undefined) throw new Error('spec.supportedDestinationSyncModes is empty');
  return mode;
}

function destinationStreams(streams: DestinationConformanceStream[], mode: DestinationSyncMode, resuming: boolean): DestinationStream[] {
  return streams.map((s) => ({
    key: streamKey(s.name, s.namespace),
    name: s.name,
    ...(s.namespace !== undefined ? { namespace: s.namespace } : {}),
    syncMode: 'incremental',
    destinationSyncMode: mode,
    primaryKey: s.primaryKey,
    cursorField: s.cursorField ?? [],
    jsonSchema: s.jsonSchema,
    resuming,
  }));
}

function batchOf(stream: DestinationConformanceStream, from: number, to: number, map: (r: RecordData, i: number) => RecordData = (r) => r): RecordBatch {
  const records: RecordData[] = [];
  for (let i = from; i < to; i++) records.push(map(stream.record(i), i));
  return { stream: streamKey(stream.name, stream.namespace), records, emittedAt: Date.now() };
}

function keyOf(stream: DestinationConformanceStream, record: RecordData): string {
  return stableJson(stream.primaryKey.map((path) => valueAt(record, path)));
}

/** Read-back rows grouped by primary key. */
function rowsByKey(stream: DestinationConformanceStream, rows: RecordData[]): Map<string, RecordData[]> {
  const out = new Map<string, RecordData[]>();
  for (const row of rows) {
    const key = keyOf(stream, row);
    const rows = out.get(key);
    if (rows) rows.push(row);
    else out.set(key, [row]);
  }
  return out;
}

/** Each written record must come back with every field it was written with, equal. */
function assertPresent(stream: DestinationConformanceStream, rows: RecordData[], written: RecordData[], what: string): void {
  const byKey = rowsByKey(stream, rows);
  const missing: string[] = [];
  const different: string[] = [];
  for (const record of written) {
    const key = keyOf(stream, record);
    const candidates = byKey.get(key);
    if (!candidates) {
      missing.push(key);
      continue;
    }
    const matches = candidates.some((row) => Object.entries(record).every(([field, value]) => stableJson(row[field]) === stableJson(value)));
    if (!matches) different.push(`${key}: wrote ${stableJson(record)}, read ${stableJson(candidates[0])}`);
  }
  if (missing.length > 0) throw new Error(`${what}: ${missing.length} of ${written.length} record(s) missing from ${stream.name}: ${preview(missing)}`);
  if (different.length > 0) throw new Error(`${what}: ${different.length} record(s) came back different:\n  - ${preview(different, 3)}`);
}

function assertEachKeyOnce(stream: DestinationConformanceStream, rows: RecordData[], what: string): void {
  const duplicated = [...rowsByKey(stream, rows)].filter(([, r]) => r.length > 1).map(([key, r]) => `${key} ×${r.length}`);
  if (duplicated.length > 0) throw new Error(`${what}: ${duplicated.length} key(s) of ${stream.name} stored more than once: ${preview(duplicated)}`);
}

async function readBack(options: DestinationConformanceOptions, raw: RawConfig, stream: DestinationConformanceStream): Promise<RecordData[]> {
  return options.readBack(raw, stream.name, stream.namespace);
}

/** Path of the crash runner next to this module (.ts under vitest, .js once built). */
function crashRunnerPath(): string {
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./destination-crash-runner${extname(self)}`, import.meta.url));
}

/**
 * Runs the crash runner in a child process; resolves with the step lines it printed once it
 * died of SIGKILL after the step `reached` accepts (by default, after writing batch B).
 */
async function runCrashingChild(input: CrashRunnerInput, reached: (steps: string[]) => boolean = (steps) => steps.includes('wrote-b')): Promise<string[]> {
  const runner = crashRunnerPath();
  const child = spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', runner], {
    cwd: dirname(dirname(runner)),
    // The IPC channel only ties the child's life to this process (see the runner).
    stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
  });
  if (!child.stdin || !child.stdout || !child.stderr) throw new Error('the crash runner was spawned without pipes');
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(JSON.stringify(input));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve([c, s]));
  });
  const steps = stdout.split('\n').filter(Boolean);
  if (signal !== 'SIGKILL' || !reached(steps)) {
    throw new Error(`the crash runner did not reach its crash point (exit code ${String(code)}, signal ${String(signal)}, steps [${steps.join(', ')}]):\n${stderr.slice(-4000)}`);
  }
  return steps;
}

/**
 * What every crash case's child process is given on a fresh target (`prepare`): batches A
 * (records 0…n) and B (n…2n) of every stream, and how to load the destination.
 */
async function crashSetup(options: DestinationConformanceOptions) {
  const p = await prepare(options);
  const n = options.batchSize ?? 50;
  const mode = keyedMode(options.destination);
  const batchesA = p.streams.map((s) => batchOf(s, 0, n));
  const batchesB = p.streams.map((s) => batchOf(s, n, 2 * n));
  const input: CrashRunnerInput = {
    module: options.module,
    ...(options.exportName !== undefined ? { exportName: options.exportName } : {}),
    destinationName: options.destination.name,
    config: p.raw,
    streams: destinationStreams(p.streams, mode, false),
    batchesA,
    batchesB,
  };
  return { p, n, mode, batchesA, batchesB, input };
}

/**
 * The two crash cases' common start: a child process opens the destination, writes batch A
 * of every stream, commits, writes batch B and is SIGKILLed before committing B.
 */
async function crashAfterFirstCommit(options: DestinationConformanceOptions) {
  const setup = await crashSetup(options);
  await runCrashingChild(setup.input);
  return setup;
}

/**
 * The I/O crash case's child (see io-crash-points.ts): on a fresh target, writes and commits
 * batch A, then writes and commits batch B, SIGKILLed in place of I/O step `killAt` of B;
 * without `killAt` it runs B to the end and reports how many steps it took.
 */
async function crashAtIoStep(options: DestinationConformanceOptions, killAt: number | undefined) {
  const setup = await crashSetup(options);
  const steps = await runCrashingChild({ ...setup.input, ioSteps: killAt === undefined ? {} : { killAt } }, (lines) =>
    lines.includes('committed-a') && lines.some((line) => line.startsWith('killed-at-step ') || line.startsWith('finished-b ')),
  );
  const finished = steps.find((line) => line.startsWith('finished-b '));
  return { ...setup, stepsOfB: finished !== undefined ? Number(finished.slice('finished-b '.length)) : undefined };
}

/** `count` steps out of 1…total, spread evenly, first and last included (all of them when there are no more). */
export function spreadCrashSteps(total: number, count: number): number[] {
  if (total <= count) return Array.from({ length: total }, (_, i) => i + 1);
  const points = new Set<number>();
  for (let i = 0; i < count; i++) points.add(1 + Math.round((i * (total - 1)) / (count - 1)));
  return [...points];
}

/** The named destination cases, in the order `destinationConformance` registers them. */
export const destinationCases = {
  spec: {
    name: 'spec: connectionSpecification is draft-07, secrets are marked, SPEC validates against the protocol',
    async run(options) {
      const { spec } = options.destination;
      if (spec.supportedDestinationSyncModes.length === 0) throw new Error('spec.supportedDestinationSyncModes is empty');
      assertSpec(spec, options.notSecret, { supported_destination_sync_modes: spec.supportedDestinationSyncModes });
    },
  },
  check: {
    name: 'check: succeeds on a good config',
    async run(options) {
      const p = await prepare(options);
      await options.destination.check(contextFor(options.destination), validated(p.config));
    },
  },
  committedSurvivesRestart: {
    name: 'commit is durable: committed records survive a session dropped without close',
    async run(options) {
      const { destination } = options;
      const p = await prepare(options);
      const n = options.batchSize ?? 50;
      const mode = keyedMode(destination);
      const first = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, false));
      for (const stream of p.streams) {
        await first.write(batchOf(stream, 0, n));
        await first.write(batchOf(stream, n, 2 * n));
      }
      await first.commit();
      // `first` is dropped here without close(): what a crash leaves behind.
      const second = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, true));
      await second.commit();
      await second.close({ completed: true });
      for (const stream of p.streams) {
        const rows = await readBack(options, p.raw, stream);
        assertPresent(stream, rows, batchOf(stream, 0, 2 * n).records, 'after the restart');
        if (destination.delivery !== 'append') assertEachKeyOnce(stream, rows, 'after the restart');
      }
    },
  },
  replayAfterCrash: {
    name: 'crash (SIGKILL) after an uncommitted batch, then an at-least-once replay: nothing lost, no keyed row duplicated',
    async run(options) {
      const { destination } = options;
      const { p, n, mode, batchesA, batchesB } = await crashAfterFirstCommit(options);
      // The runtime resumes from the last committed checkpoint, which precedes A and B here
      // (a checkpoint is stored only after the commit returns), so it sends both again.
      const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, true));
      for (const batch of [...batchesA, ...batchesB]) await session.write(batch);
      await session.commit();
      await session.close({ completed: true });
      for (const stream of p.streams) {
        const rows = await readBack(options, p.raw, stream);
        assertPresent(stream, rows, batchOf(stream, 0, 2 * n).records, 'after the crash and replay');
        if (destination.delivery !== 'append') assertEachKeyOnce(stream, rows, 'after the crash and replay');
      }
    },
  },
  committedSurvivesCrash: {
    name: 'crash (SIGKILL) right after a commit: the committed batch survives, and a replay of only the uncommitted one completes the data',
    async run(options) {
      const { destination } = options;
      const { p, n, mode, batchesB } = await crashAfterFirstCommit(options);
      // Once A's commit returned, the runtime stored the checkpoint after A: it resumes
      // there and sends only B. A must therefore be durable when commit() returns, not when
      // the session closes or the event loop gets round to it.
      const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, true));
      for (const batch of batchesB) await session.write(batch);
      await session.commit();
      await session.close({ completed: true });
      for (const stream of p.streams) {
        const rows = await readBack(options, p.raw, stream);
        assertPresent(stream, rows, batchOf(stream, 0, n).records, 'after a crash right after the commit of the first batch (not replayed)');
        assertPresent(stream, rows, batchOf(stream, n, 2 * n).records, 'after a crash and the replay of the uncommitted batch');
        if (destination.delivery !== 'append') assertEachKeyOnce(stream, rows, 'after a crash and the replay of the uncommitted batch');
      }
    },
  },
  crashAtIoSteps: {
    name: 'crash (SIGKILL) at I/O steps of writing and committing a batch, then its replay: the batch before it and the replayed one are complete, no keyed row duplicated',
    // One child process per crash point, plus the one that counts the steps.
    timeoutMs: 600_000,
    async run(options) {
      const { destination } = options;
      // A first child counts the I/O steps of writing and committing B on its target.
      const counted = await crashAtIoStep(options, undefined);
      const total = counted.stepsOfB ?? 0;
      for (const killAt of spreadCrashSteps(total, options.ioCrashSteps ?? 8)) {
        const { p, n, mode, batchesB } = await crashAtIoStep(options, killAt);
        // A's commit returned, so the runtime stored the checkpoint after A: it resumes there
        // and sends B again, whatever part of B's write or commit had happened.
        const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, true));
        for (const batch of batchesB) await session.write(batch);
        await session.commit();
        await session.close({ completed: true });
        const what = `after a crash at I/O step ${killAt} of ${total} of writing and committing the second batch, and its replay`;
        for (const stream of p.streams) {
          const rows = await readBack(options, p.raw, stream);
          assertPresent(stream, rows, batchOf(stream, 0, n).records, `${what} (first batch, committed before)`);
          assertPresent(stream, rows, batchOf(stream, n, 2 * n).records, `${what} (second batch)`);
          if (destination.delivery !== 'append') assertEachKeyOnce(stream, rows, what);
        }
      }
    },
  },
  retriedWrite: {
    name: 'retried write: a batch written again with the same records (as the runtime retries) is left as given and loses nothing; upsert stores each key once',
    async run(options) {
      const { destination } = options;
      const p = await prepare(options);
      const n = options.batchSize ?? 50;
      const mode = keyedMode(destination);
      const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, false));
      for (const stream of p.streams) {
        // The runtime retries with the same records array; the first attempt may have taken
        // effect (a request that timed out after the target applied it).
        const batch = batchOf(stream, 0, n);
        const given = structuredClone(batch.records);
        await session.write(batch);
        assertRecordsUnchanged(batch.records, given, `${stream.name}, first attempt`);
        await session.write({ stream: batch.stream, records: batch.records, emittedAt: batch.emittedAt });
        assertRecordsUnchanged(batch.records, given, `${stream.name}, retry`);
        await session.write(batchOf(stream, n, 2 * n));
      }
      await session.commit();
      await session.close({ completed: true });
      for (const stream of p.streams) {
        const rows = await readBack(options, p.raw, stream);
        assertPresent(stream, rows, batchOf(stream, 0, 2 * n).records, 'after a retried write');
        // Upsert keys rows by primary key, so two writes of a key leave one row however they
        // came. Log destinations are not judged on a repeat within one session: they may
        // throw a retryable error only before a batch took effect (the lake does so), and
        // the runtime repeats a write only after it threw.
        if (destination.delivery === 'upsert') assertEachKeyOnce(stream, rows, 'after a retried write');
      }
    },
  },
  changedRecords: {
    name: 'changed records: a new version of a stored key is kept (upsert: only the latest, in batch order; append logs: every version)',
    async run(options) {
      const { destination } = options;
      const p = await prepare(options);
      const n = Math.max(4, options.batchSize ?? 50);
      const half = Math.floor(n / 2);
      const quarter = Math.floor(n / 4);
      const mode = keyedMode(destination);
      const first = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, false));
      for (const stream of p.streams) await first.write(batchOf(stream, 0, n));
      await first.commit();
      await first.close({ completed: true });
      // A later sync: keys [0, half) change once in one batch, then twice more in the next,
      // where the two versions of keys [0, quarter) follow each other in the same batch.
      const second = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, false));
      for (const stream of p.streams) {
        await second.write(batchOf(stream, 0, half, (r, i) => changed(stream, r, i, 1)));
        const records: RecordData[] = [];
        for (let i = 0; i < half; i++) {
          records.push(changed(stream, stream.record(i), i, 2));
          if (i < quarter) records.push(changed(stream, stream.record(i), i, 3));
        }
        await second.write({ stream: streamKey(stream.name, stream.namespace), records, emittedAt: Date.now() });
      }
      await second.commit();
      await second.close({ completed: true });
      for (const stream of p.streams) {
        const rows = await readBack(options, p.raw, stream);
        const version = (i: number): number => (i < quarter ? 3 : i < half ? 2 : 0);
        const latest = batchOf(stream, 0, n, (r, i) => changed(stream, r, i, version(i))).records;
        if (destination.delivery === 'upsert') {
          assertEachKeyOnce(stream, rows, 'after changing stored records');
          assertPresent(stream, rows, latest, 'after changing stored records (each key must hold its latest version)');
        } else {
          // An append log keeps every version; a dedupe that compares keys only loses the changes.
          const every = [0, 1, 2, 3].flatMap((v) => batchOf(stream, 0, v === 0 ? n : v === 3 ? quarter : half, (r, i) => changed(stream, r, i, v)).records);
          assertPresent(stream, rows, every, 'after changing stored records (an append log keeps every version)');
        }
      }
    },
  },
  newColumn: {
    name: 'schema drift: a field missing from the stream schema is written and read back',
    async run(options) {
      const { destination } = options;
      const p = await prepare(options);
      const n = options.batchSize ?? 50;
      const mode = keyedMode(destination);
      const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, mode, false));
      const batches = p.streams.map((s) => batchOf(s, 0, n, (r, i) => ({ ...r, [NEW_COLUMN]: `value ${i}` })));
      for (const batch of batches) {
        const outcome = await session.write(batch);
        if (outcome?.rejected?.length) throw new Error(`records with a new column were rejected: ${outcome.rejected[0]!.reason}`);
      }
      await session.commit();
      await session.close({ completed: true });
      for (const [index, stream] of p.streams.entries()) {
        assertPresent(stream, await readBack(options, p.raw, stream), batches[index]!.records, 'with a new column');
      }
    },
  },
  malformedRecord: {
    name: 'malformed records (missing primary key, type mismatch) are rejected with a reason or fail loudly, never dropped',
    async run(options) {
      const { destination } = options;
      const mode = keyedMode(destination);
      const stream = (options.streams ?? [defaultDestinationStream])[0]!;
      const malformations = malformedVariants(stream);
      for (const [what, bad] of malformations) {
        const p = await prepare(options);
        const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams([stream], mode, false));
        const batch: RecordBatch = { stream: streamKey(stream.name, stream.namespace), records: [stream.record(0), bad, stream.record(2)], emittedAt: Date.now() };
        let outcome: WriteOutcome | void;
        try {
          outcome = await session.write(batch);
        } catch (error) {
          if (!TributaryError.is(error) || error.userMessage.trim().length === 0) {
            throw new Error(`${what}: write threw something other than a TributaryError with a message: ${String(error)}`);
          }
          // As the runtime does after a failed write; its own failure is not what this case judges.
          await session.close({ completed: false }).catch(() => undefined);
          continue;
        }
        await session.commit();
        await session.close({ completed: true });
        const rejected = outcome?.rejected ?? [];
        for (const r of rejected) {
          if (r.index !== 1) throw new Error(`${what}: rejected index ${r.index}, but only record 1 is malformed (${r.reason})`);
          if (r.reason.trim().length === 0) throw new Error(`${what}: a rejection carries no reason`);
        }
        const rows = await readBack(options, p.raw, stream);
        if (rows.length + rejected.length !== batch.records.length) {
          throw new Error(`${what}: wrote ${batch.records.length} record(s), read back ${rows.length} and ${rejected.length} rejected: a record was dropped silently (or duplicated)`);
        }
        assertPresent(stream, rows, [stream.record(0), stream.record(2)], what);
      }
    },
  },
  overwrite: {
    name: 'overwrite: after a completed overwrite sync only the new generation is visible',
    async run(options) {
      const { destination } = options;
      const p = await prepare(options);
      const n = options.batchSize ?? 50;
      for (const [from, to] of [
        [0, 2 * n],
        [2 * n, 3 * n],
      ] as const) {
        const session = await destination.open(contextFor(destination), validated(p.config), destinationStreams(p.streams, 'overwrite', false));
        for (const stream of p.streams) await session.write(batchOf(stream, from, to));
        await session.commit();
        await session.close({ completed: true });
      }
      for (const stream of p.streams) {
        const rows = await readBack(options, p.raw, stream);
        const generation = batchOf(stream, 2 * n, 3 * n).records;
        assertPresent(stream, rows, generation, 'after the second overwrite');
        const current = new Set(generation.map((r) => keyOf(stream, r)));
        const stale = rows.map((r) => keyOf(stream, r)).filter((k) => !current.has(k));
        if (stale.length > 0 || rows.length !== generation.length) {
          throw new Error(`after the second overwrite ${stream.name} holds ${rows.length} row(s) for ${generation.length} written; older generation keys: ${preview(stale)}`);
        }
      }
    },
  },
} satisfies Record<string, DestinationCase>;

/**
 * A write must leave the records it was given as they were: the runtime retries a failed
 * write with the same records array, and counts what it wrote by its length.
 */
function assertRecordsUnchanged(records: readonly RecordData[], given: readonly RecordData[], what: string): void {
  const problem =
    records.length !== given.length
      ? `${given.length} record(s) given, ${records.length} left`
      : records.flatMap((r, i) => (stableJson(r) === stableJson(given[i]) ? [] : [`record ${i} was ${stableJson(given[i])}, is now ${stableJson(r)}`]))[0];
  if (problem !== undefined) {
    throw new Error(`write() changed the records of the batch it was given (${what}): ${problem}. A retry of a failed write sends the same records again.`);
  }
}

/**
 * Version `v` of a record (0: the record itself): its cursor moves forward (date-times by
 * `v` days, numbers by `v` × 10⁶) and its first non-key, non-cursor string field changes, so
 * a later version is both newer and different.
 */
function changed(stream: DestinationConformanceStream, record: RecordData, i: number, v: number): RecordData {
  if (v === 0) return record;
  const out = structuredClone(record);
  const cursor = stream.cursorField ?? [];
  if (cursor.length > 0) {
    let node = out as Record<string, unknown>;
    for (const part of cursor.slice(0, -1)) node = (node[part] ?? {}) as Record<string, unknown>;
    const last = cursor[cursor.length - 1]!;
    const value = node[last];
    if (typeof value === 'number') node[last] = value + v * 1_000_000;
    else if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) node[last] = new Date(Date.parse(value) + v * 86_400_000).toISOString();
  }
  const keyFields = new Set(stream.primaryKey.map((path) => path[0]));
  const properties = (stream.jsonSchema.properties ?? {}) as Record<string, { type?: unknown; format?: unknown }>;
  const field = Object.entries(properties).find(
    ([name, s]) => !keyFields.has(name) && name !== cursor[0] && s.type === 'string' && s.format === undefined && typeof out[name] === 'string',
  )?.[0];
  if (field !== undefined) out[field] = `${String(out[field])} (version ${v})`;
  else if (cursor.length === 0) throw new Error(`changedRecords: stream ${stream.name} has neither a cursor nor a plain string field to change in record ${i}`);
  return out;
}

/** Variants of a valid record that no keyed, typed target can store as written. */
function malformedVariants(stream: DestinationConformanceStream): Array<[string, RecordData]> {
  const variants: Array<[string, RecordData]> = [];
  if (stream.primaryKey.length > 0) {
    const record = structuredClone(stream.record(1));
    for (const path of stream.primaryKey) {
      let node: Record<string, unknown> = record;
      for (const part of path.slice(0, -1)) node = (node[part] ?? {}) as Record<string, unknown>;
      delete node[path[path.length - 1]!];
    }
    variants.push(['missing primary key', record]);
  }
  const properties = (stream.jsonSchema.properties ?? {}) as Record<string, { type?: unknown }>;
  const keyFields = new Set(stream.primaryKey.map((p) => p[0]));
  const field = Object.entries(properties).find(([name, s]) => !keyFields.has(name) && typeof s.type === 'string' && s.type !== 'object' && s.type !== 'array');
  if (field) {
    const [name, schema] = field;
    const wrong = schema.type === 'string' ? { unexpected: 'object' } : 'not a number or boolean';
    variants.push([`type mismatch on ${name}`, { ...stream.record(1), [name]: wrong }]);
  }
  return variants;
}

export type DestinationCaseName = keyof typeof destinationCases;

export function applicableDestinationCases(options: DestinationConformanceOptions): DestinationCaseName[] {
  const supportsOverwrite = options.destination.spec.supportedDestinationSyncModes.includes('overwrite');
  return (Object.keys(destinationCases) as DestinationCaseName[]).filter((name) => name !== 'overwrite' || supportsOverwrite);
}

/** Registers the destination conformance suite: one `describe`, one named `it` per applicable case. */
export function destinationConformance(options: DestinationConformanceOptions): void {
  const names = applicableDestinationCases(options);
  describe(`destination conformance: ${options.destination.name}`, () => {
    for (const name of names) {
      const c: DestinationCase = destinationCases[name];
      it(c.name, () => c.run(options), c.timeoutMs);
    }
  });
}
