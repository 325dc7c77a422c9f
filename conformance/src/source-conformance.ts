import { describe, it } from 'vitest';
import {
  TributaryError,
  collectSecrets,
  parseConfig,
  streamKey,
  toAirbyteMessage,
  expandRecordPages,
  toErrorTrace,
  type AirbyteStream,
  type ConfiguredAirbyteCatalog,
  type SourceMessage,
  type SourceRecord,
  type StateBlob,
  type SyncMode,
  type SyncState,
} from '@tributary/core';
import {
  assertSpec,
  assertValidAirbyteMessage,
  contextFor,
  createSchemaValidator,
  diffMultisets,
  preview,
  resolveConfig,
  schemaHasPath,
  stableJson,
  valueAt,
  type ConfigInput,
  type RawConfig,
  type SourceUnderTest,
  validated,
} from './harness.js';

/** How the connector's test says whether (and how) some stream can be made empty. */
export type EmptyStreamsOption =
  /** A config under which at least one stream has no records at all. */
  | { emptyConfig: ConfigInput; emptyStreams?: never }
  /** The source cannot be configured to have an empty stream: the case is not registered. */
  | { emptyStreams: false; emptyConfig?: never };

export type SourceConformanceOptions = {
  source: SourceUnderTest;
  /** A working config (raw, as a user writes it; the suite validates it through the spec). */
  config: ConfigInput;
  /** A config that must be refused with a `config_error` (by the schema, or by `check`). */
  badConfig: ConfigInput;
  /**
   * A per-stream state blob far in the future (nothing can be newer). Default
   * `{ cursor: '9999-12-31T23:59:59Z' }`; supply it when the source's state has another shape.
   */
  futureState?: (stream: AirbyteStream) => StateBlob;
  /** At most this many intermediate checkpoints are resumed from (evenly sampled). Default 20. */
  maxResumeCheckpoints?: number;
  /** Dotted paths of fields whose name looks secret but is not (e.g. `token_url`). */
  notSecret?: readonly string[];
  /**
   * The truth, from the peer itself (a SQL query, the simulator's store): the primary-key
   * values of every record a read of `stream` from empty state must return in `mode` (an
   * incremental read may also return deletions as tombstones), each as an array of the
   * values at the stream's `source_defined_primary_key` paths. `undefined` skips the stream.
   * With it the `completeness` case checks reads against the data, not only against each
   * other (a source that silently skips records at page or timestamp boundaries is
   * self-consistent and passes every other case).
   */
  expectedKeys?: (stream: AirbyteStream, mode: SyncMode) => Promise<readonly (readonly unknown[])[] | undefined> | readonly (readonly unknown[])[] | undefined;
} & EmptyStreamsOption;

/** One named conformance case, runnable on its own (composable) or through `sourceConformance`. */
export interface SourceCase {
  readonly name: string;
  run(options: SourceConformanceOptions): Promise<void>;
}

const DEFAULT_FUTURE_STATE = (): StateBlob => ({ cursor: '9999-12-31T23:59:59Z' });

/** The messages of one read, in order, each already checked in its wire form. */
type ReadRun = readonly SourceMessage[];

/** Work shared by the cases of one `sourceConformance` call, computed on first use. */
interface Baseline {
  /** The working config, validated against the spec. */
  config: RawConfig;
  streams: AirbyteStream[];
  /** Every stream, full_refresh where supported, else incremental (from empty state that is a full read too). */
  fullCatalog: ConfiguredAirbyteCatalog;
  /** The streams that support incremental, in incremental mode. */
  incrementalCatalog: ConfiguredAirbyteCatalog;
  fullRun(): Promise<ReadRun>;
  incrementalRun(): Promise<ReadRun>;
}

const baselines = new WeakMap<SourceConformanceOptions, Promise<Baseline>>();

function once<T>(compute: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= compute());
}

