import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkpoint,
  createConnectorContext,
  createFileStateStore,
  defineDestination,
  defineSource,
  defineWriter,
  record,
  runSync,
  TributaryError,
  writerDestination,
  type ConfiguredAirbyteCatalog,
  type Destination,
  type DestinationStream,
  type RecordData,
  type SourceMessage,
  type StateStore,
  type SyncOptions,
  type SyncState,
  type WriterSession,
} from '@tributary/core';

/**
 * Runtime semantics, checked with a counting source and a destination that keeps what it
 * was given apart from what it committed — the two quantities the checkpoint contract is
 * about. Real files back the state store.
 */

const sourceSchema = {
  type: 'object',
  properties: {
    count: { type: 'integer', default: 100 },
    every: { type: 'integer', default: 10 },
    failAt: { type: 'integer' },
    token: { type: 'string', airbyte_secret: true },
    leakToken: { type: 'boolean', default: false },
  },
} as const;

/** Emits records {id: i} for i in [offset, count) and a checkpoint {offset} every `every`. */
const countingSource = defineSource({
  name: 'counting',
  spec: { connectionSpecification: sourceSchema },
  async check() {},
  async discover() {
    return {
      streams: [
        {
          name: 'items',
          json_schema: { type: 'object', properties: { id: { type: 'integer' } } },
          supported_sync_modes: ['full_refresh', 'incremental'],
          source_defined_primary_key: [['id']],
        },
      ],
    };
  },
  async *read(ctx, config, _catalog, state): AsyncGenerator<SourceMessage> {
    const start = Number(state.streams.items?.offset ?? 0);
    for (let i = start; i < config.count; i++) {
      if (config.failAt === i) throw new TributaryError('transient', { userMessage: `source broke at ${i}` });
      yield record('items', { id: i });
      if ((i + 1) % config.every === 0) {
        yield checkpoint('items', config.leakToken ? { offset: i + 1, token: config.token ?? '' } : { offset: i + 1 });
      }
      if (ctx.signal.aborted) return;
    }
    yield checkpoint('items', config.leakToken ? { offset: config.count, token: config.token ?? '' } : { offset: config.count });
  },
});

interface MemoryTarget {
  written: RecordData[];
  durable: RecordData[];
  commits: number;
  failCommitAt?: number;
  slowWriteMs?: number;
  /** Largest (records read by the source − records written) seen at a write. */
  maxBuffered: number;
  readCounter: { value: number };
}

function memoryDestination(target: MemoryTarget): Destination {
  return defineDestination({
    name: 'memory',
    delivery: 'upsert',
    spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append', 'append_dedup', 'overwrite'] },
    async check() {},
    async open() {
      let uncommitted: RecordData[] = [];
      return {
        async write(batch) {
          if (target.slowWriteMs) await new Promise((r) => setTimeout(r, target.slowWriteMs));
          target.maxBuffered = Math.max(target.maxBuffered, target.readCounter.value - target.written.length);
          for (const r of batch.records) uncommitted.push(r);
          for (const r of batch.records) target.written.push(r);
        },
        async commit() {
          target.commits++;
          if (target.failCommitAt === target.commits) throw new TributaryError('fatal', { userMessage: 'disk on fire' });
          for (const r of uncommitted) target.durable.push(r); // (a spread of 10^5+ arguments overflows the stack)
          uncommitted = [];
        },
        async close() {},
      };
    },
  });
}

function catalog(syncMode: 'incremental' | 'full_refresh' = 'incremental'): ConfiguredAirbyteCatalog {
  return {
    streams: [
      {
        stream: {
          name: 'items',
          json_schema: { type: 'object' },
          supported_sync_modes: ['full_refresh', 'incremental'],
          source_defined_primary_key: [['id']],
        },
        sync_mode: syncMode,
        destination_sync_mode: 'append_dedup',
        cursor_field: ['id'],
      },
    ],
  };
}

let dir: string;
let store: StateStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-runtime-'));
  store = createFileStateStore(dir);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function newTarget(extra: Partial<MemoryTarget> = {}): MemoryTarget {
  return { written: [], durable: [], commits: 0, maxBuffered: 0, readCounter: { value: 0 }, ...extra };
}

