import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  checkpoint,
  createFileStateStore,
  defineSource,
  parseConfig,
  record,
  runSync,
  seededRandom,
  TributaryError,
  type ConfiguredAirbyteCatalog,
  type RecordData,
  type SourceMessage,
} from '@tributary/core';
import { applyRetention, compactLake, lakeConfigSchema, lakeDestination, loadLakeState, openStore, readStreamRows } from '../src/index.js';
import { LEASE_PREFIX, fileOwner, leaseOwner } from '../src/commit-log.js';
import { cdcFields, duckQuery, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

// Randomized fault injection into the lake's S3 commit protocol. A proxy in front of moto
// decides per S3 request, with a seeded PRNG (one sequence per kind of request: method and
// key family, so concurrent uploads do not reorder another family's faults), to pass it,
// answer 500 InternalError or 503 SlowDown without forwarding it, reset the connection
// before forwarding it, or forward it and then lose the answer (connection reset, or a 500
// in its place): the request took effect and the client did not hear it. GETs may also have
// their body cut off halfway; conditional creates (`If-None-Match: *`) may be answered 409
// before or after they took effect, and fail twice as often. Now and then a kind of write has
// an outage long enough to outlast every retry (a commit stored whose answers were all lost).
//
// Per seed: three keyed streams (two CDC streams with inserts, updates and deletes carrying
// `_tributary_position`, one plain stream with a cursor) grow over several syncs, run with
// the runtime (`runSync`, its retries, checkpoints saved only after the destination's
// commit) in many small commits under faults; some syncs also crash their source midway. A
// sync that fails outright is resumed as a restarted process would be: a new session from the
// state store's last checkpoint. Only retryable errors and the injected crash may fail a sync.
// Between syncs, compaction and retention (grace 0, orphan age 0) sometimes run under faults
// too, and again without faults when they fail.
//
// With faults off at the end: every record the source sent whose event is not before the last
// retention cutoff is stored exactly once (by the library's rows, and by a separate DuckDB
// over local copies of the files the log names) and no expired one is; no file the log names
// is missing; the trash is emptied; and every data file the log does not name is swept by
// compaction, at once unless its writer's lease is still there (a release that failed under
// faults), and once those leases are gone (as after their hour) in the next run.
//
// Deterministic regressions the probe found are at the end of the file.
let moto: MotoServer;
let proxy: Server;
let proxyEndpoint: string;
let work: string;

/** Each bucket's (seed's) fault plan of the current phase; none: every request passes. */
const faults = new Map<string, FaultPlan>();
/** Per bucket, the kind of request (see `requestKind`) whose next answer is cut short once (the deterministic tests). */
const truncateNext = new Map<string, string>();

type Fault = 'pass' | 'error500' | 'slowDown' | 'resetBefore' | 'lostAnswer' | 'late500' | 'truncated' | 'conflict409' | 'late409';
/** Faults any request may get; a GET may also get its body cut short, a conditional PUT a 409 (before or after it took effect). */
const COMMON_FAULTS = ['error500', 'slowDown', 'resetBefore', 'lostAnswer', 'late500'] as const;
const GET_FAULTS = [...COMMON_FAULTS, 'truncated'] as const;
const CONDITIONAL_FAULTS = [...COMMON_FAULTS, 'conflict409', 'late409'] as const;

/** Chance per request that an outage of its kind starts, and the least number of requests it lasts (up to twice that). */
const BURST_RATE = 0.006;
const BURST_MIN = 20;

/** Per kind of request, its own seeded sequence of decisions. */
class FaultPlan {
  private readonly streams = new Map<string, () => number>();
  /** Per kind, an outage in progress: this fault for every request of the kind until `left` runs out. */
  private readonly bursts = new Map<string, { fault: Fault; left: number }>();
  readonly counts = new Map<Fault, number>();
  constructor(
    private readonly seed: number,
    /** Chance that a request fails (conditional creates: twice this). */
    private readonly rate: number,
  ) {}

  decide(kind: string): Fault {
    let next = this.streams.get(kind);
    if (next === undefined) this.streams.set(kind, (next = seededRandom(this.seed * 7919 + hashText(kind))));
    const roll = next();
    const menu: readonly Fault[] = kind.startsWith('GET ') ? GET_FAULTS : kind.startsWith('PUT-IF-ABSENT ') ? CONDITIONAL_FAULTS : COMMON_FAULTS;
    // Now and then an outage of one kind of write, long enough to outlast the SDK's and the
    // runtime's retries: a commit stored whose every answer was lost fails its sync, which is
    // resumed. (Reads are spared: an outage of them only fails every resume's open.)
    const burst = this.bursts.get(kind);
    if (burst !== undefined && burst.left-- > 0) return this.count(burst.fault);
    if (roll < BURST_RATE && !kind.startsWith('GET ') && !kind.startsWith('LIST ')) {
      const fault = menu[Math.floor((roll / BURST_RATE) * menu.length)]!;
      this.bursts.set(kind, { fault, left: BURST_MIN + Math.floor(next() * BURST_MIN) });
      return this.count(fault);
    }
    // Conditional creates (log entries, checkpoints, schema claims) fail twice as often: the commit protocol's own step.
    const rate = kind.startsWith('PUT-IF-ABSENT ') ? Math.min(0.6, 2 * this.rate) : this.rate;
    return this.count(roll >= rate ? 'pass' : menu[Math.floor((roll / rate) * menu.length)]!);
  }

  private count(fault: Fault): Fault {
    this.counts.set(fault, (this.counts.get(fault) ?? 0) + 1);
    return fault;
  }
}

function hashText(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** `PUT-IF-ABSENT log`, `GET data`, `LIST checkpoints`, `DELETE-MANY trash`, `PUT leases`: the operation and the lake-relative key family. */
function requestKind(req: IncomingMessage): string {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const parts = url.pathname.split('/').filter(Boolean); // bucket, 'lake', …key
  const prefix = url.searchParams.get('prefix');
  const key = prefix !== null ? prefix.split('/').slice(1) : parts.slice(2);
  const family = key[0] === '_tributary' ? (key[1] ?? '') : (key[0] ?? '');
  const verb = url.searchParams.has('delete') ? 'DELETE-MANY' : prefix !== null ? 'LIST' : req.method === 'PUT' && req.headers['if-none-match'] === '*' ? 'PUT-IF-ABSENT' : req.method;
  return `${verb} ${family}`;
}

const bucketOf = (req: IncomingMessage): string => new URL(req.url ?? '/', 'http://proxy').pathname.split('/')[1] ?? '';

function answerError(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected ${code}</Message><RequestId>probe9</RequestId></Error>`);
}

async function startFaultProxy(target: string): Promise<Server> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bucket = bucketOf(req);
      let fault = faults.get(bucket)?.decide(requestKind(req)) ?? 'pass';
      if (truncateNext.get(bucket) === requestKind(req)) {
        truncateNext.delete(bucket);
        fault = 'truncated';
      }
      if (fault === 'error500') return answerError(res, 500, 'InternalError');
      if (fault === 'slowDown') return answerError(res, 503, 'SlowDown');
      if (fault === 'resetBefore') return void req.socket.destroy();
      if (fault === 'conflict409') return answerError(res, 409, 'ConditionalRequestConflict');
      const forwarded = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (c: Buffer) => body.push(c));
        answer.on('end', () => {
          if (fault === 'lostAnswer') return void req.socket.destroy();
          if (fault === 'late500') return answerError(res, 500, 'InternalError');
          if (fault === 'late409') return answerError(res, 409, 'ConditionalRequestConflict');
          const whole = Buffer.concat(body);
          if (fault === 'truncated' && whole.length > 1) {
            // The headers (with the whole length) and half the body, then the connection goes.
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.write(whole.subarray(0, whole.length >> 1), () => req.socket.destroy());
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(whole);
        });
      });
      forwarded.on('error', () => req.socket.destroy());
      forwarded.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startFaultProxy(moto.endpoint);
  proxyEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  work = await mkdtemp(join(tmpdir(), 'tributary-lake-probe9-'));
}, 60_000);
afterAll(async () => {
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  await moto?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

// --- the source -------------------------------------------------------------------------

const STREAMS = ['orders', 'users', 'clicks'] as const;
type StreamName = (typeof STREAMS)[number];
const CDC: Record<StreamName, boolean> = { orders: true, users: true, clicks: false };
const RECORDS = 160;
const CHECKPOINT_EVERY = 4;
const DAY_MS = 86_400_000;
const JAN_1 = Date.UTC(2024, 0, 1);

interface SourceRecordOf {
  stream: StreamName;
  data: RecordData;
}

/** The seed's records, in the order the source reads them: each has a unique `rid`. */
function dataset(seed: number): SourceRecordOf[] {
  const random = seededRandom(seed);
  const live = new Map<StreamName, number[]>(STREAMS.map((s) => [s, []]));
  let nextId = 1;
  const out: SourceRecordOf[] = [];
  for (let rid = 1; rid <= RECORDS; rid++) {
    const stream = STREAMS[Math.floor(random() * STREAMS.length)]!;
    // Event times rise with the read position, with noise, over January 1–12: retention cutoffs fall inside files.
    const eventMs = JAN_1 + Math.floor((rid / RECORDS) * 10 * DAY_MS + random() * 2 * DAY_MS);
    const ids = live.get(stream)!;
    const roll = random();
    let op: 'c' | 'u' | 'd' = 'c';
    let id: number;
    if (CDC[stream] && ids.length > 0 && roll < 0.3) {
      op = 'u';
      id = ids[Math.floor(random() * ids.length)]!;
    } else if (CDC[stream] && ids.length > 0 && roll < 0.45) {
      op = 'd';
      id = ids.splice(Math.floor(random() * ids.length), 1)[0]!;
    } else {
      id = nextId++;
      ids.push(id);
    }
    const data: RecordData = {
      id,
      tenant_id: id % 2 === 0 ? 't1' : 't2',
      customer_id: `c${id % 5}`,
      event_time: new Date(eventMs).toISOString(),
      rid,
      amount: Math.round(random() * 10_000) / 100,
      status: ['new', 'paid', 'shipped'][Math.floor(random() * 3)]!,
    };
    if (CDC[stream]) Object.assign(data, { _tributary_op: op, _tributary_position: `0/${rid.toString(16).padStart(8, '0')}`, _tributary_commit_time: data.event_time });
    else data.seq = rid;
    out.push({ stream, data });
  }
  return out;
}

const datasets = new Map<number, SourceRecordOf[]>();
const datasetOf = (seed: number): SourceRecordOf[] => datasets.get(seed) ?? datasets.set(seed, dataset(seed)).get(seed)!;

function jsonSchemaOf(stream: StreamName): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    id: { type: 'integer' },
    tenant_id: { type: 'string' },
    customer_id: { type: 'string' },
    event_time: { type: 'string', format: 'date-time' },
    rid: { type: 'integer' },
    amount: { type: 'number' },
    status: { type: 'string' },
    ...(CDC[stream] ? cdcFields : { seq: { type: 'integer' } }),
  };
  return { type: 'object', properties };
}

const catalogStreams = STREAMS.map((name) => ({
  name,
  json_schema: jsonSchemaOf(name),
  supported_sync_modes: ['incremental' as const],
  source_defined_primary_key: [['id']],
  ...(CDC[name] ? {} : { default_cursor_field: ['seq'] }),
}));
const catalog: ConfiguredAirbyteCatalog = {
  streams: catalogStreams.map((stream) => ({ stream, sync_mode: 'incremental', destination_sync_mode: 'append_dedup', primary_key: [['id']], ...(stream.default_cursor_field ? { cursor_field: stream.default_cursor_field } : {}) })),
};

/**
 * Reads the seed's first `limit` records from each stream's offset (its state), with a
 * checkpoint every CHECKPOINT_EVERY records of a stream and one per stream at the end;
 * `crashAt`: the read position at which it throws (a crash of the sync midway).
 */
const probeSource = defineSource({
  name: 'probe9',
  spec: {
    connectionSpecification: {
      type: 'object',
      properties: { seed: { type: 'integer' }, limit: { type: 'integer' }, crashAt: { type: 'integer' } },
      required: ['seed', 'limit'],
    },
  },
  async check() {},
  async discover() {
    return { streams: catalogStreams };
  },
  async *read(_ctx, config, _catalog, state): AsyncGenerator<SourceMessage> {
    const all = datasetOf(config.seed);
    const offsets = new Map(STREAMS.map((s) => [s, Number((state.streams[s] as { offset?: number } | undefined)?.offset ?? 0)]));
    const seen = new Map<StreamName, number>(STREAMS.map((s) => [s, 0]));
    for (let i = 0; i < config.limit; i++) {
      const { stream, data } = all[i]!;
      const n = seen.get(stream)! + 1;
      seen.set(stream, n);
      if (n <= offsets.get(stream)!) continue;
      if (i === config.crashAt) throw new TributaryError('fatal', { userMessage: 'probe9: injected source crash' });
      yield record(stream, structuredClone(data));
      if (n % CHECKPOINT_EVERY === 0) yield checkpoint(stream, { offset: n });
    }
    for (const s of STREAMS) yield checkpoint(s, { offset: Math.max(seen.get(s)!, offsets.get(s)!) });
  },
});

// The runtime's retry policy for the lake with short delays (the schedule is not under test).
const destination = { ...lakeDestination, retry: { maxAttempts: 6, baseDelayMs: 10, maxDelayMs: 100 } };

// --- the scenario -------------------------------------------------------------------------

interface Run {
  seed: number;
  bucket: string;
  viaProxy: Record<string, unknown>;
  direct: Record<string, unknown>;
  stateDir: string;
  random: () => number;
  /** Why syncs and maintenance runs failed (for the failure message). */
  failures: string[];
  cutoff: number | undefined;
}

/** Runs a sync to completion: each failed run (faults, an injected crash) is resumed by a new one from the saved state. */
async function syncToCompletion(run: Run, limit: number, crashAt: number | undefined): Promise<number> {
  for (let attempt = 1; attempt <= 12; attempt++) {
    let outcome: string;
    let error: TributaryError | undefined;
    try {
      const result = await runSync({
        connection: 'probe9',
        source: probeSource,
        sourceConfig: { seed: run.seed, limit, ...(attempt === 1 && crashAt !== undefined ? { crashAt } : {}) },
        destination,
        destinationConfig: run.viaProxy,
        catalog,
        stateStore: createFileStateStore(run.stateDir),
        batching: { maxRecords: 6, commitIntervalMs: 1 },
      });
      outcome = result.outcome;
      error = result.error;
    } catch (e) {
      outcome = 'threw';
      error = TributaryError.is(e) ? e : new TributaryError('fatal', { userMessage: String(e) });
    }
    if (outcome === 'completed') return attempt;
    run.failures.push(`sync(limit ${limit}) attempt ${attempt} ${outcome}: ${error?.kind} ${error?.userMessage} ${error?.internalMessage ?? ''}`.slice(0, 400));
    // Only faults (retryable kinds) and the injected crash may fail a sync.
    if (error && !error.retryable && !error.userMessage.includes('injected source crash')) throw new Error(`seed ${run.seed}: a sync failed with a non-retryable error: ${run.failures.at(-1)}`);
  }
  throw new Error(`seed ${run.seed}: sync(limit ${limit}) did not complete in 12 runs:\n${run.failures.slice(-12).join('\n')}`);
}

/** Maintenance under faults; when it fails, again without faults (which must succeed). */
async function maintain(run: Run, what: string, task: (config: Record<string, unknown>) => Promise<unknown>): Promise<void> {
  try {
    await task(run.viaProxy);
    return;
  } catch (error) {
    run.failures.push(`${what} under faults: ${(error as Error).message}`.slice(0, 300));
  }
  const plan = faults.get(run.bucket);
  faults.delete(run.bucket);
  try {
    await task(run.viaProxy);
  } finally {
    if (plan) faults.set(run.bucket, plan);
  }
}

async function scenario(seed: number): Promise<Run> {
  const bucket = `probe9-faults-${seed}`;
  await moto.createBucket(bucket);
  const run: Run = {
    seed,
    bucket,
    viaProxy: motoLakeConfig(proxyEndpoint, bucket, { partitioning: 'tenant_month' }),
    direct: motoLakeConfig(moto.endpoint, bucket, { partitioning: 'tenant_month' }),
    stateDir: join(work, `state-${seed}`),
    random: seededRandom(seed ^ 0x5eed),
    failures: [],
    cutoff: undefined,
  };
  const steps = Number(process.env.PROBE9_STEPS ?? 4);
  for (let step = 1; step <= steps; step++) {
    const limit = Math.round((RECORDS * step) / steps);
    const from = Math.round((RECORDS * (step - 1)) / steps);
    const crashAt = run.random() < 0.4 ? from + Math.floor(run.random() * (limit - from)) : undefined;
    const plan = new FaultPlan(seed * 100 + step, Number(process.env.PROBE9_RATE ?? 0.2));
    faults.set(bucket, plan);
    const runs = await syncToCompletion(run, limit, crashAt);
    if (process.env.PROBE9_VERBOSE) console.log(`seed ${seed} step ${step}: ${runs} run(s), faults ${JSON.stringify([...plan.counts])}`);
    if (run.random() < 0.6) await maintain(run, 'compaction', (config) => compactLake(config, { minFiles: 2, graceMs: 0, orphanAgeMs: 0 }));
    if (step >= 2 && run.random() < 0.5) {
      const cutoff = JAN_1 + Math.floor(step * DAY_MS);
      run.cutoff = Math.max(run.cutoff ?? 0, cutoff);
      await maintain(run, 'retention', (config) => applyRetention(config, { before: run.cutoff!, graceMs: 0 }));
    }
    faults.delete(bucket);
  }
  return run;
}

/** Runs compaction without faults until it merges nothing, then once more to empty the trash its own last merge wrote. */
async function compactUntilSettled(config: Record<string, unknown>): Promise<number> {
  let orphans = 0;
  for (let i = 0; i < 5; i++) {
    const result = await compactLake(config, { minFiles: 2, graceMs: 0, orphanAgeMs: 0 });
    orphans += result.orphansDeleted;
    if (result.partitions === 0) return orphans + (await compactLake(config, { minFiles: 2, graceMs: 0, orphanAgeMs: 0 })).orphansDeleted;
  }
  throw new Error('compaction kept merging');
}

async function verify(run: Run): Promise<void> {
  const config = run.direct;
  if (run.cutoff !== undefined) await applyRetention(config, { before: run.cutoff, graceMs: 0 });
  await compactUntilSettled(config);

  const expected = new Map<StreamName, number[]>(STREAMS.map((s) => [s, []]));
  for (const { stream, data } of datasetOf(run.seed)) {
    if (run.cutoff === undefined || Date.parse(String(data.event_time)) >= run.cutoff) expected.get(stream)!.push(Number(data.rid));
  }

  // The library's rows: each record once, by event id and by its rid.
  for (const stream of STREAMS) {
    const rows = await readStreamRows(config, { stream });
    const ids = rows.map((r) => r.event_id);
    expect(new Set(ids).size, `seed ${run.seed} ${stream}: duplicate event ids`).toBe(ids.length);
    expect(rows.map((r) => Number(r.payload.rid)).sort((a, b) => a - b), `seed ${run.seed} ${stream}: rids stored`).toEqual(expected.get(stream));
  }

  const store = openStore(parseConfig(lakeConfigSchema, config));
  try {
    const state = await loadLakeState(store);
    const stored = new Set((await store.list('data/')).filter((k) => k.endsWith('.parquet')));
    // Every file the log names exists.
    expect([...state.files.keys()].filter((path) => !stored.has(path)), `seed ${run.seed}: files the log names that are missing`).toEqual([]);
    expect(state.quarantine, `seed ${run.seed}: no record is quarantined`).toEqual([]);

    // A separate DuckDB over local copies of exactly the files the log names.
    const copies = join(work, `copies-${run.seed}`);
    const paths: string[] = [];
    for (const path of state.files.keys()) paths.push(await store.localCopy(path, copies));
    const direct = await duckQuery(`SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS ids, count(DISTINCT stream || ':' || rid)::INT AS rids FROM read_parquet([${paths.map((p) => `'${p}'`).join(', ')}], union_by_name = true)`);
    const total = STREAMS.reduce((n, s) => n + expected.get(s)!.length, 0);
    expect(direct, `seed ${run.seed}: DuckDB over the logged files`).toEqual([{ n: total, ids: total, rids: total }]);
    await rm(copies, { recursive: true, force: true });

    // The trash is emptied, and files no entry names are left only to writers whose lease is still there.
    expect(await store.list('_tributary/trash/'), `seed ${run.seed}: trash records left`).toEqual([]);
    const leases = await store.list(LEASE_PREFIX);
    const leased = new Set(leases.map(leaseOwner));
    const unnamed = [...stored].filter((path) => !state.files.has(path));
    expect(unnamed.filter((path) => !leased.has(fileOwner(path) ?? '')), `seed ${run.seed}: unnamed files without a lease, not swept`).toEqual([]);
    // Those leases were left by releases that failed under faults; once gone (as after their hour), the next run sweeps the files.
    await store.delete(leases);
    const swept = (await compactLake(config, { minFiles: 2, graceMs: 0, orphanAgeMs: 0 })).orphansDeleted;
    expect(swept, `seed ${run.seed}: orphans swept once their leases lapsed`).toBe(unnamed.length);
    const left = (await store.list('data/')).filter((k) => !state.files.has(k));
    expect(left, `seed ${run.seed}: data files the log does not name`).toEqual([]);
  } finally {
    store.close();
  }
}

// To explore: PROBE9_SEEDS=1,2,3 PROBE9_RATE=0.3 PROBE9_STEPS=6 PROBE9_VERBOSE=1 (the defaults, 2 seeds, take about 50 s on 2 cores; 18 seeds passed when the test was written).
const SEEDS = process.env.PROBE9_SEEDS ? process.env.PROBE9_SEEDS.split(',').map(Number) : [11, 23];
for (const seed of SEEDS) {
  it.concurrent(`seed ${seed}: syncs, compaction and retention under random S3 faults store every record once and leave a clean lake`, async () => {
    const run = await scenario(seed);
    if (process.env.PROBE9_VERBOSE) console.log(`seed ${seed}:\n${run.failures.join('\n')}`);
    try {
      await verify(run);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nfailures under faults (seed ${seed}):\n${run.failures.join('\n')}`, { cause: error });
    }
  }, 180_000);
}

