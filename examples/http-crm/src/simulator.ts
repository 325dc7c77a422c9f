/**
 * A local stand-in for the contacts API of `api.ts`: a real HTTP server on 127.0.0.1 (an
 * ephemeral port) with the behaviours a connector must survive — cursor paging over data
 * with many equal `updated_at` values, a per-second rate limit answered with 429 and
 * Retry-After, 401 for a bad token, occasional 503s, answers lost to a dropped connection —
 * and an in-process API to change the data while a sync runs and to see what the server saw.
 *
 * Timestamps come from a commit clock: every change gets an `updated_at` strictly later than
 * every value already visible (whole seconds). That is why the source needs no look-back
 * window: a write can never land behind a position a reader has already passed. APIs whose
 * `updated_at` is the wall clock of a replica, or that commit out of order, need one.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '@tributary/core';
import type { ApiError, Contact, ContactPage, ContactProperties, UpsertInput, UpsertResponse, UpsertResult } from './api.js';

/** The API's documented budget: requests per second per token. */
export const SIMULATOR_REQUESTS_PER_SECOND = 20;
export const MAX_PAGE_SIZE = 100;
export const MAX_UPSERT_BATCH = 50;

export interface SimulatorOptions {
  /** Contacts to start with (default 0). */
  contacts?: number;
  /** Seeded contacts sharing one `updated_at` (default 6): pages split such groups. */
  sameUpdatedAt?: number;
  /** Seeds the generated names and the order of ids (default 1). */
  seed?: number;
  /** Requests per wall-clock second per token; the rest get 429 (default 20). */
  requestsPerSecond?: number;
  /** Every n-th request that passed the rate limit answers 503 (default 0: never). */
  unavailableEvery?: number;
  /** Retry-After, in whole seconds, of the 429s sent by `throttle` (default 1). */
  retryAfterSeconds?: number;
}

/** A request the server answered. */
export interface ServedRequest {
  method: string;
  path: string;
  status: number;
}

export interface SimulatorStats {
  /** HTTP requests received. */
  requests: number;
  /** Answers by status code. */
  byStatus: Record<number, number>;
  /** Requests that arrived before a Retry-After this server had announced had elapsed. */
  ignoredRetryAfter: number;
  /** Requests handled but never answered (`dropAnswers`). */
  dropped: number;
}

export interface CrmSimulator {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The one API token the server accepts. */
  readonly token: string;
  /** A snapshot of the counters. */
  readonly stats: SimulatorStats;
  /** Every contact, ordered by (updated_at, id). */
  contacts(): Contact[];
  /** Changes data as `POST /v1/contacts/batch_upsert` would, bypassing HTTP, auth and limits. */
  upsert(inputs: UpsertInput[]): UpsertResult[];
  /** The next `requests` authenticated requests get 429 with Retry-After (a 429 storm). */
  throttle(requests: number): void;
  /**
   * The next `requests` requests that succeed are handled in full (an upsert is applied)
   * but their connection is closed instead of answered: the client cannot tell whether the
   * request took effect. They are counted in `stats.dropped`, not reported to `onServed`.
   */
  dropAnswers(requests: number): void;
  /** Called after each answer is sent; returns an unsubscribe function. */
  onServed(listener: (request: ServedRequest) => void): () => void;
  close(): Promise<void>;
}

const SEED_EPOCH_MS = Date.parse('2024-01-01T00:00:00Z');
const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'John'];
const LAST_NAMES = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman', 'Backus'];
const COMPANIES = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', null];
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const PROPERTIES: ReadonlySet<string> = new Set(['first_name', 'last_name', 'company']);
const MAX_BODY_BYTES = 1024 * 1024;


/** `2024-01-01T00:00:07Z`: the API's timestamp format (UTC, whole seconds). */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function compareContacts(a: Contact, b: Contact): number {
  return Date.parse(a.updated_at) - Date.parse(b.updated_at) || a.id - b.id;
}