/** runSync with the counting source and the memory destination; `options` override. */
function syncInto(target: MemoryTarget, options: Partial<SyncOptions> & { sourceConfig: Record<string, unknown> }) {
  return runSync({
    connection: 'c',
    source: countingSource,
    destination: memoryDestination(target),
    destinationConfig: {},
    catalog: catalog(),
    stateStore: store,
    ...options,
  });
}

/** Wraps a store so every save is checked against what the destination made durable. */
function auditedStore(inner: StateStore, target: MemoryTarget, violations: string[]): StateStore {
  return {
    ...inner,
    location: inner.location,
    async save(connection, state: SyncState) {
      const offset = Number(state.streams.items?.offset ?? 0);
      const durableIds = new Set(target.durable.map((r) => r.id));
      for (let i = 0; i < offset; i++) if (!durableIds.has(i)) violations.push(`state offset ${offset} saved before record ${i} was durable`);
      await inner.save(connection, state);
    },
    load: (c) => inner.load(c),
    reset: (c, s) => inner.reset(c, s),
    list: () => inner.list(),
    close: () => inner.close(),
  };
}

describe('runSync', () => {
  it('commits a checkpoint only after the destination made every record before it durable', async () => {
    const target = newTarget();
    const violations: string[] = [];
    const result = await syncInto(target, {
      sourceConfig: { count: 5_000, every: 7 },
      stateStore: auditedStore(store, target, violations),
      batching: { maxRecords: 64, commitIntervalMs: 0 },
    });
    expect(result.outcome).toBe('completed');
    expect(violations).toEqual([]);
    expect(target.durable.map((r) => r.id)).toEqual([...Array(5_000).keys()]);
    expect((await store.load('c'))?.streams.items).toEqual({ offset: 5_000 });
    expect(target.commits).toBeGreaterThan(1);
  });

  it('keeps the last acknowledged state when the destination fails, and the rerun loses nothing', async () => {
    const target = newTarget({ failCommitAt: 4 });
    const first = await syncInto(target, {
      sourceConfig: { count: 2_000, every: 10 },
      batching: { maxRecords: 100, commitIntervalMs: 0 },
    });
    expect(first.outcome).toBe('failed');
    expect(first.error?.userMessage).toBe('disk on fire');
    const saved = Number((await store.load('c'))?.streams.items?.offset ?? 0);
    expect(saved).toBeGreaterThan(0);
    expect(saved).toBeLessThanOrEqual(target.durable.length);

    const second = await syncInto(target, {
      sourceConfig: { count: 2_000, every: 10 },
    });
    expect(second.outcome).toBe('completed');
    const ids = new Set(target.durable.map((r) => r.id));
    expect(ids.size).toBe(2_000);
  });

  it('commits what was read when the source fails mid-stream, then resumes from there', async () => {
    const target = newTarget();
    const first = await syncInto(target, {
      sourceConfig: { count: 1_000, every: 10, failAt: 555 },
    });
    expect(first.outcome).toBe('failed');
    expect(first.error?.kind).toBe('transient');
    expect((await store.load('c'))?.streams.items).toEqual({ offset: 550 });

    const second = await syncInto(target, {
      sourceConfig: { count: 1_000, every: 10 },
    });
    expect(second.outcome).toBe('completed');
    // 550..554 were delivered twice (at least once); nothing is missing.
    expect(new Set(target.durable.map((r) => r.id)).size).toBe(1_000);
    expect(target.durable.length).toBe(1_005);
  });

  it('applies backpressure: a slow destination bounds what is buffered', async () => {
    const readCounter = { value: 0 };
    const target = newTarget({ slowWriteMs: 2, readCounter });
    const counted = defineSource({
      ...countingSource,
      async *read(ctx, config, cat, state) {
        for await (const m of countingSource.read(ctx, config, cat, state)) {
          if (m.kind === 'record') readCounter.value++;
          yield m;
        }
      },
    });
    const result = await syncInto(target, {
      source: counted,
      sourceConfig: { count: 50_000, every: 1_000 },
      batching: { maxRecords: 500, maxBatchesInFlight: 2 },
    });
    expect(result.outcome).toBe('completed');
    // In flight at most: the batch being written, the queued ones, the one the reader holds.
    expect(target.maxBuffered).toBeLessThanOrEqual(500 * (2 + 3));
  });

  it('stops on abort, commits, and the next run resumes exactly where it stopped', async () => {
    const target = newTarget();
    const controller = new AbortController();
    const slowSource = defineSource({
      ...countingSource,
      async *read(ctx, config, cat, state) {
        for await (const m of countingSource.read(ctx, config, cat, state)) {
          if (m.kind === 'record' && m.data.id === 3_333) controller.abort();
          yield m;
        }
      },
    });
    const first = await syncInto(target, {
      source: slowSource,
      sourceConfig: { count: 10_000, every: 100 },
      signal: controller.signal,
    });
    expect(first.outcome).toBe('interrupted');
    const offset = Number((await store.load('c'))?.streams.items?.offset);
    expect(offset).toBe(3_300);
    await syncInto(target, {
      sourceConfig: { count: 10_000, every: 100 },
    });
    expect(new Set(target.durable.map((r) => r.id)).size).toBe(10_000);
  });

  it('lets timers run during a sync that never waits on I/O: a stop requested from a timer is honoured mid-sync', async () => {
    // The counting source and the memory destination never wait on I/O, and no checkpoint
    // falls inside the run, so every await resolves as a microtask. The stop comes from a
    // timer (as the CLI's SIGINT handler does, from the event loop) set at the first write.
    const target = newTarget();
    const controller = new AbortController();
    const count = 300_000;
    const timedSource = defineSource({
      ...countingSource,
      async *read(ctx, config, cat, state) {
        let armed = false;
        for await (const m of countingSource.read(ctx, config, cat, state)) {
          if (!armed && m.kind === 'record' && m.data.id === 1) {
            armed = true;
            setTimeout(() => controller.abort(), 0);
          }
          yield m;
        }
      },
    });
    const result = await syncInto(target, {
      source: timedSource,
      sourceConfig: { count, every: count },
      signal: controller.signal,
      batching: { maxRecords: 1_000, commitIntervalMs: 60_000 },
    });
    expect(result.outcome).toBe('interrupted');
    expect(target.durable.length).toBeLessThan(count);
    expect(target.durable.map((r) => r.id)).toEqual([...Array(target.durable.length).keys()]);
  });

  it('drops the state of a completed full refresh so the next one starts over', async () => {
    const target = newTarget();
    const run = () =>
      syncInto(target, {
        sourceConfig: { count: 300 },
        catalog: catalog('full_refresh'),
      });
    await run();
    expect((await store.load('c'))?.streams.items).toBeUndefined();
    await run();
    expect(target.durable.length).toBe(600);
  });

  it('refuses to store a state that contains a secret', async () => {
    const target = newTarget();
    const result = await syncInto(target, {
      sourceConfig: { count: 100, every: 10, token: 'sup3r-s3cret', leakToken: true },
    });
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toMatch(/secret/);
    expect(JSON.stringify((await store.load('c')) ?? {})).not.toContain('sup3r-s3cret');
  });

  it('fails with a config error naming the field when the source config is invalid', async () => {
    await expect(
      syncInto(newTarget(), {
        sourceConfig: { count: 'many' },
      }),
    ).rejects.toThrow(/source config\.count must be integer/);
  });

  it('fails when the source emits a stream outside the catalog', async () => {
    const rogue = defineSource({
      ...countingSource,
      async *read() {
        yield record('ghosts', { id: 1 });
      },
    });
    const result = await syncInto(newTarget(), {
      source: rogue,
      sourceConfig: {},
    });
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toMatch(/"ghosts", which is not in the configured catalog/);
  });

  it('keeps streams whose names only differ in where the namespace dot falls apart: refused, never merged', async () => {
    // Namespace "a" + stream "b" and stream "a.b" (no namespace) share the key "a.b". Run
    // together, their records went into one destination stream and one state entry.
    const twoStreams = defineSource({
      ...countingSource,
      async *read() {
        yield record('b', { id: 1 }, 'a');
        yield checkpoint('b', { pos: 'namespaced' }, 'a');
        yield record('a.b', { id: 1 });
        yield checkpoint('a.b', { pos: 'dotted' });
      },
    });
    const stream = (name: string, namespace?: string): ConfiguredAirbyteCatalog['streams'][number] => ({
      stream: { name, ...(namespace ? { namespace } : {}), json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] },
      sync_mode: 'incremental',
      destination_sync_mode: 'append',
    });
    const target = newTarget();
    const run = syncInto(target, { source: twoStreams, sourceConfig: {}, catalog: { streams: [stream('b', 'a'), stream('a.b')] } });
    await expect(run).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/both are stored under the key "a\.b"/) });
    expect(target.written).toEqual([]);
    expect(await store.load('c')).toBeUndefined();
  });
});

