/**
 * Seeded fault-injection probe of the Salesforce reverse-ETL writer: runWriter (the runtime's
 * writer entry point, with its retries, concurrency and write-ahead audit) drives the real
 * writer and the real jsforce client against the simulator, through an HTTP fault layer
 * that, for some requests, applies them and then loses the answer (connection dropped, or a
 * 502 in its place), or answers 503 / 403 REQUEST_LIMIT_EXCEEDED without forwarding them.
 * Some runs crash (aborted right after an upsert was applied) and are run again.
 *
 * Checked after every run: one row per external id (the field is unique and case-insensitive),
 * every record's result consistent with the org (a record reported written or unchanged holds
 * its values unless a later record of its key may have replaced them; a record refused for
 * good was not applied; reported ids are the rows' ids), one audit entry per record and one
 * intent before every request that carried one. At the end: the org converges to the last
 * values, and re-running that input answers everything `unchanged` without sending an upsert.
 *
 * PROBE10_SEEDS=1-40 (or 3,7,9) sweeps seeds; by default 3 run.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createConnectorContext, idempotencyKeyOf, parseConfig, runWriter, seededRandom, type WriteAuditEntry, type WriteIntent, type WriterRunSummary } from '@tributary/core';
import { salesforceWriter, startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { seedList } from '@tributary/conformance';

type Fault = 'pass' | 'drop-after' | 'bad-gateway-after' | 'unavailable-before' | 'limit-before';

/** What the fault layer does to the next API request: decided by the probe (seeded). */
interface FaultLayer {
  readonly url: string;
  /** API requests seen (token requests excluded). */
  readonly log: Array<{ method: string; path: string; fault: Fault }>;
  decide: (method: string, path: string) => Fault;
  /** Called after a request was forwarded and applied (before its answer is passed on or lost). */
  afterApplied: (method: string, path: string) => void;
  close(): Promise<void>;
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function forward(target: URL, req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && name !== 'host' && name !== 'connection') headers[name] = value;
    headers['content-length'] = String(body.length);
    const out = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: false }, (answer) => {
      readAll(answer).then((bytes) => {
        const answerHeaders: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (typeof value === 'string') answerHeaders[name] = value;
        resolve({ status: answer.statusCode ?? 500, headers: answerHeaders, body: bytes });
      }, reject);
    });
    out.on('error', reject);
    out.end(body);
  });
}