// --- deterministic regressions found by the probe -----------------------------------------

// A GetObject's body is a stream the AWS SDK hands over unread: a connection dropped in the
// middle of it is not retried by the SDK (it retries failures before the answer's headers).
// One such drop among the GETs of a session's open failed the sync (the runtime does not
// retry opening), and one in a reader's download failed the read.
const clicks = (...ids: number[]): RecordData[] => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-05T00:00:00Z' }));
const clickStream = { key: 'clicks', name: 'clicks', syncMode: 'incremental' as const, destinationSyncMode: 'append_dedup' as const, primaryKey: [['id']], cursorField: [], jsonSchema: { type: 'object', properties: { id: { type: 'integer' }, tenant_id: { type: 'string' }, customer_id: { type: 'string' }, event_time: { type: 'string', format: 'date-time' } } }, resuming: false };

it('a log entry whose download breaks off mid-body is read again: the session opens and commits', async () => {
  const bucket = 'probe9-cut-log';
  await moto.createBucket(bucket);
  await writeSession(motoLakeConfig(moto.endpoint, bucket), clickStream, [clicks(1, 2)]);
  truncateNext.set(bucket, 'GET log');
  // Seen without the fix: the open failed with "aborted" (ECONNRESET), so the sync did.
  await writeSession(motoLakeConfig(proxyEndpoint, bucket), clickStream, [clicks(3)]);
  expect(truncateNext.has(bucket)).toBe(false);
  expect((await readStreamRows(motoLakeConfig(moto.endpoint, bucket), { stream: 'clicks' })).map((r) => Number(r.payload.id)).sort()).toEqual([1, 2, 3]);
});

it('a data file whose download breaks off mid-body is downloaded again: the read succeeds', async () => {
  const bucket = 'probe9-cut-data';
  await moto.createBucket(bucket);
  await writeSession(motoLakeConfig(moto.endpoint, bucket), clickStream, [clicks(1, 2)]);
  truncateNext.set(bucket, 'GET data');
  // Seen without the fix: readStreamRows failed with "aborted".
  expect((await readStreamRows(motoLakeConfig(proxyEndpoint, bucket), { stream: 'clicks' })).map((r) => Number(r.payload.id)).sort()).toEqual([1, 2]);
  expect(truncateNext.has(bucket)).toBe(false);
});