describe('runSync: one sync per connection', () => {
  it('a second sync of a connection that is syncing is refused before it reads or writes; the first completes', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let reads = 0;
    const gated = defineSource({
      ...countingSource,
      async *read(ctx, config, catalog, state) {
        reads++;
        await held;
        yield* countingSource.read(ctx, config, catalog, state);
      },
    });
    const first = newTarget();
    const running = syncInto(first, { source: gated, sourceConfig: { count: 30, every: 10 } });
    while (reads === 0) await new Promise((r) => setTimeout(r, 1));
    const second = newTarget();
    await expect(syncInto(second, { sourceConfig: { count: 30, every: 10 } })).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/"c" is already being synced by process \d+/) });
    expect(second.written).toEqual([]);
    release();
    expect((await running).outcome).toBe('completed');
    expect(first.durable).toHaveLength(30);
    expect(await store.load('c')).toEqual({ streams: { items: { offset: 30 } } });
    // Released at the end: the next sync runs.
    expect((await syncInto(newTarget(), { sourceConfig: { count: 30, every: 10 } })).outcome).toBe('completed');
  });
});

describe('runSync rate limiting', () => {
  it('reports RATE_LIMITED for running streams when the peer answers 429, then completes', async () => {
    const { createServer } = await import('node:http');
    const { createHttpClient } = await import('@tributary/core');
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      if (requests <= 2) {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end('{"message":"slow down"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items: [{ id: 1 }, { id: 2 }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const httpSource = defineSource({
      ...countingSource,
      rateLimit: { requests: 10, perMs: 1_000 },
      async *read(ctx) {
        const http = createHttpClient(ctx, { baseUrl: `http://127.0.0.1:${port}` });
        try {
          const page = await http.request<{ items: Array<{ id: number }> }>({ method: 'GET', path: '/items' });
          for (const item of page.body.items) yield record('items', item);
          yield checkpoint('items', { offset: page.body.items.length });
        } finally {
          await http.close();
        }
      },
    });
    const target = newTarget();
    const statuses: Array<{ status: string; reason?: string }> = [];
    try {
      const result = await syncInto(target, {
        source: httpSource,
        sourceConfig: {},
        onEvent: (e) => {
          if (e.type === 'status') statuses.push({ status: e.status, ...(e.reasons?.[0] ? { reason: e.reasons[0].type } : {}) });
        },
      });
      expect(result.outcome).toBe('completed');
      expect(statuses).toContainEqual({ status: 'RUNNING', reason: 'RATE_LIMITED' });
      expect(statuses.at(-1)).toEqual({ status: 'COMPLETE' });
      expect(target.durable).toEqual([{ id: 1 }, { id: 2 }]);
      expect(requests).toBe(3);
    } finally {
      server.close();
    }
  });
});

