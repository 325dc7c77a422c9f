// Seeded fault-injection probe of the HubSpot writer: between the real @hubspot/api-client
// and the simulator sits a small HTTP proxy that, per request and by a seeded draw, passes it,
// answers 429 without forwarding it, or forwards it (the simulator APPLIES it) and then loses
// the answer — the connection dropped, a 502/504 in its place, or the whole run "crashing"
// (its signal aborted) right there. Seeded rounds of contacts (by email, in varying case)
// and deals (by a custom unique property) — new and existing keys, changed values, refused
// values — go through `runWriter` with the write-ahead audit the CLI uses; crashed runs and
// runs left with retryable failures are run again, as the next sync would.
//
// Checked after every run: each changed object has an intent (`sending`) line and holds one
// of the run's records for it; each outcome agrees with the simulator (written records hold
// their values and id, refused ones changed nothing, `created` only for new keys, `unchanged`
// only for values already there or applied by an attempt whose answer was lost). At the end:
// one live object per key, holding the last values written, and a fault-free re-run of each
// target's last round (each key's last record) reports `unchanged` for every record written and
// a non-retryable failure for every refused one, without changing anything.
//
// PROBE10_SEEDS=1-40 (or 3,7,9) sweeps seeds; the default runs three. PROBE10_VERBOSE=1 prints
// per seed the runs, the faults drawn and how many records came back `unchanged` after a lost
// upsert applied them.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, runWriter, seededRandom, type WriteAuditEntry, type WriteIntent, type Writer } from '@tributary/core';
import { hubspotWriter } from '../src/index.js';
import type { HubspotSimulator } from '../src/simulator/index.js';
import { useSimulators } from './support.js';
import { seedList } from '@tributary/conformance';

const simulator = useSimulators();

type Fault = 'pass' | 'throttle' | 'drop' | 'gateway' | 'crash';

interface LostUpsert {
  object: string;
  keys: string[];
}

/**
 * The fault layer. `draw` picks each request's fault; a `crash` aborts the current run once
 * the simulator applied the request, and its answer never arrives.
 */