/** Page tokens are opaque to clients; here they encode the last (updated_at, id) served. */
function encodeToken(contact: Contact): string {
  return Buffer.from(JSON.stringify({ u: Date.parse(contact.updated_at), i: contact.id })).toString('base64url');
}

function decodeToken(token: string): { u: number; i: number } | undefined {
  try {
    const value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { u?: unknown; i?: unknown };
    return typeof value.u === 'number' && typeof value.i === 'number' ? { u: value.u, i: value.i } : undefined;
  } catch {
    return undefined;
  }
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function errorBody(code: string, message: string): ApiError {
  return { error: { code, message } };
}

function propertyProblem(properties: unknown): string | undefined {
  if (properties === null || typeof properties !== 'object' || Array.isArray(properties)) return 'properties must be an object';
  for (const [name, value] of Object.entries(properties)) {
    if (!PROPERTIES.has(name)) return `unknown property "${name}"`;
    if (value !== null && typeof value !== 'string') return `property "${name}" must be a string or null`;
  }
  return undefined;
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<CrmSimulator> {
  const token = `crm_${randomBytes(12).toString('hex')}`;
  const requestsPerSecond = options.requestsPerSecond ?? SIMULATOR_REQUESTS_PER_SECOND;
  const unavailableEvery = options.unavailableEvery ?? 0;
  const retryAfterSeconds = options.retryAfterSeconds ?? 1;

  const byId = new Map<number, Contact>();
  const idByEmail = new Map<string, number>();
  const appliedKeys = new Map<string, number>();
  let nextId = 1;
  /** The commit clock: the latest `updated_at` handed out, in ms. */
  let clockMs = SEED_EPOCH_MS;

  // Seed: ids are shuffled over the timeline, so id order and time order disagree and only
  // the (updated_at, id) order is stable.
  const seedCount = options.contacts ?? 0;
  const group = Math.max(1, options.sameUpdatedAt ?? 6);
  const random = seededRandom(options.seed ?? 1);
  const ids = Array.from({ length: seedCount }, (_, i) => i + 1);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  ids.forEach((id, position) => {
    clockMs = SEED_EPOCH_MS + Math.floor(position / group) * 60_000;
    const contact: Contact = {
      id,
      email: `contact${id}@example.com`,
      first_name: FIRST_NAMES[Math.floor(random() * FIRST_NAMES.length)]!,
      last_name: LAST_NAMES[Math.floor(random() * LAST_NAMES.length)]!,
      company: COMPANIES[Math.floor(random() * COMPANIES.length)]!,
      updated_at: isoSeconds(clockMs),
    };
    byId.set(id, contact);
    idByEmail.set(contact.email, id);
  });
  nextId = seedCount + 1;

  const stats: SimulatorStats = { requests: 0, byStatus: {}, ignoredRetryAfter: 0, dropped: 0 };
  const listeners = new Set<(request: ServedRequest) => void>();
  let throttled = 0;
  let dropping = 0;
  let blockedUntil = 0;
  let windowStart = 0;
  let windowCount = 0;
  let admitted = 0;

  function sorted(): Contact[] {
    return [...byId.values()].sort(compareContacts);
  }

  /** Applies (or, for a dry run, evaluates) a batch as one commit with one timestamp. */
  function applyBatch(inputs: readonly unknown[], dryRun: boolean): UpsertResult[] {
    const stamp = isoSeconds(clockMs + 1000);
    // The batch works on a copy: a dry run throws it away, a real run commits it at the end.
    const staged = new Map<number, Contact>();
    const stagedIds = new Map<string, number>();
    const stagedKeys = new Map<string, number>();
    let stagedNextId = nextId;
    const results = inputs.map((raw): UpsertResult => {
      const input = (raw ?? {}) as Partial<Record<keyof UpsertInput, unknown>>;
      const email = typeof input.email === 'string' ? input.email : null;
      if (email === null || !EMAIL.test(email)) {
        return { email, status: 'error', error: { code: 'invalid_email', message: 'email must be a valid address' } };
      }
      const problem = propertyProblem(input.properties ?? {});
      if (problem !== undefined) return { email, status: 'error', error: { code: 'invalid_property', message: problem } };
      const key = typeof input.idempotency_key === 'string' ? input.idempotency_key : undefined;
      if (key !== undefined) {
        const applied = stagedKeys.get(key) ?? appliedKeys.get(key);
        if (applied !== undefined) return { email, status: 'unchanged', id: applied };
      }
      const properties = (input.properties ?? {}) as ContactProperties;
      const id = stagedIds.get(email) ?? idByEmail.get(email);
      const current = id === undefined ? undefined : (staged.get(id) ?? byId.get(id));
      let result: UpsertResult;
      if (current === undefined) {
        const created: Contact = {
          id: stagedNextId++,
          email,
          first_name: properties.first_name ?? null,
          last_name: properties.last_name ?? null,
          company: properties.company ?? null,
          updated_at: stamp,
        };
        staged.set(created.id, created);
        stagedIds.set(email, created.id);
        result = dryRun ? { email, status: 'created' } : { email, status: 'created', id: created.id };
      } else {
        const changed = (Object.keys(properties) as Array<keyof ContactProperties>).some((name) => properties[name] !== current[name]);
        if (changed) staged.set(current.id, { ...current, ...properties, updated_at: stamp });
        result = { email, status: changed ? 'updated' : 'unchanged', id: current.id };
      }
      if (key !== undefined && result.id !== undefined) stagedKeys.set(key, result.id);
      return result;
    });
    if (!dryRun) {
      for (const contact of staged.values()) {
        byId.set(contact.id, contact);
        idByEmail.set(contact.email, contact.id);
      }
      for (const [key, id] of stagedKeys) appliedKeys.set(key, id);
      nextId = stagedNextId;
      if (staged.size > 0) clockMs += 1000;
    }
    return results;
  }

  function list(query: URLSearchParams): { page: ContactPage; total: number } {
    const limitText = query.get('limit');
    const limit = limitText === null ? MAX_PAGE_SIZE : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new HttpProblem(400, 'invalid_limit', `limit must be an integer between 1 and ${MAX_PAGE_SIZE}`);
    }
    // The position to continue after: (ms, id) strictly after, or (ms, -) from ms inclusive.
    let afterMs = Number.NEGATIVE_INFINITY;
    let afterId: number | undefined;
    const pageToken = query.get('page_token');
    if (pageToken !== null) {
      const position = decodeToken(pageToken);
      if (!position) throw new HttpProblem(400, 'invalid_page_token', 'page_token is not one this API issued');
      afterMs = position.u;
      afterId = position.i;
    } else {
      const since = query.get('updated_since');
      const after = query.get('after_id');
      if (since !== null && since !== '') {
        afterMs = Date.parse(since);
        if (!Number.isFinite(afterMs)) throw new HttpProblem(400, 'invalid_updated_since', 'updated_since must be an ISO-8601 date-time');
      }
      if (after !== null && after !== '') {
        if (since === null || since === '') throw new HttpProblem(400, 'invalid_after_id', 'after_id needs updated_since');
        afterId = Number(after);
        if (!Number.isInteger(afterId)) throw new HttpProblem(400, 'invalid_after_id', 'after_id must be an integer');
      }
    }
    const matching = sorted().filter((c) => {
      const ms = Date.parse(c.updated_at);
      return ms > afterMs || (ms === afterMs && (afterId === undefined || c.id > afterId));
    });
    const data = matching.slice(0, limit);
    const last = data[data.length - 1];
    return { page: { data, next: matching.length > limit && last ? encodeToken(last) : null }, total: matching.length };
  }

  async function readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new HttpProblem(413, 'too_large', 'request body too large');
      chunks.push(chunk as Buffer);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
      throw new HttpProblem(400, 'invalid_json', 'the body is not JSON');
    }
  }

  /** Auth, Retry-After discipline, the storm, the per-second budget, the 503s; then the route. */
  async function handle(req: IncomingMessage, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
    const now = Date.now();
    if (req.headers.authorization !== `Bearer ${token}`) {
      throw new HttpProblem(401, 'unauthorized', 'missing or invalid API token');
    }
    if (now < blockedUntil) {
      stats.ignoredRetryAfter++;
      headers['retry-after'] = String(Math.ceil((blockedUntil - now) / 1000));
      throw new HttpProblem(429, 'rate_limited', 'Retry-After has not elapsed');
    }
    if (throttled > 0) {
      throttled--;
      blockedUntil = now + retryAfterSeconds * 1000;
      headers['retry-after'] = String(retryAfterSeconds);
      throw new HttpProblem(429, 'rate_limited', 'too many requests');
    }
    const window = Math.floor(now / 1000) * 1000;
    if (window !== windowStart) {
      windowStart = window;
      windowCount = 0;
    }
    headers['x-ratelimit-limit'] = String(requestsPerSecond);
    headers['x-ratelimit-reset'] = String((windowStart + 1000) / 1000);
    if (windowCount >= requestsPerSecond) {
      headers['x-ratelimit-remaining'] = '0';
      const wait = Math.ceil((windowStart + 1000 - now) / 1000);
      blockedUntil = now + wait * 1000;
      headers['retry-after'] = String(wait);
      throw new HttpProblem(429, 'rate_limited', `more than ${requestsPerSecond} requests per second`);
    }
    windowCount++;
    headers['x-ratelimit-remaining'] = String(requestsPerSecond - windowCount);
    admitted++;
    if (unavailableEvery > 0 && admitted % unavailableEvery === 0) {
      throw new HttpProblem(503, 'unavailable', 'temporarily unavailable, try again');
    }

    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/v1/contacts') {
      const { page, total } = list(url.searchParams);
      headers['x-total-count'] = String(total);
      return { status: 200, body: page };
    }
    if (req.method === 'POST' && url.pathname === '/v1/contacts/batch_upsert') {
      const body = (await readBody(req)) as { inputs?: unknown; dry_run?: unknown } | null;
      const inputs = body?.inputs;
      if (!Array.isArray(inputs)) throw new HttpProblem(400, 'invalid_request', 'inputs must be an array');
      if (inputs.length > MAX_UPSERT_BATCH) throw new HttpProblem(400, 'batch_too_large', `at most ${MAX_UPSERT_BATCH} inputs per request`);
      const response: UpsertResponse = { results: applyBatch(inputs, body?.dry_run === true) };
      return { status: 200, body: response };
    }
    throw new HttpProblem(404, 'not_found', `no route ${req.method ?? ''} ${url.pathname}`);
  }

  const server = createServer((req, res: ServerResponse) => {
    stats.requests++;
    const headers: Record<string, string> = {};
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const respond = (status: number, body: unknown): void => {
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      res.writeHead(status, { ...headers, 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      const served: ServedRequest = { method: req.method ?? 'GET', path, status };
      for (const listener of [...listeners]) listener(served);
    };
    handle(req, headers).then(
      ({ status, body }) => {
        if (dropping > 0) {
          dropping--;
          stats.dropped++;
          res.socket?.destroy();
          return;
        }
        respond(status, body);
      },
      (error: unknown) => {
        if (error instanceof HttpProblem) respond(error.status, errorBody(error.code, error.message));
        else respond(500, errorBody('internal', error instanceof Error ? error.message : String(error)));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    get stats(): SimulatorStats {
      return { ...stats, byStatus: { ...stats.byStatus } };
    },
    contacts: sorted,
    upsert: (inputs) => applyBatch(inputs, false),
    throttle(requests) {
      throttled += requests;
    },
    dropAnswers(requests) {
      dropping += requests;
    },
    onServed(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