/** A writer of one object, `items` keyed by `id`, whose requests `session` answers; up to `concurrency` requests at once, 25 records each. */
function memoryCrmWriter(concurrency: number, session: WriterSession) {
  return defineWriter({
    name: 'memory-crm',
    spec: { connectionSpecification: { type: 'object' } },
    rateLimit: { requests: 1_000, perMs: 1_000, concurrency },
    maxBatchSize: 25,
    async check() {},
    async discover() {
      return [{ name: 'items', fields: [{ name: 'id', schema: { type: 'integer' } }], idProperties: ['id'], modes: ['upsert'] }];
    },
    async open() {
      return session;
    },
  });
}

describe('runSync with a writer as the destination', () => {
  it('completes with a writer limited to one request at a time, replays come back unchanged', async () => {
    const rows = new Map<string, string>();
    let inFlight = 0;
    let maxInFlight = 0;
    const writer = memoryCrmWriter(1, {
      async write(request) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        return request.records.map((r) => {
          const before = rows.get(r.key);
          rows.set(r.key, r.idempotencyKey);
          return { idempotencyKey: r.idempotencyKey, key: r.key, status: before === undefined ? 'created' : before === r.idempotencyKey ? 'unchanged' : 'updated' };
        });
      },
      async close() {},
    });
    const statuses: string[] = [];
    const destination = writerDestination(writer, { object: 'items', mode: 'upsert', idProperty: 'id', audit: (e) => statuses.push(e.status) });
    const run = () =>
      runSync({ connection: 'w', source: countingSource, sourceConfig: { count: 300, every: 40 }, destination, destinationConfig: {}, catalog: catalog(), stateStore: store });
    expect((await run()).outcome).toBe('completed');
    expect(rows.size).toBe(300);
    expect(maxInFlight).toBe(1);
    await store.reset('w');
    expect((await run()).outcome).toBe('completed');
    expect(statuses.slice(300)).toEqual(Array(300).fill('unchanged'));
  });

  it('reports a record whose key is no usable value (NaN, Infinity) as rejected, not written', async () => {
    const sent: string[] = [];
    const writer = memoryCrmWriter(1, {
      async write(request) {
        sent.push(...request.records.map((r) => r.key));
        return request.records.map((r) => ({ idempotencyKey: r.idempotencyKey, key: r.key, status: 'created' as const }));
      },
      async close() {},
    });
    const audit: Array<{ key: string; status: string }> = [];
    const destination = writerDestination(writer, { object: 'items', mode: 'upsert', idProperty: 'id', audit: (e) => audit.push({ key: e.key, status: e.status }) });
    const stream: DestinationStream = { key: 'items', name: 'items', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['id'], jsonSchema: { type: 'object' }, resuming: false };
    const session = await destination.open(createConnectorContext(), {}, [stream]);
    try {
      const outcome = await session.write({ stream: 'items', records: [{ id: 1 }, { id: Number.NaN }, { id: 2 }, { id: Number.POSITIVE_INFINITY }], emittedAt: 0 });
      expect(sent).toEqual(['1', '2']);
      expect(audit.filter((e) => e.status === 'failed')).toHaveLength(2);
      expect(outcome?.rejected?.map((r) => r.index)).toEqual([1, 3]);
    } finally {
      await session.close({ completed: true });
    }
  });

  it('saves each checkpoint only after the audit entries of every record written before it were flushed', async () => {
    const writer = memoryCrmWriter(2, {
      async write(request) {
        return request.records.map((r) => ({ idempotencyKey: r.idempotencyKey, key: r.key, status: 'created' as const }));
      },
      async close() {},
    });
    let audited = 0;
    let flushed = 0;
    const destination = writerDestination(writer, {
      object: 'items',
      mode: 'upsert',
      idProperty: 'id',
      audit: () => audited++,
      flushAudit: async () => {
        await new Promise((r) => setTimeout(r, 1));
        flushed = audited;
      },
    });
    // At each save: how many records were audited, and how many of those were flushed.
    const atSave: Array<[number, number]> = [];
    const watched: StateStore = { ...store, save: async (connection, state) => (atSave.push([audited, flushed]), store.save(connection, state)) };
    const result = await runSync({ connection: 'audit', source: countingSource, sourceConfig: { count: 300, every: 40 }, destination, destinationConfig: {}, catalog: catalog(), stateStore: watched, batching: { maxRecords: 40, commitIntervalMs: 0 } });
    expect(result.outcome).toBe('completed');
    expect(audited).toBe(300);
    expect(atSave.length).toBeGreaterThan(1);
    for (const [a, f] of atSave) expect(f).toBe(a);
  });
});