function configure(streams: AirbyteStream[], mode: (stream: AirbyteStream) => SyncMode | undefined): ConfiguredAirbyteCatalog {
  return {
    streams: streams.flatMap((stream) => {
      const syncMode = mode(stream);
      if (syncMode === undefined) return [];
      return [
        {
          stream,
          sync_mode: syncMode,
          destination_sync_mode: 'append' as const,
          ...(stream.default_cursor_field ? { cursor_field: stream.default_cursor_field } : {}),
          ...(stream.source_defined_primary_key ? { primary_key: stream.source_defined_primary_key } : {}),
        },
      ];
    }),
  };
}

async function parsedConfig(options: SourceConformanceOptions, input: ConfigInput): Promise<RawConfig> {
  return parseConfig(options.source.spec.connectionSpecification, await resolveConfig(input), 'config');
}

/** Reads to the end; every message is checked against the protocol in its wire form as it arrives. */
async function readAll(
  source: SourceUnderTest,
  config: RawConfig,
  catalog: ConfiguredAirbyteCatalog,
  state: SyncState,
): Promise<ReadRun> {
  const messages: SourceMessage[] = [];
  const ctx = contextFor(source);
  for await (const message of expandRecordPages(source.read(ctx, validated(config), catalog, structuredClone(state)))) {
    assertValidAirbyteMessage(toAirbyteMessage(message, Date.now()), `message #${messages.length} (${message.kind})`);
    messages.push(message);
  }
  return messages;
}

function baseline(options: SourceConformanceOptions): Promise<Baseline> {
  let entry = baselines.get(options);
  if (!entry) {
    entry = (async () => {
      const config = await parsedConfig(options, options.config);
      const catalog = await options.source.discover(contextFor(options.source), validated(config));
      const fullCatalog = configure(catalog.streams, (s) =>
        s.supported_sync_modes.includes('full_refresh') ? 'full_refresh' : s.supported_sync_modes.includes('incremental') ? 'incremental' : undefined,
      );
      const incrementalCatalog = configure(catalog.streams, (s) => (s.supported_sync_modes.includes('incremental') ? 'incremental' : undefined));
      return {
        config,
        streams: catalog.streams,
        fullCatalog,
        incrementalCatalog,
        fullRun: once(() => readAll(options.source, config, fullCatalog, { streams: {} })),
        incrementalRun: once(() => readAll(options.source, config, incrementalCatalog, { streams: {} })),
      };
    })();
    baselines.set(options, entry);
  }
  return entry;
}

async function incrementalBaseline(options: SourceConformanceOptions): Promise<Baseline> {
  const b = await baseline(options);
  if (b.incrementalCatalog.streams.length === 0) {
    throw new Error(
      `No stream of "${options.source.name}" supports incremental. Declare spec.supportsIncremental: false so the incremental cases are not registered.`,
    );
  }
  return b;
}

function keyOfRecord(stream: AirbyteStream | undefined, record: SourceRecord): string {
  const pk = stream?.source_defined_primary_key ?? [];
  const identity = pk.length > 0 ? pk.map((path) => valueAt(record.data, path)) : record.data;
  return stableJson(identity);
}

/** `key` plus cursor value: what must match between an original read and a resumed one. */
function positionOfRecord(stream: AirbyteStream | undefined, record: SourceRecord): string {
  const cursor = stream?.default_cursor_field;
  const cursorValue = cursor && cursor.length > 0 ? valueAt(record.data, cursor) : undefined;
  return cursorValue === undefined ? keyOfRecord(stream, record) : `${keyOfRecord(stream, record)} @ ${stableJson(cursorValue)}`;
}

function streamOf(streams: AirbyteStream[], name: string, namespace: string | undefined): AirbyteStream | undefined {
  return streams.find((s) => s.name === name && s.namespace === namespace);
}

/** Folds checkpoints into a state, as the runtime does when it commits them. */
function applyCheckpoint(state: SyncState, message: SourceMessage): void {
  if (message.kind === 'checkpoint') {
    state.streams[streamKey(message.stream, message.namespace)] = message.state;
  } else if (message.kind === 'global-checkpoint') {
    state.shared = message.shared;
    for (const s of message.streams) state.streams[streamKey(s.stream, s.namespace)] = s.state;
  }
}