interface FaultProxy {
  url: string;
  draw: (path: string) => Fault;
  /** Aborted on a `crash` fault; replaced per run. */
  crash: AbortController | undefined;
  /** Upserts the simulator applied whose answer the client never got. */
  lost: LostUpsert[];
  /**
   * Resolves once no request is being forwarded. A crashed client's request already on the
   * wire may still reach HubSpot after the crash: each run is judged after its stragglers.
   */
  idle(): Promise<void>;
  /** Requests per fault drawn (for the report of a seed). */
  tally: Partial<Record<Fault, number>>;
  close(): Promise<void>;
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function answerJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const proxy: FaultProxy = { url: '', draw: () => 'pass', crash: undefined, lost: [], tally: {}, idle: async () => {}, close: async () => {} };
  let forwarding = 0;
  let waiters: Array<() => void> = [];
  proxy.idle = () => (forwarding === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve)));
  const server: Server = createServer((req, res) => {
    forwarding++;
    // The run that sent it: a straggler of a crashed run must not crash the next one.
    const run = proxy.crash;
    void (async () => {
      const body = await readAll(req);
      const path = req.url ?? '/';
      const fault = proxy.draw(path);
      proxy.tally[fault] = (proxy.tally[fault] ?? 0) + 1;
      if (fault === 'throttle') {
        answerJson(res, 429, { status: 'error', message: 'You have reached your secondly limit.', errorType: 'RATE_LIMIT', correlationId: 'probe', policyName: 'SECONDLY' });
        return;
      }
      const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
      const answer = await new Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
        const out = httpRequest({ hostname: upstream.hostname, port: upstream.port, method: req.method, path, headers }, (up) => {
          readAll(up).then((b) => resolve({ status: up.statusCode ?? 500, headers: up.headers, body: b }), reject);
        });
        out.on('error', reject);
        out.end(body);
      });
      if (fault !== 'pass' && path.includes('/batch/upsert') && answer.status < 300) {
        const inputs = (JSON.parse(body.toString('utf8')) as { inputs: Array<{ id: string }> }).inputs;
        proxy.lost.push({ object: path.split('/')[4]!, keys: inputs.map((i) => i.id) });
      }
      if (fault === 'pass') {
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      } else if (fault === 'gateway') {
        answerJson(res, answer.body.length % 2 === 0 ? 502 : 504, { status: 'error', message: 'Bad gateway', correlationId: 'probe' });
      } else {
        if (fault === 'crash') run?.abort(new Error('probe: the process crashed'));
        req.socket.destroy();
      }
    })()
      .catch(() => req.socket.destroy())
      .finally(() => {
        if (--forwarding > 0) return;
        const done = waiters;
        waiters = [];
        for (const resolve of done) resolve();
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

interface Target {
  object: 'contacts' | 'deals';
  idProperty: string;
  /** How HubSpot matches keys of `idProperty` (emails without regard to case). */
  identity: (key: string) => string;
}

const CONTACTS: Target = { object: 'contacts', idProperty: 'email', identity: (k) => k.toLowerCase() };
const DEALS: Target = { object: 'deals', idProperty: 'deal_ref', identity: (k) => k };

type Row = Record<string, unknown>;

/** A round's records: new and existing keys, changed and repeated values, some refused. */
function roundRecords(target: Target, random: () => number, round: number): Row[] {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const count = 15 + Math.floor(random() * 30);
  const out: Row[] = [];
  for (let i = 0; i < count; i++) {
    const n = Math.floor(random() * 40);
    const bad = random() < 0.1;
    if (target.object === 'contacts') {
      const email = `person${n}@example.com`;
      const key = random() < 0.3 ? email.toUpperCase() : random() < 0.2 ? `Person${n}@Example.com` : email;
      const row: Row = { email: key, firstname: pick(['Ann', 'Bo', 'Cy']), lastname: `L${round % 3}`, num_notes: Math.floor(random() * 3) };
      if (bad) Object.assign(row, pick([{ num_notes: 'many' }, { lifecyclestage: 'bogus' }, { hs_email_optout: 'maybe' }, { email: `broken${n}` }]));
      out.push(row);
    } else {
      const row: Row = { deal_ref: `REF-${n}`, dealname: `Deal ${n} v${Math.floor(random() * 3)}`, amount: Math.floor(random() * 4) * 100 };
      if (bad) Object.assign(row, pick([{ amount: 'lots' }, { dealstage: 'nowhere' }]));
      out.push(row);
    }
  }
  return out;
}

/** Live objects by key identity: the test fails on a second live object of one identity. */
function liveByIdentity(sim: HubspotSimulator, target: Target): Map<string, { id: string; properties: Record<string, string | null> }> {
  const out = new Map<string, { id: string; properties: Record<string, string | null> }>();
  for (const row of sim.objects(target.object)) {
    const key = row.properties[target.idProperty];
    if (row.archived || key === null || key === undefined || key === '') continue;
    const identity = target.identity(key);
    if (out.has(identity)) throw new Error(`duplicate ${target.object}: ${identity} is held by ${out.get(identity)!.id} and ${row.id}`);
    out.set(identity, { id: String(row.id), properties: { ...row.properties } });
  }
  return out;
}

/** Whether `stored` holds every value of `record` (HubSpot's strings; the key compared by identity). */
function holds(target: Target, stored: Record<string, string | null> | undefined, record: Row): boolean {
  if (!stored) return false;
  return Object.entries(record).every(([name, value]) =>
    name === target.idProperty ? target.identity(String(stored[name] ?? '')) === target.identity(String(value)) : (stored[name] ?? '') === String(value ?? ''),
  );
}

interface RunOutcome {
  crashed: boolean;
  entries: WriteAuditEntry[];
  intents: WriteIntent[];
}

async function runOnce(writer: Writer, config: Record<string, unknown>, target: Target, records: Row[], proxy: FaultProxy | undefined): Promise<RunOutcome> {
  const crash = new AbortController();
  if (proxy) proxy.crash = crash;
  const ctx = createConnectorContext({ signal: crash.signal, rateLimit: writer.rateLimit, ...(writer.retry ? { retry: writer.retry } : {}) });
  const entries: WriteAuditEntry[] = [];
  const intents: WriteIntent[] = [];
  try {
    await runWriter({
      writer,
      config,
      ctx,
      object: target.object,
      mode: 'upsert',
      idProperty: target.idProperty,
      records,
      audit: (entry) => {
        if (!crash.signal.aborted) entries.push(entry);
      },
      auditIntent: async (intent) => {
        intents.push(intent);
      },
    });
    return { crashed: false, entries, intents };
  } catch (error) {
    if (!crash.signal.aborted) throw error;
    return { crashed: true, entries, intents };
  }
}

/**
 * Checks one run against the simulator: `before` and `after` are the live objects around it,
 * `lost` the upserts of this run that the simulator applied but whose answer was lost.
 * Returns how many records were rightly reported `unchanged` because such an upsert applied them.
 */
function checkRun(target: Target, records: Row[], outcome: RunOutcome, before: ReturnType<typeof liveByIdentity>, after: ReturnType<typeof liveByIdentity>, lost: LostUpsert[]): number {
  const sent = new Set(outcome.intents.flatMap((i) => i.records.map((r) => target.identity(r.key))));
  const lostKeys = new Set(lost.filter((l) => l.object === target.object).flatMap((l) => l.keys.map(target.identity)));
  const recordsOf = new Map<string, Row[]>();
  for (const r of records) {
    const identity = target.identity(String(r[target.idProperty]));
    recordsOf.set(identity, [...(recordsOf.get(identity) ?? []), r]);
  }
  // Nothing applied without a trace, and nothing applied that was not asked for.
  for (const [identity, row] of after) {
    const old = before.get(identity);
    if (old && JSON.stringify(old.properties) === JSON.stringify(row.properties)) continue;
    expect(sent.has(identity), `${identity} changed without an intent line`).toBe(true);
    expect((recordsOf.get(identity) ?? []).some((r) => holds(target, row.properties, r)), `${identity} holds none of the run's records`).toBe(true);
  }
  for (const identity of before.keys()) expect(after.has(identity), `${identity} vanished`).toBe(true);

  // Every outcome of a record handed to a request names that request, whose intent lists it.
  const intentOf = new Map(outcome.intents.map((i) => [i.request, new Set(i.records.map((r) => r.idempotencyKey))]));
  for (const e of outcome.entries) {
    if (e.request === undefined) continue;
    expect(intentOf.get(e.request)?.has(e.idempotencyKey), `${e.key}: outcome names request ${e.request}, whose intent lacks it`).toBe(true);
  }
  if (outcome.crashed) return 0;
  expect(outcome.entries.filter((e) => e.status !== 'failed' && e.request === undefined)).toEqual([]);
  expect(outcome.entries.length).toBe(records.length);
  let unchangedAfterLoss = 0;
  // Per key, its records' results in input order; the last non-failed one's values are stored.
  const results = new Map<string, WriteAuditEntry[]>();
  for (const e of outcome.entries) {
    const identity = target.identity(e.key);
    results.set(identity, [...(results.get(identity) ?? []), e]);
  }
  for (const [identity, list] of recordsOf) {
    const entries = results.get(identity) ?? [];
    expect(entries.length, `${identity}: one result per record`).toBe(list.length);
    const row = after.get(identity);
    const lastWritten = list.map((r, i) => ({ r, e: entries[i]! })).filter(({ e }) => e.status !== 'failed').pop();
    const retriedLater = lastWritten !== undefined && entries.slice(entries.indexOf(lastWritten.e)).some((e) => e.retryable === true);
    if (lastWritten && !retriedLater) {
      expect(holds(target, row?.properties, lastWritten.r), `${identity} reported ${lastWritten.e.status} but holds other values`).toBe(true);
      expect(lastWritten.e.id, `${identity}: reported id`).toBe(row?.id);
    }
    for (const [i, e] of entries.entries()) {
      if (e.status === 'created' && i === 0) expect(before.has(identity), `${identity} reported created but existed`).toBe(false);
      if (e.status === 'updated' && i === 0) expect(before.has(identity) || lostKeys.has(identity), `${identity} reported updated but was new`).toBe(true);
      if (e.status === 'unchanged' && i === 0 && !holds(target, before.get(identity)?.properties, list[0]!)) {
        expect(lostKeys.has(identity), `${identity} reported unchanged, but it was neither there nor applied by a lost upsert`).toBe(true);
        unchangedAfterLoss++;
      }
      if (e.status === 'failed' && entries.every((x) => x.status === 'failed' && x.retryable !== true)) {
        // A refused record changed nothing (unless a lost attempt of it was applied, which its
        // result must then say is retryable).
        expect(JSON.stringify(row?.properties), `${identity} refused (${e.reason}) but changed`).toBe(JSON.stringify(before.get(identity)?.properties));
      }
    }
  }  return unchangedAfterLoss;
}

async function probe(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const sim = await simulator({ searchLagMs: 0, limits: { burst: 1_000_000 } });
  sim.defineProperty('deals', { name: 'deal_ref', label: 'Deal reference', type: 'string', fieldType: 'text', groupName: 'dealinformation', hasUniqueValue: true });
  const proxy = await startFaultProxy(sim.url);
  try {
    // The real writer; only its pacing is shortened (retries and the budget), so that a
    // seed runs in a few seconds. Small batches make several requests per run.
    const writer: Writer = { ...hubspotWriter, maxBatchSize: 8, retry: { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 40 }, rateLimit: { requests: 1000, perMs: 1000, concurrency: 2 } };
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: proxy.url });
    // Up to a third of the batch requests fail: the runtime's circuit breaker (5 consecutive
    // failures) opens now and then, and that run is run again.
    const faultRate = 0.15 + random() * 0.2;
    let throttles = 0;
    proxy.draw = (path) => {
      if (!path.includes('/batch/')) return 'pass';
      const x = random();
      if (x >= faultRate) return 'pass';
      const y = random();
      // A 429 costs a real second (the client waits out SECONDLY's window): a few per seed.
      if (y < 0.05 && throttles++ < 3) return 'throttle';
      if (!path.includes('/batch/upsert')) return y < 0.55 ? 'drop' : 'gateway';
      return y < 0.45 ? 'drop' : y < 0.8 ? 'gateway' : 'crash';
    };
    const rounds: Array<{ target: Target; records: Row[] }> = [];
    /** Per target and key identity, the record whose values the object must hold. */
    const expected = new Map<Target, Map<string, Row>>([
      [CONTACTS, new Map()],
      [DEALS, new Map()],
    ]);
    let runs = 0;
    let unchangedAfterLoss = 0;
    for (let round = 0; round < 6; round++) {
      const target = random() < 0.6 ? CONTACTS : DEALS;
      const records = roundRecords(target, random, round);
      // Run until a run ends without a crash or a retryable failure, as successive syncs would.
      for (let attempt = 0; ; attempt++) {
        expect(attempt, `seed ${seed} round ${round}: no clean run in 60 attempts`).toBeLessThan(60);
        const before = liveByIdentity(sim, target);
        const lostFrom = proxy.lost.length;
        const outcome = await runOnce(writer, config, target, records, proxy);
        await proxy.idle();
        runs++;
        const after = liveByIdentity(sim, target);
        unchangedAfterLoss += checkRun(target, records, outcome, before, after, proxy.lost.slice(lostFrom));
        if (process.env.PROBE10_VERBOSE) for (const e of outcome.entries.filter((x) => x.status === 'failed' && x.retryable === true)) console.log(`round ${round} run ${attempt}: ${e.key} ${e.reason}`);
        if (outcome.crashed || outcome.entries.some((e) => e.status === 'failed' && e.retryable === true)) continue;
        // Results come in completion order; a key's results in input order.
        const byKey = new Map<string, WriteAuditEntry[]>();
        for (const e of outcome.entries) byKey.set(target.identity(e.key), [...(byKey.get(target.identity(e.key)) ?? []), e]);
        for (const r of records) {
          const e = byKey.get(target.identity(String(r[target.idProperty])))!.shift()!;
          if (e.status !== 'failed') expected.get(target)!.set(target.identity(String(r[target.idProperty])), r);
        }
        rounds.push({ target, records });
        break;
      }
    }
    // One live object per key written, holding the last values written; no other object.
    for (const target of [CONTACTS, DEALS]) {
      const live = liveByIdentity(sim, target);
      expect([...live.keys()].sort()).toEqual([...expected.get(target)!.keys()].sort());
      for (const [identity, record] of expected.get(target)!) expect(holds(target, live.get(identity)?.properties, record), `${identity}: last values`).toBe(true);
    }
    // Fault-free replays of each target's last round, each key's last record only (an earlier
    // record of a key is rightly written again before it): the records written are `unchanged`,
    // the refused ones refused again (not retryable), and nothing changes.
    proxy.draw = () => 'pass';
    for (const target of [CONTACTS, DEALS]) {
      const round = rounds.filter((r) => r.target === target).at(-1);
      if (!round) continue;
      const lastOfKey = new Map(round.records.map((r) => [target.identity(String(r[target.idProperty])), r]));
      const replay = [...lastOfKey.values()];
      const before = liveByIdentity(sim, target);
      const outcome = await runOnce(writer, config, target, replay, proxy);
      expect(outcome.crashed).toBe(false);
      const statusOf = new Map(outcome.entries.map((e) => [target.identity(e.key), e]));
      for (const [identity, record] of lastOfKey) {
        const e = statusOf.get(identity);
        if (expected.get(target)!.get(identity) === record) expect(e?.status, `${identity} replayed`).toBe('unchanged');
        else expect([e?.status, e?.retryable], `${identity} replayed`).toEqual(['failed', false]);
      }
      expect(JSON.stringify([...liveByIdentity(sim, target)]), `${target.object}: a replay changed something`).toBe(JSON.stringify([...before]));
    }
    if (process.env.PROBE10_VERBOSE) console.log(`seed ${seed}: ${runs} runs, faults ${JSON.stringify(proxy.tally)}, lost upserts ${proxy.lost.length}, unchanged after a lost upsert ${unchangedAfterLoss}`);
  } finally {
    await proxy.close();
  }
}

describe('hubspot writer: lost responses, seeded (probe10)', () => {
  for (const seed of seedList(process.env.PROBE10_SEEDS, [1, 2, 3])) {
    it(`seed ${seed}: no duplicates, no lost writes, results and audit agree with HubSpot`, { timeout: 120_000 }, async () => {
      await probe(seed);
    });
  }
});