/** A source that yields what `script` yields, for streams `a` and `b` (see `scriptedCatalog`). */
/** The test's store, also keeping a copy of every state saved into `saved`. */
function recordingStore(saved: SyncState[]): StateStore {
  return { ...store, save: async (connection, state) => (saved.push(structuredClone(state)), store.save(connection, state)) };
}

function scriptedSource(script: () => AsyncGenerator<SourceMessage>) {
  return defineSource({
    name: 'scripted',
    spec: { connectionSpecification: { type: 'object' } },
    async check() {},
    async discover() {
      return { streams: [] };
    },
    read: () => script(),
  });
}

function scriptedCatalog(names: string[]): ConfiguredAirbyteCatalog {
  return {
    streams: names.map((name) => ({
      stream: { name, json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], source_defined_primary_key: [['id']] },
      sync_mode: 'incremental',
      destination_sync_mode: 'append_dedup',
      cursor_field: ['id'],
    })),
  };
}

describe('runSync: checkpoint order across streams', () => {
  it('never sets a stream back: a stream checkpoint after a global one still waiting is applied after it', async () => {
    // The first write waits until the source emitted everything, so the first commit finds
    // [a's checkpoint (covered), the global one (waiting for a's 2nd record), b's checkpoint
    // (covered: b has no records)].
    let openGate: () => void = () => {};
    const gate = new Promise<void>((r) => (openGate = r));
    const destination = defineDestination({
      name: 'gated',
      delivery: 'upsert',
      spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append_dedup'] },
      async check() {},
      async open() {
        return { async write() { await gate; }, async commit() {}, async close() {} };
      },
    });
    const source = scriptedSource(async function* () {
      yield record('a', { id: 1 });
      yield checkpoint('a', { a: 1 });
      yield record('a', { id: 2 });
      yield { kind: 'global-checkpoint', shared: { lsn: 2 }, streams: [{ stream: 'a', state: { a: 2 } }, { stream: 'b', state: { b: 'old' } }] };
      yield checkpoint('b', { b: 'new' });
      openGate();
    });
    const saved: SyncState[] = [];
    const result = await runSync({
      connection: 'order',
      source,
      sourceConfig: {},
      destination,
      destinationConfig: {},
      catalog: scriptedCatalog(['a', 'b']),
      stateStore: recordingStore(saved),
      batching: { commitIntervalMs: 0 },
    });
    expect(result.outcome).toBe('completed');
    const b = saved.map((s) => s.streams.b?.b);
    expect(b).toContain('new');
    expect(b.lastIndexOf('old')).toBeLessThan(b.indexOf('new'));
    expect(saved.at(-1)).toEqual({ shared: { lsn: 2 }, streams: { a: { a: 2 }, b: { b: 'new' } } });
    expect(await store.load('order')).toEqual({ shared: { lsn: 2 }, streams: { a: { a: 2 }, b: { b: 'new' } } });
  });
});