function isCheckpoint(message: SourceMessage): boolean {
  return message.kind === 'checkpoint' || message.kind === 'global-checkpoint';
}

/** Whether a checkpoint covers the records of stream `key` yielded before it. */
function covers(message: SourceMessage, key: string): boolean {
  // A global checkpoint covers every record of every stream yielded before it.
  return message.kind === 'global-checkpoint' || (message.kind === 'checkpoint' && streamKey(message.stream, message.namespace) === key);
}

function recordsByStream(run: ReadRun): Map<string, SourceRecord[]> {
  const out = new Map<string, SourceRecord[]>();
  for (const m of run) {
    if (m.kind !== 'record') continue;
    const key = streamKey(m.stream, m.namespace);
    const records = out.get(key);
    if (records) records.push(m);
    else out.set(key, [m]);
  }
  return out;
}

/** Every configured stream has at least one checkpoint in `run`. */
function assertCheckpointPerStream(run: ReadRun, catalog: ConfiguredAirbyteCatalog, what: string): void {
  const missing = catalog.streams
    .map((c) => streamKey(c.stream.name, c.stream.namespace))
    .filter((key) => !run.some((m) => covers(m, key)));
  if (missing.length > 0) {
    throw new Error(`${what}: no checkpoint for stream(s) ${missing.join(', ')}. Every stream must yield at least one checkpoint, even when it has no records.`);
  }
}

/**
 * Within one read from empty state, a keyed stream yields each version of a record once: the
 * same primary key with the same cursor value twice is a duplicate (an append destination
 * stores it twice). A changed record (new cursor value) may come again.
 */
function assertNoRepeatedRecords(run: ReadRun, streams: AirbyteStream[], what: string): void {
  const seen = new Map<string, Set<string>>();
  const repeated: string[] = [];
  for (const m of run) {
    if (m.kind !== 'record') continue;
    const stream = streamOf(streams, m.stream, m.namespace);
    if ((stream?.source_defined_primary_key ?? []).length === 0) continue;
    const key = streamKey(m.stream, m.namespace);
    const positions = seen.get(key) ?? new Set<string>();
    seen.set(key, positions);
    const position = positionOfRecord(stream, m);
    if (positions.has(position)) repeated.push(`${key} ${position}`);
    positions.add(position);
  }
  if (repeated.length > 0) throw new Error(`${what}: ${repeated.length} record(s) yielded more than once (same primary key and cursor value): ${preview(repeated)}`);
}

function assertNoRecords(run: ReadRun, what: string): void {
  const records = run.filter((m) => m.kind === 'record');
  if (records.length > 0) {
    const streams = [...new Set(records.map((r) => streamKey(r.stream, r.namespace)))];
    throw new Error(`${what}: expected no records, got ${records.length} (streams ${streams.join(', ')})`);
  }
}