async function startFaultLayer(sim: SalesforceSimulator): Promise<FaultLayer> {
  const target = new URL(sim.url);
  const layer: { -readonly [K in keyof FaultLayer]: FaultLayer[K] } = {
    url: '',
    log: [],
    decide: () => 'pass',
    afterApplied: () => undefined,
    close: async () => undefined,
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const body = await readAll(req);
      const method = req.method ?? 'GET';
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const api = path.startsWith('/services/data/');
      const fault: Fault = api ? layer.decide(method, path) : 'pass';
      if (api) layer.log.push({ method, path, fault });
      const json = (status: number, errorCode: string, message: string): void => {
        res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8' });
        res.end(JSON.stringify([{ message, errorCode }]));
      };
      if (fault === 'unavailable-before') return json(503, 'SERVER_UNAVAILABLE', 'The server is temporarily unable to handle the request');
      if (fault === 'limit-before') return json(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.');
      const answer = await forward(target, req, body);
      if (api) layer.afterApplied(method, path);
      if (fault === 'drop-after') {
        res.socket?.destroy();
        return;
      }
      if (fault === 'bad-gateway-after') {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
        return;
      }
      // The token answer names the instance: keep the client talking through this layer.
      const text = answer.body.toString('utf8').split(sim.url).join(layer.url);
      const headers = { ...answer.headers };
      delete headers['content-length'];
      delete headers['transfer-encoding'];
      delete headers.connection;
      delete headers['keep-alive'];
      res.writeHead(answer.status, headers);
      res.end(text);
    })().catch(() => res.socket?.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  layer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  layer.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return layer;
}

/** The writer with its own retry policy and limits, its backoff shortened so the probe runs fast. */
const writer = {
  ...salesforceWriter,
  retry: { ...salesforceWriter.retry!, baseDelayMs: 1, maxDelayMs: 4 },
  rateLimit: { ...salesforceWriter.rateLimit, requests: 10_000, perMs: 1000 },
};

interface RunOutcome {
  summary?: WriterRunSummary;
  crashed: boolean;
  audit: WriteAuditEntry[];
  intents: WriteIntent[];
}

async function runOnce(layer: FaultLayer, credentials: Record<string, unknown>, records: Array<Record<string, unknown>>, crashAfterPatches?: number): Promise<RunOutcome> {
  const controller = new AbortController();
  const audit: WriteAuditEntry[] = [];
  const intents: WriteIntent[] = [];
  let patches = 0;
  layer.afterApplied = (method) => {
    if (method === 'PATCH' && crashAfterPatches !== undefined && ++patches >= crashAfterPatches) controller.abort(new Error('crash'));
  };
  const ctx = createConnectorContext({
    signal: controller.signal,
    rateLimit: writer.rateLimit,
    retry: writer.retry,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const config = parseConfig(salesforceWriter.spec.connectionSpecification, { ...credentials, login_url: layer.url });
  try {
    const summary = await runWriter({
      writer,
      ctx,
      config,
      object: 'Account',
      mode: 'upsert',
      idProperty: 'External_Id__c',
      records,
      breaker: { failureThreshold: 1_000, resetAfterMs: 1 },
      audit: (entry) => audit.push(entry),
      auditIntent: async (intent) => {
        intents.push(intent);
      },
    });
    return { summary, crashed: false, audit, intents };
  } catch (error) {
    if (!controller.signal.aborted) throw error;
    return { crashed: true, audit, intents };
  } finally {
    layer.afterApplied = () => undefined;
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Rows of the org by external id without case (the field's identity): more than one is a duplicate. */
function rowsByIdentity(sim: SalesforceSimulator): Map<string, Array<Record<string, unknown>>> {
  const rows = new Map<string, Array<Record<string, unknown>>>();
  for (const row of sim.records('Account')) {
    const identity = String(row.External_Id__c).toLowerCase();
    rows.set(identity, [...(rows.get(identity) ?? []), row]);
  }
  return rows;
}

const KEYS = 10;
const TOO_LONG = 'x'.repeat(300);

interface Generated {
  records: Array<Record<string, unknown>>;
  /** Records built to be refused from the describe (a type or length Salesforce refuses). */
  invalid: Set<Record<string, unknown>>;
}

function generateRun(random: () => number, counter: { next: number }): Generated {
  const records: Array<Record<string, unknown>> = [];
  const invalid = new Set<Record<string, unknown>>();
  const count = 8 + Math.floor(random() * 18);
  for (let i = 0; i < count; i++) {
    const n = Math.floor(random() * KEYS);
    // Keys differing only in case name one row (a unique case-insensitive field).
    const key = random() < 0.25 ? `ACC-${n}` : `acc-${n}`;
    const employees = counter.next++;
    const record: Record<string, unknown> = { External_Id__c: key, Name: `Account ${n} v${employees}`, NumberOfEmployees: employees };
    const roll = random();
    if (roll < 0.08) {
      record.NumberOfEmployees = 'many';
      invalid.add(record);
    } else if (roll < 0.14) {
      record.Name = TOO_LONG;
      invalid.add(record);
    }
    records.push(record);
  }
  return { records, invalid };
}

function faultsFor(random: () => number, rates: { patch: number; get: number; limit: number }): FaultLayer['decide'] {
  return (method) => {
    const roll = random();
    if (roll < rates.limit) return 'limit-before';
    const rate = method === 'PATCH' ? rates.patch : rates.get;
    if (roll >= rates.limit + rate) return 'pass';
    const kind = random();
    if (method === 'PATCH') return kind < 0.5 ? 'drop-after' : kind < 0.8 ? 'bad-gateway-after' : 'unavailable-before';
    return kind < 0.4 ? 'drop-after' : kind < 0.7 ? 'bad-gateway-after' : 'unavailable-before';
  };
}

const ok = (status: string): boolean => status === 'created' || status === 'updated' || status === 'unchanged';

/**
 * The checks after a run that crashed or halted: no duplicate row, and no record that neither
 * it nor an earlier run of the same input (`sentKeys`, updated) handed to a request holds in the org.
 */
function checkInterrupted(sim: SalesforceSimulator, generated: Generated, outcome: RunOutcome, label: string, sentKeys: Set<string>): string[] {
  const problems: string[] = [];
  const rows = rowsByIdentity(sim);
  for (const [identity, group] of rows) if (group.length > 1) problems.push(`${label}: ${group.length} rows for external id ${identity}`);
  // Sent by this run or an earlier run of the same input.
  for (const intent of outcome.intents) for (const r of intent.records) sentKeys.add(r.idempotencyKey);
  for (const record of generated.records) {
    if (sentKeys.has(idempotencyKeyOf('Account', 'upsert', String(record.External_Id__c), record))) continue;
    const row = rows.get(String(record.External_Id__c).toLowerCase())?.[0];
    if (row && row.NumberOfEmployees === record.NumberOfEmployees && row.Name === record.Name) problems.push(`${label}: ${JSON.stringify(record)} was never handed to a request, yet the row holds it`);
  }
  return problems;
}

/** The checks after a run that completed (not crashed, not halted); returns the problems found. */
function checkRun(sim: SalesforceSimulator, generated: Generated, outcome: RunOutcome, label: string): string[] {
  const problems: string[] = [];
  const summary = outcome.summary!;
  const rows = rowsByIdentity(sim);
  for (const [identity, group] of rows) if (group.length > 1) problems.push(`${label}: ${group.length} rows for external id ${identity}`);
  // One audit entry per record, each after an intent of its request naming the record.
  if (outcome.audit.length !== generated.records.length) problems.push(`${label}: ${outcome.audit.length} audit entries for ${generated.records.length} records`);
  const intentKeys = new Map(outcome.intents.map((intent) => [intent.request, new Set(intent.records.map((r) => r.idempotencyKey))]));
  for (const entry of outcome.audit) {
    if (entry.request !== undefined && !intentKeys.get(entry.request)?.has(entry.idempotencyKey)) problems.push(`${label}: audit entry of ${entry.key} names request ${entry.request} with no intent for it`);
  }
  // Per key identity: the records of the run in input order, with their results (every
  // generated record is distinct, so its idempotency key names its one audit entry).
  const entries = new Map(outcome.audit.map((entry) => [entry.idempotencyKey, entry]));
  const perIdentity = new Map<string, Array<{ record: Record<string, unknown>; entry: WriteAuditEntry }>>();
  for (const record of generated.records) {
    const entry = entries.get(idempotencyKeyOf('Account', 'upsert', String(record.External_Id__c), record));
    if (!entry) {
      problems.push(`${label}: no result for ${JSON.stringify(record)}`);
      continue;
    }
    const identity = String(record.External_Id__c).toLowerCase();
    perIdentity.set(identity, [...(perIdentity.get(identity) ?? []), { record, entry }]);
    if (!ok(entry.status) && entry.retryable !== true && !generated.invalid.has(record)) {
      problems.push(`${label}: valid record ${JSON.stringify(record)} refused for good: ${entry.reason}`);
    }
    if (generated.invalid.has(record) && entry.status !== 'failed') problems.push(`${label}: invalid record ${JSON.stringify(record)} reported ${entry.status}`);
  }
  for (const [identity, items] of perIdentity) {
    const row = rows.get(identity)?.[0];
    // Reported ids are the row's id.
    for (const { entry } of items) {
      if (ok(entry.status) && entry.id !== undefined && row && entry.id !== row.Id) problems.push(`${label}: ${entry.key} reported id ${entry.id}, the row is ${String(row.Id)}`);
      if (ok(entry.status) && !row) problems.push(`${label}: ${entry.key} reported ${entry.status} but no row exists`);
    }
    // The row holds the last record reported written/unchanged, unless a later record of the
    // key failed in a way that may have been applied (a retryable failure: answer lost).
    const lastOk = items.map((item, index) => ({ ...item, index })).filter((item) => ok(item.entry.status)).at(-1);
    const maybeLater = items.filter((item, index) => (lastOk === undefined || index > lastOk.index) && item.entry.status === 'failed' && item.entry.retryable === true);
    const acceptable = [...(lastOk ? [lastOk.record] : []), ...maybeLater.map((item) => item.record)];
    if (lastOk && row) {
      const holds = acceptable.some((record) => row.NumberOfEmployees === record.NumberOfEmployees && row.Name === record.Name);
      if (!holds) problems.push(`${label}: row ${identity} holds ${String(row.Name)}/${String(row.NumberOfEmployees)}, expected the values of one of ${JSON.stringify(acceptable)}`);
    }
    // A record refused for good was not applied.
    for (const { record, entry } of items) {
      if (entry.status === 'failed' && entry.retryable !== true && row && row.NumberOfEmployees === record.NumberOfEmployees && row.Name === record.Name) {
        problems.push(`${label}: ${JSON.stringify(record)} reported failed (${entry.reason}) but the row holds it`);
      }
    }
  }
  if (summary.total !== generated.records.length) problems.push(`${label}: summary total ${summary.total} for ${generated.records.length} records`);
  return problems;
}

async function probe(seed: number): Promise<string[]> {
  const random = seededRandom(seed);
  const sim = await startSalesforceSimulator({ seed });
  cleanups.push(() => sim.close());
  const layer = await startFaultLayer(sim);
  cleanups.push(() => layer.close());
  const credentials = { client_id: sim.clientId, client_secret: sim.clientSecret, refresh_token: sim.refreshToken };
  const counter = { next: 1 };
  const problems: string[] = [];
  const runs = 6;
  for (let r = 0; r < runs && problems.length === 0; r++) {
    const generated = generateRun(random, counter);
    layer.decide = faultsFor(random, { patch: 0.35, get: 0.12, limit: 0.02 });
    // Another transaction holds a few rows for this run: per-record UNABLE_TO_LOCK_ROW.
    sim.unlock();
    if (random() < 0.4) sim.lockRows([`acc-${Math.floor(random() * KEYS)}`]);
    const crashAfter = random() < 0.3 ? 1 + Math.floor(random() * 3) : undefined;
    let outcome = await runOnce(layer, credentials, generated.records, crashAfter);
    // A crashed run, or one halted at the daily limit, is run again with other faults, as a
    // restarted sync would be (it replays the batch its checkpoint did not cover).
    const sentKeys = new Set<string>();
    for (let again = 0; again < 5 && (outcome.crashed || outcome.summary?.halted); again++) {
      problems.push(...checkInterrupted(sim, generated, outcome, `seed ${seed} run ${r} (${outcome.crashed ? 'crashed' : 'halted'})`, sentKeys));
      // Re-run once the daily limit has reset: other faults go on.
      layer.decide = faultsFor(random, { patch: 0.35, get: 0.12, limit: 0 });
      outcome = await runOnce(layer, credentials, generated.records);
    }
    if (outcome.crashed || outcome.summary?.halted) problems.push(`seed ${seed} run ${r}: still halted after 5 re-runs`);
    else problems.push(...checkRun(sim, generated, outcome, `seed ${seed} run ${r}`));
  }
  if (problems.length > 0) return problems;

  // Convergence: one valid record per key, re-run under faults until nothing failed.
  sim.unlock();
  const final = Array.from({ length: KEYS }, (_, n) => {
    const employees = counter.next++;
    return { External_Id__c: random() < 0.3 ? `ACC-${n}` : `acc-${n}`, Name: `Account ${n} final ${employees}`, NumberOfEmployees: employees };
  });
  let settled = false;
  const finalSent = new Set<string>();
  for (let attempt = 0; attempt < 10 && !settled; attempt++) {
    layer.decide = faultsFor(random, { patch: 0.35, get: 0.12, limit: attempt === 0 ? 0.02 : 0 });
    const outcome = await runOnce(layer, credentials, final);
    const generated = { records: final, invalid: new Set<Record<string, unknown>>() };
    const label = `seed ${seed} final attempt ${attempt}`;
    problems.push(...(outcome.summary!.halted ? checkInterrupted(sim, generated, outcome, label, finalSent) : checkRun(sim, generated, outcome, label)));
    settled = outcome.summary!.counts.failed === 0;
  }
  if (!settled) problems.push(`seed ${seed}: the final input did not settle in 10 runs`);
  const rows = rowsByIdentity(sim);
  for (const record of final) {
    const group = rows.get(record.External_Id__c.toLowerCase()) ?? [];
    if (group.length !== 1 || group[0]!.NumberOfEmployees !== record.NumberOfEmployees || group[0]!.Name !== record.Name) {
      problems.push(`seed ${seed}: ${record.External_Id__c} holds ${JSON.stringify(group.map((g) => [g.Name, g.NumberOfEmployees]))}, expected ${record.Name}/${record.NumberOfEmployees}`);
    }
  }
  // The same input again, without faults: everything unchanged, no upsert sent.
  layer.decide = () => 'pass';
  const before = layer.log.filter((r) => r.method === 'PATCH').length;
  const replay = await runOnce(layer, credentials, final);
  if (replay.summary!.counts.unchanged !== final.length) problems.push(`seed ${seed}: the replay answered ${JSON.stringify(replay.summary!.counts)}`);
  if (layer.log.filter((r) => r.method === 'PATCH').length !== before) problems.push(`seed ${seed}: the replay sent an upsert`);
  return problems;
}

describe('probe10: Salesforce writer under lost answers, crashes and re-runs', () => {
  for (const seed of seedList(process.env.PROBE10_SEEDS, [1, 2, 3])) {
    it(`seed ${seed}: one row per external id, results and audit consistent with the org`, async () => {
      expect(await probe(seed)).toEqual([]);
    }, 60_000);
  }
});