describe('runSync: checkpoint state is taken when emitted', () => {
  it('a source that reuses one state object for its checkpoints never gets a saved state ahead of the durable records', async () => {
    // The source runs ahead of a slow destination (every record its own batch) and mutates
    // the object it checkpointed last; the destination then fails at record 5.
    let openGate: () => void = () => {};
    const gate = new Promise<void>((r) => (openGate = r));
    let durable = 0;
    const destination = defineDestination({
      name: 'failing-at-5',
      delivery: 'upsert',
      spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append_dedup'] },
      async check() {},
      async open() {
        return {
          async write(batch) {
            await gate;
            if (batch.records.some((r) => r.id === 5)) throw new TributaryError('fatal', { userMessage: 'destination broke at 5' });
            durable += batch.records.length;
          },
          async commit() {},
          async close() {},
        };
      },
    });
    const source = scriptedSource(async function* () {
      const position = { offset: 0 };
      for (let id = 1; id <= 10; id++) {
        yield record('a', { id });
        position.offset = id;
        yield checkpoint('a', position);
      }
      openGate();
    });
    const saved: SyncState[] = [];
    const result = await runSync({
      connection: 'reused-state',
      source,
      sourceConfig: {},
      destination,
      destinationConfig: {},
      catalog: scriptedCatalog(['a']),
      stateStore: recordingStore(saved),
      batching: { maxRecords: 1, maxBatchesInFlight: 20, commitIntervalMs: 0 },
    });
    expect(result.outcome).toBe('failed');
    expect(durable).toBe(4);
    expect(saved.length).toBeGreaterThan(0);
    for (const state of saved) expect((state.streams.a as { offset: number }).offset).toBeLessThanOrEqual(4);
    expect(await store.load('reused-state')).toEqual({ streams: { a: { offset: 4 } } });
  });
});