function assertIsConfigError(error: unknown, what: string): void {
  if (!TributaryError.is(error)) {
    throw new Error(`${what}: expected a TributaryError of kind config, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
  const failure = toErrorTrace(error).failure_type;
  // `auth` is accepted from check(): a refused credential is also the user's config to fix.
  if (!(error.kind === 'config' || error.kind === 'auth') || failure !== 'config_error') {
    throw new Error(`${what}: expected kind config (failure_type config_error), got kind ${error.kind} (failure_type ${String(failure)}): ${error.userMessage}`);
  }
  if (error.userMessage.trim().length === 0) throw new Error(`${what}: the error has an empty user message`);
}

/** The named source cases, in the order `sourceConformance` registers them. */
export const sourceCases = {
  spec: {
    name: 'spec: connectionSpecification is draft-07, secrets are marked, SPEC validates against the protocol',
    async run(options) {
      const { spec } = options.source;
      assertSpec(spec, options.notSecret, spec.supportsIncremental !== undefined ? { supportsIncremental: spec.supportsIncremental } : {});
    },
  },
  checkGoodConfig: {
    name: 'check: succeeds on a good config',
    async run(options) {
      const config = await parsedConfig(options, options.config);
      await options.source.check(contextFor(options.source), validated(config));
    },
  },
  checkBadConfig: {
    name: 'check: a bad config fails with a config_error that names the problem without echoing secrets',
    async run(options) {
      const raw = await resolveConfig(options.badConfig);
      let error: unknown;
      try {
        // As the runtime does: the schema at the boundary, then check() if the schema passes.
        const config = parseConfig(options.source.spec.connectionSpecification, raw, 'config');
        await options.source.check(contextFor(options.source), validated(config));
      } catch (e) {
        error = e;
      }
      if (error === undefined) throw new Error('badConfig passed the schema and check() accepted it: the bad config is not refused');
      assertIsConfigError(error, 'bad config');
      const trace = JSON.stringify(toErrorTrace(error));
      const leaked = [...collectSecrets(options.source.spec.connectionSpecification, raw)].filter((s) => s.length >= 4 && trace.includes(s));
      if (leaked.length > 0) throw new Error('the config error echoes a secret value of the bad config');
    },
  },
  discover: {
    name: 'discover: the catalog validates against the protocol; primary keys and cursors exist in each json_schema',
    async run(options) {
      const { streams } = await baseline(options);
      assertValidAirbyteMessage({ type: 'CATALOG', catalog: { streams } }, 'the CATALOG message');
      if (streams.length === 0) throw new Error('discover returned no streams');
      const validate = createSchemaValidator();
      const problems: string[] = [];
      for (const stream of streams) {
        try {
          validate(stream.json_schema, {}, stream.name);
        } catch (error) {
          problems.push(`${stream.name}: json_schema does not compile: ${(error as Error).message}`);
        }
        for (const path of stream.source_defined_primary_key ?? []) {
          if (!schemaHasPath(stream.json_schema, path)) problems.push(`${stream.name}: primary key field ${path.join('.')} is not in json_schema.properties`);
        }
        if (stream.default_cursor_field && !schemaHasPath(stream.json_schema, stream.default_cursor_field)) {
          problems.push(`${stream.name}: default cursor field ${stream.default_cursor_field.join('.')} is not in json_schema.properties`);
        }
        if (stream.supported_sync_modes.includes('incremental') && !(stream.default_cursor_field ?? []).length && stream.source_defined_cursor !== true) {
          problems.push(`${stream.name}: supports incremental but has neither default_cursor_field nor source_defined_cursor`);
        }
      }
      if (problems.length > 0) throw new Error(`catalog problems:\n  - ${problems.join('\n  - ')}`);
    },
  },
  records: {
    name: 'read: records match their json_schema, are plain JSON, every RECORD/STATE validates, and each stream ends with a checkpoint',
    async run(options) {
      const b = await baseline(options);
      const validate = createSchemaValidator();
      const runs: Array<[string, ConfiguredAirbyteCatalog, ReadRun]> = [['full read', b.fullCatalog, await b.fullRun()]];
      if (b.incrementalCatalog.streams.length > 0) runs.push(['incremental read', b.incrementalCatalog, await b.incrementalRun()]);
      for (const [what, catalog, run] of runs) {
        const configured = new Set(catalog.streams.map((c) => streamKey(c.stream.name, c.stream.namespace)));
        const problems: string[] = [];
        run.forEach((m, index) => {
          if (m.kind !== 'record') return;
          const key = streamKey(m.stream, m.namespace);
          const stream = streamOf(b.streams, m.stream, m.namespace);
          if (!stream || !configured.has(key)) {
            problems.push(`#${index}: record of stream ${key}, which is not in the configured catalog`);
            return;
          }
          if (stableJson(JSON.parse(JSON.stringify(m.data))) !== stableJson(m.data)) {
            problems.push(`#${index} (${key}): data is not plain JSON (class instances, undefined or non-finite numbers)`);
          }
          for (const p of validate(stream.json_schema, m.data, key)) problems.push(`#${index}: ${p}`);
        });
        if (problems.length > 0) throw new Error(`${what}: ${problems.length} problem(s):\n  - ${preview(problems, 20)}`);
        assertNoRepeatedRecords(run, b.streams, what);
        assertCheckpointPerStream(run, catalog, what);
        // The final state must cover every record, or the next incremental read repeats the tail.
        for (const key of configured) {
          const lastRecord = run.findLastIndex((m) => m.kind === 'record' && streamKey(m.stream, m.namespace) === key);
          const lastCheckpoint = run.findLastIndex((m) => covers(m, key));
          if (lastRecord > lastCheckpoint) throw new Error(`${what}: stream ${key} yields records after its last checkpoint (#${lastRecord} after #${lastCheckpoint})`);
        }
      }
    },
  },
  selectedStreamsOnly: {
    name: 'stream selection: a catalog that leaves streams out gets no record of them, and every key of the streams it keeps',
    async run(options) {
      const b = await baseline(options);
      const runs: Array<[string, ConfiguredAirbyteCatalog, () => Promise<ReadRun>]> = [['full read', b.fullCatalog, b.fullRun]];
      if (b.incrementalCatalog.streams.length > 0) runs.push(['incremental read', b.incrementalCatalog, b.incrementalRun]);
      for (const [what, catalog, everyStreamRun] of runs) {
        // Every other stream, starting with the second: a source that reads the whole catalog
        // it discovered, or only its first stream, fails. With one stream, the selection is empty.
        const subset: ConfiguredAirbyteCatalog = { streams: catalog.streams.filter((_, index) => index % 2 === 1) };
        const kept = new Set(subset.streams.map((c) => streamKey(c.stream.name, c.stream.namespace)));
        const selection = `${what} of ${kept.size > 0 ? [...kept].join(', ') : 'no stream'} only`;
        const run = await readAll(options.source, b.config, subset, { streams: {} });
        const stray = run.filter((m) => m.kind === 'record' && !kept.has(streamKey(m.stream, m.namespace)));
        if (stray.length > 0) {
          const streams = [...new Set(stray.map((m) => (m.kind === 'record' ? streamKey(m.stream, m.namespace) : '')))];
          throw new Error(`${selection}: ${stray.length} record(s) of stream(s) not selected: ${streams.join(', ')}`);
        }
        assertCheckpointPerStream(run, subset, selection);
        const before = recordsByStream(await everyStreamRun());
        const after = recordsByStream(run);
        for (const key of kept) {
          const stream = subset.streams.find((c) => streamKey(c.stream.name, c.stream.namespace) === key)!.stream;
          const { missing, extra } = diffMultisets(
            (before.get(key) ?? []).map((r) => keyOfRecord(stream, r)),
            (after.get(key) ?? []).map((r) => keyOfRecord(stream, r)),
          );
          if (missing.length > 0 || extra.length > 0) {
            throw new Error(
              `${selection}, stream ${key}: read alone it differs from the read of every stream: ${missing.length} key(s) missing [${preview(missing)}], ${extra.length} extra [${preview(extra)}]`,
            );
          }
        }
      }
    },
  },
  fullRefreshTwice: {
    name: 'full refresh twice: the second read keeps every key of the first',
    async run(options) {
      const b = await baseline(options);
      const first = recordsByStream(await b.fullRun());
      const second = recordsByStream(await readAll(options.source, b.config, b.fullCatalog, { streams: {} }));
      for (const [key, records] of first) {
        const stream = streamOf(b.streams, records[0]!.stream, records[0]!.namespace);
        const secondKeys = new Set((second.get(key) ?? []).map((r) => keyOfRecord(stream, r)));
        const lost = [...new Set(records.map((r) => keyOfRecord(stream, r)))].filter((k) => !secondKeys.has(k));
        if (lost.length > 0) throw new Error(`stream ${key}: the second full refresh lost ${lost.length} key(s) of the first: ${preview(lost)}`);
      }
    },
  },
  incrementalFromFinalState: {
    name: 'incremental from the final state: no records, and still a checkpoint per stream',
    async run(options) {
      const b = await incrementalBaseline(options);
      const state: SyncState = { streams: {} };
      for (const m of await b.incrementalRun()) applyCheckpoint(state, m);
      const run = await readAll(options.source, b.config, b.incrementalCatalog, state);
      assertNoRecords(run, 'incremental read from the final state');
      assertCheckpointPerStream(run, b.incrementalCatalog, 'incremental read from the final state');
    },
  },
  resumeFromEveryCheckpoint: {
    name: 'incremental from each intermediate checkpoint: exactly the records that followed it (no gap, no duplicate)',
    async run(options) {
      const b = await incrementalBaseline(options);
      const original = await b.incrementalRun();
      const lastRecord = original.findLastIndex((m) => m.kind === 'record');
      const positions = original.flatMap((m, index) => (isCheckpoint(m) && index < lastRecord ? [index] : []));
      if (positions.length === 0) {
        throw new Error('the incremental read yielded no checkpoint before its last record: give a config with enough records for the source to checkpoint mid-read');
      }
      const max = Math.max(1, options.maxResumeCheckpoints ?? 20);
      const sampled =
        positions.length <= max ? positions : [...new Set(Array.from({ length: max }, (_, i) => positions[Math.round((i * (positions.length - 1)) / (max - 1 || 1))]!))];
      const keys = b.incrementalCatalog.streams.map((c) => streamKey(c.stream.name, c.stream.namespace));
      for (const position of sampled) {
        const state: SyncState = { streams: {} };
        for (const m of original.slice(0, position + 1)) applyCheckpoint(state, m);
        const resumed = recordsByStream(await readAll(options.source, b.config, b.incrementalCatalog, state));
        for (const key of keys) {
          const coveredUntil = original.slice(0, position + 1).findLastIndex((m) => covers(m, key));
          const expected = original.flatMap((m, index) =>
            m.kind === 'record' && index > coveredUntil && streamKey(m.stream, m.namespace) === key ? [positionOfRecord(streamOf(b.streams, m.stream, m.namespace), m)] : [],
          );
          const actual = (resumed.get(key) ?? []).map((r) => positionOfRecord(streamOf(b.streams, r.stream, r.namespace), r));
          const { missing, extra } = diffMultisets(expected, actual);
          if (missing.length > 0 || extra.length > 0) {
            throw new Error(
              `resuming from the checkpoint at message #${position} (state ${JSON.stringify(state).slice(0, 300)}), stream ${key}: ` +
                `${missing.length} record(s) missing (gap) [${preview(missing)}], ${extra.length} unexpected or duplicated [${preview(extra)}]`,
            );
          }
        }
      }
    },
  },
  completeness: {
    name: 'completeness: a full read and a first incremental read return every record the peer holds, once, and nothing else',
    async run(options) {
      if (options.expectedKeys === undefined) throw new Error('completeness: this case needs the expectedKeys option');
      const b = await baseline(options);
      const runs: Array<[string, ConfiguredAirbyteCatalog, ReadRun]> = [['full read', b.fullCatalog, await b.fullRun()]];
      if (b.incrementalCatalog.streams.length > 0) runs.push(['first incremental read', b.incrementalCatalog, await b.incrementalRun()]);
      let checked = 0;
      // (The full catalog reads a stream incrementally only when it has no full refresh.)
      for (const [what, catalog, run] of runs) {
        const byStream = recordsByStream(run);
        for (const c of catalog.streams) {
          const expectedKeys = await options.expectedKeys(c.stream, c.sync_mode);
          if (expectedKeys === undefined) continue;
          if ((c.stream.source_defined_primary_key ?? []).length === 0) {
            throw new Error(`completeness: stream ${c.stream.name} has no source_defined_primary_key; return undefined for it from expectedKeys`);
          }
          checked++;
          const key = streamKey(c.stream.name, c.stream.namespace);
          const expected = expectedKeys.map((values) => stableJson(values));
          const actual = (byStream.get(key) ?? []).map((r) => keyOfRecord(c.stream, r));
          const { missing, extra } = diffMultisets(expected, actual);
          if (missing.length > 0 || extra.length > 0) {
            throw new Error(
              `${what}, stream ${key}: ${missing.length} record(s) the peer holds are missing [${preview(missing)}], ` +
                `${extra.length} returned more than once or not held by the peer [${preview(extra)}]`,
            );
          }
        }
      }
      if (checked === 0) throw new Error('completeness: expectedKeys returned undefined for every stream, so nothing was checked');
    },
  },
  futureState: {
    name: 'incremental from a state in the future: no records, and still a checkpoint per stream',
    async run(options) {
      const b = await incrementalBaseline(options);
      const future = options.futureState ?? DEFAULT_FUTURE_STATE;
      const state: SyncState = { streams: {} };
      for (const c of b.incrementalCatalog.streams) state.streams[streamKey(c.stream.name, c.stream.namespace)] = future(c.stream);
      const run = await readAll(options.source, b.config, b.incrementalCatalog, state);
      assertNoRecords(run, 'incremental read from a future state');
      assertCheckpointPerStream(run, b.incrementalCatalog, 'incremental read from a future state');
    },
  },
  emptyStreams: {
    name: 'empty streams still yield a checkpoint',
    async run(options) {
      if (options.emptyConfig === undefined) throw new Error('emptyStreams: this case needs the emptyConfig option');
      const b = await baseline(options);
      const config = await parsedConfig(options, options.emptyConfig);
      for (const [what, catalog] of [
        ['full read with emptyConfig', b.fullCatalog],
        ['incremental read with emptyConfig', b.incrementalCatalog],
      ] as const) {
        if (catalog.streams.length === 0) continue;
        const run = await readAll(options.source, config, catalog, { streams: {} });
        const withRecords = recordsByStream(run);
        const empty = catalog.streams.filter((c) => !withRecords.has(streamKey(c.stream.name, c.stream.namespace)));
        if (empty.length === 0) throw new Error(`${what}: every stream has records, so emptyConfig does not make any stream empty`);
        assertCheckpointPerStream(run, catalog, what);
      }
    },
  },
} satisfies Record<string, SourceCase>;