describe('runSync: the end of a sync', () => {
  function closingDestination(calls: string[], closeError?: Error): Destination {
    return defineDestination({
      name: 'closing',
      delivery: 'upsert',
      spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append_dedup', 'overwrite'] },
      async check() {},
      async open() {
        return {
          async write() {},
          async commit() {},
          async close({ completed }) {
            calls.push(`close ${completed}`);
            if (closeError) throw closeError;
          },
        };
      },
    });
  }

  it('reports no stream COMPLETE when the destination fails to close (publish) after the last commit', async () => {
    const statuses: string[] = [];
    const result = await runSync({
      connection: 'close',
      source: countingSource,
      sourceConfig: { count: 10, every: 5 },
      destination: closingDestination([], new TributaryError('fatal', { userMessage: 'publish failed' })),
      destinationConfig: {},
      catalog: catalog(),
      stateStore: store,
      onEvent: (e) => void (e.type === 'status' && statuses.push(e.status)),
    });
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toBe('publish failed');
    expect(statuses).toEqual(['STARTED', 'INCOMPLETE']);
    expect(result.streams.map((s) => s.status)).toEqual(['INCOMPLETE']);
  });

  it('closes the session (not completed) when the state of a finished full refresh cannot be saved', async () => {
    const calls: string[] = [];
    const saved: SyncState[] = [];
    const failing: StateStore = {
      ...store,
      save: async (connection, state) => {
        saved.push(structuredClone(state));
        // The checkpoints' saves succeed; the one forgetting the finished refresh fails.
        if (state.streams.items === undefined) throw new Error('disk full');
        return store.save(connection, state);
      },
    };
    const result = await runSync({
      connection: 'fr',
      source: countingSource,
      sourceConfig: { count: 10, every: 5 },
      destination: closingDestination(calls),
      destinationConfig: {},
      catalog: catalog('full_refresh'),
      stateStore: failing,
      batching: { commitIntervalMs: 0 },
    });
    expect(saved.at(-1)).toEqual({ streams: {} });
    expect(calls).toEqual(['close false']);
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toBe('The state could not be saved');
    expect(result.streams.map((s) => s.status)).toEqual(['INCOMPLETE']);
  });
});

describe('runSync: a destination that fails while the source waits', () => {
  it('stops a source that waits for data (webhooks, CDC) when the destination failed, and fails the sync', async () => {
    let stoppedBySignal = false;
    const source = defineSource({
      name: 'waiting',
      spec: { connectionSpecification: { type: 'object' } },
      async check() {},
      async discover() {
        return { streams: [] };
      },
      async *read(ctx) {
        yield record('a', { id: 1 });
        // Waits for the next event, or for the runtime to stop it (a fallback ends the wait
        // so that a runtime that never stops it fails this test instead of hanging it).
        stoppedBySignal = await new Promise<boolean>((resolve) => {
          const fallback = setTimeout(() => resolve(false), 5_000);
          ctx.signal.addEventListener('abort', () => (clearTimeout(fallback), resolve(true)), { once: true });
        });
        yield checkpoint('a', { after: 1 });
      },
    });
    const destination = defineDestination({
      name: 'broken',
      delivery: 'upsert',
      spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append_dedup'] },
      async check() {},
      async open() {
        return {
          async write() {
            throw new TributaryError('fatal', { userMessage: 'destination gone' });
          },
          async commit() {},
          async close() {},
        };
      },
    });
    const result = await runSync({
      connection: 'waiting',
      source,
      sourceConfig: {},
      destination,
      destinationConfig: {},
      catalog: scriptedCatalog(['a']),
      stateStore: store,
      batching: { maxAgeMs: 10 },
    });
    expect(stoppedBySignal).toBe(true);
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toBe('destination gone');
    expect(await store.load('waiting')).toBeUndefined();
  });
});