export type SourceCaseName = keyof typeof sourceCases;

const INCREMENTAL_CASES: readonly SourceCaseName[] = ['incrementalFromFinalState', 'resumeFromEveryCheckpoint', 'futureState'];

/** The cases that apply to these options (not applicable ones are not registered at all). */
export function applicableSourceCases(options: SourceConformanceOptions): SourceCaseName[] {
  if (options.emptyConfig === undefined && options.emptyStreams !== false) {
    throw new Error('sourceConformance: pass emptyConfig (a config with an empty stream) or declare emptyStreams: false');
  }
  return (Object.keys(sourceCases) as SourceCaseName[]).filter((name) => {
    if (INCREMENTAL_CASES.includes(name)) return options.source.spec.supportsIncremental !== false;
    if (name === 'emptyStreams') return options.emptyConfig !== undefined;
    if (name === 'completeness') return options.expectedKeys !== undefined;
    return true;
  });
}

/**
 * Registers the source conformance suite: one `describe` with one named `it` per
 * applicable case. Cases share one discover and one baseline read per call.
 */
export function sourceConformance(options: SourceConformanceOptions): void {
  const names = applicableSourceCases(options);
  describe(`source conformance: ${options.source.name}`, () => {
    for (const name of names) {
      const c: SourceCase = sourceCases[name];
      it(c.name, () => c.run(options));
    }
  });
}
