/**
 * The HubSpot API as the connector uses it, on the official `@hubspot/api-client`.
 *
 * Retries and rate limiting are Tributary's, not the client's:
 * - The client's own retry decorator is switched off (`numberOfApiCallRetries: 0`, no
 *   `limiterOptions`). Its settings live in a process-wide singleton that every `new Client()`
 *   resets, so two clients with different settings in one process interfere; it sleeps a
 *   fixed 10 s × attempt on a 429 without telling anyone; and it reads `policyName` from the
 *   error body, which the generated API classes drop when they deserialize the body into
 *   their `Error` model — so in practice it never retries their 429s at all.
 * - Every request goes through `ctx.call`: the connector's one limiter (shared by all
 *   streams, never more than the declared budget in any sliding window) and its retry loop
 *   with backoff; a 429 pauses the limiter for every stream.
 * - The peer's `X-HubSpot-RateLimit-Max` (per `-Interval-Milliseconds`) lowers the limiter's
 *   cap, scaled to the limiter's window, when the account's limit is below the declared one. `-Remaining` is deliberately not fed: at full speed every answer
 *   says 0 remaining, and pausing a whole interval each time would halve the throughput; the
 *   sliding-window limiter already knows when the oldest request leaves the window.
 * - A `DAILY` 429 is not retried (the quota comes back at midnight): it surfaces as a
 *   `DailyLimitError` the source turns into a clean stop with its state saved.
 * - A rolling-window 429 that outlasts `ctx.call`'s attempts is not the end of the read:
 *   those attempts can all fall inside one 10 s window (the first retries wait 1 s), while
 *   HubSpot's windows roll over within seconds. With `rateLimitWaitMs` (the source's
 *   `rate_limit_wait_seconds`), the call waits out a whole window and tries again, until a
 *   429 has refused it for that long; then it fails with a message that says so.
 */
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Client } from '@hubspot/api-client';
import { TributaryError, type ConnectorContext, type RateLimiter } from '@tributary/core';

/** Header the response middleware sets on 429s, so the policy survives the client's body model. */
const POLICY_HEADER = 'x-tributary-hubspot-policy';

export interface ApiObject {
  id: string;
  properties: Record<string, string | null>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  archivedAt?: string;
}

export interface ApiProperty {
  name: string;
  label?: string;
  type: string;
  fieldType?: string;
  hasUniqueValue?: boolean;
  calculated?: boolean;
  modificationMetadata?: { readOnlyValue?: boolean };
}

export interface Page {
  results: ApiObject[];
  next?: string;
}

export interface SearchBody {
  filterGroups: Array<{ filters: Array<{ propertyName: string; operator: string; value?: string; highValue?: string }> }>;
  sorts: Array<{ propertyName: string; direction: 'ASCENDING' | 'DESCENDING' }>;
  properties: string[];
  limit: number;
  after?: string;
}

export interface BatchError {
  category: string;
  message: string;
  context?: Record<string, string[]>;
}

export interface UpsertResult extends ApiObject {
  new: boolean;
}

export interface BatchAnswer<T> {
  status: number;
  results: T[];
  errors: BatchError[];
}

export interface AssociationRow {
  fromId: string;
  toIds: string[];
}

export interface HubspotApi {
  properties(objectType: string): Promise<ApiProperty[]>;
  listPage(objectType: string, query: { limit: number; after?: string; properties: string[]; archived: boolean }): Promise<Page>;
  search(objectType: string, body: SearchBody): Promise<Page & { total: number }>;
  batchRead(objectType: string, idProperty: string, ids: string[], properties: string[]): Promise<BatchAnswer<ApiObject>>;
  batchUpsert(objectType: string, idProperty: string, inputs: Array<{ id: string; properties: Record<string, string> }>): Promise<BatchAnswer<UpsertResult>>;
  associations(fromType: string, toType: string, ids: string[]): Promise<AssociationRow[]>;
  close(): void;
}

export interface ApiConfig {
  access_token: string;
  base_url?: string;
  /** How long a request may go without a byte from HubSpot (default 60). */
  request_timeout_seconds?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * The keep-alive agent every request goes through, with a stall guard: @hubspot/api-client
 * 13.5 (node-fetch underneath) sets no timeout and takes no abort signal, so an answer that
 * never comes (a proxy that swallowed the request, a half-open connection) would keep the
 * sync waiting forever. A socket that carries no byte for `timeoutMs` (the agent's `timeout`,
 * kept across keep-alive reuse) is destroyed with an `ETIMEDOUT` error: the pending request
 * rejects, as a transient failure, and is retried on a new connection. Node's agent itself
 * only closes idle sockets on that timeout, never one a request is waiting on.
 */
function stallGuardedAgent(base: string, timeoutMs: number): Agent {
  const options = { keepAlive: true, maxSockets: 16, timeout: timeoutMs };
  const agent: Agent = base.startsWith('https:') ? new HttpsAgent(options) : new Agent(options);
  const createConnection = agent.createConnection.bind(agent);
  agent.createConnection = (connectOptions, callback) => {
    const socket = createConnection(connectOptions, callback);
    if (!socket) return socket;
    // Our own destroy(error) must not surface as an unhandled 'error' of an idle socket; a
    // request using the socket still receives it through its own listener.
    socket.on('error', () => {});
    socket.on('timeout', () => {
      if (socket.destroyed) return;
      const error = Object.assign(new Error(`no answer from HubSpot for ${timeoutMs / 1000} s (request_timeout_seconds)`), { code: 'ETIMEDOUT' });
      socket.destroy(error);
    });
    return socket;
  };
  return agent;
}

/**
 * HubSpot refused a request for its rolling rate limit (a 429 `TEN_SECONDLY_ROLLING` or
 * `SECONDLY`, or a per-input `RATE_LIMITS` error of a batch answer): it clears once the
 * window has rolled over, `windowMs` at most.
 */
export class RollingLimitError extends TributaryError {
  constructor(
    readonly policy: string,
    readonly windowMs: number,
    options: { userMessage: string; internalMessage: string },
  ) {
    // HubSpot sends no Retry-After. A rolling window frees a slot as soon as its oldest
    // request ages out; one second is a safe pause for every stream of the connector.
    super('rate_limited', { ...options, retryAfterMs: 1000 });
    this.name = 'RollingLimitError';
  }
}

/** HubSpot's documented windows: search's secondly limit, else the rolling 10 seconds. */
function windowOf(policy: string | undefined): number {
  return policy === 'SECONDLY' ? 1_000 : 10_000;
}

/** The `RollingLimitError` that `error` is or wraps (`withRetry` wraps the last error when it gives up). */
function rollingLimitOf(error: unknown): RollingLimitError | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof RollingLimitError) return e;
  }
  return undefined;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The daily quota is used up: nothing will succeed before it resets. */
export class DailyLimitError extends TributaryError {
  constructor(internalMessage: string) {
    super('fatal', {
      userMessage:
        'HubSpot answered 429 DAILY: the account has used its daily API quota. Tributary stopped with its progress saved; run the sync again after the quota resets (midnight in the account time zone).',
      internalMessage,
    });
    this.name = 'DailyLimitError';
  }
}

interface ApiExceptionLike {
  code: number;
  body: unknown;
  headers: Record<string, string>;
}

function isApiException(error: unknown): error is ApiExceptionLike {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'number' && 'headers' in error;
}

function iso(value: unknown): string {
  return value instanceof Date ? value.toISOString() : String(value);
}

/** The client's model objects (with Date fields) as plain JSON. */
function plainObject(value: unknown): ApiObject {
  const o = value as { id: string; properties?: Record<string, string | null>; createdAt: unknown; updatedAt: unknown; archived?: boolean; archivedAt?: unknown };
  return {
    id: String(o.id),
    properties: { ...(o.properties ?? {}) },
    createdAt: iso(o.createdAt),
    updatedAt: iso(o.updatedAt),
    archived: o.archived === true,
    ...(o.archivedAt !== undefined && o.archivedAt !== null ? { archivedAt: iso(o.archivedAt) } : {}),
  };
}

function batchErrors(value: unknown): BatchError[] {
  const errors = (value as { errors?: unknown[] } | undefined)?.errors ?? [];
  return errors.map((e) => {
    const error = e as { category?: string; message?: string; context?: Record<string, string[]> };
    return { category: String(error.category ?? 'ERROR'), message: String(error.message ?? 'refused by HubSpot'), ...(error.context ? { context: error.context } : {}) };
  });
}

function describeBody(body: unknown): string {
  try {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return text.length > 1000 ? `${text.slice(0, 1000)}...` : text;
  } catch {
    return String(body);
  }
}

/** The failure of a call that rolling-limit 429s kept refusing for longer than the wait budget. */
function stormOutlasted(what: string, limited: RollingLimitError, waitedMs: number, budgetMs: number, cause: unknown): TributaryError {
  return new TributaryError('rate_limited', {
    userMessage:
      `HubSpot kept rate limiting ${what} (${limited.policy}) for ${Math.round(waitedMs / 1000)} s, and waiting out another ${limited.windowMs / 1000} s window ` +
      `would pass rate_limit_wait_seconds (${Math.round(budgetMs / 1000)}). Another app may be using this account's API budget. ` +
      'The read stopped with its progress saved; run the sync again later, or raise rate_limit_wait_seconds.',
    internalMessage: limited.internalMessage ?? limited.userMessage,
    cause,
  });
}

/** Maps what the client threw to the TributaryError kind the runtime acts on. */
export function toHubspotError(error: unknown, what: string): TributaryError {
  if (error instanceof TributaryError) return error;
  if (isApiException(error)) {
    const status = error.code;
    const policy = error.headers[POLICY_HEADER];
    const internalMessage = `HTTP ${status}${policy ? ` policyName=${policy}` : ''}: ${describeBody(error.body)}`;
    if (status === 429) {
      if (policy === 'DAILY') return new DailyLimitError(internalMessage);
      return new RollingLimitError(policy ?? 'TEN_SECONDLY_ROLLING', windowOf(policy), {
        userMessage: `HubSpot rate limited ${what} (HTTP 429 ${policy ?? ''})`.trim(),
        internalMessage,
      });
    }
    if (status === 401 || status === 403) {
      return new TributaryError('auth', {
        userMessage: `HubSpot refused the access token for ${what} (HTTP ${status}): check access_token and the private app's scopes`,
        internalMessage,
      });
    }
    if (status === 400 || status === 404 || status === 409 || status === 422) {
      const message = (error.body as { message?: unknown } | undefined)?.message;
      return new TributaryError('skippable', { userMessage: `HubSpot refused ${what} (HTTP ${status})${typeof message === 'string' ? `: ${message}` : ''}`, internalMessage });
    }
    if (status >= 500 || status === 408) return new TributaryError('transient', { userMessage: `HubSpot failed ${what} (HTTP ${status})`, internalMessage });
    return new TributaryError('fatal', { userMessage: `HubSpot answered ${what} with an unexpected HTTP ${status}`, internalMessage });
  }
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'ETIMEDOUT') {
    return new TributaryError('transient', { userMessage: `${what} timed out: HubSpot sent no answer within request_timeout_seconds`, internalMessage: message, cause: error });
  }
  if (typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code)) {
    return new TributaryError('transient', { userMessage: `${what} failed: ${code}`, internalMessage: message, cause: error });
  }
  if ((error as { type?: unknown } | null)?.type === 'system' || /socket hang up|network|ECONN/i.test(message)) {
    return new TributaryError('transient', { userMessage: `${what} failed: connection problem`, internalMessage: message, cause: error });
  }
  return new TributaryError('fatal', { userMessage: `${what} failed unexpectedly`, internalMessage: message, cause: error });
}

/**
 * Per-input errors of an associations v4 batch read (a 207 answer). HubSpot answers an
 * object without associations of the asked type with an `OBJECT_NOT_FOUND` error (subCategory
 * `crm.associations.NO_ASSOCIATIONS_FOUND`): that, and only that, means "no associations".
 * Any other category (`RATE_LIMITS`, an internal error, …) says nothing about the object's
 * associations, so the batch must not be read as complete: this returns the error to retry
 * the whole batch with (`RATE_LIMITS` as a rolling-limit error, the rest as transient), or
 * undefined when every error is a not-found.
 */
export function associationBatchFailure(errors: readonly BatchError[], what: string): TributaryError | undefined {
  const failed = errors.filter((e) => e.category !== 'OBJECT_NOT_FOUND');
  if (failed.length === 0) return undefined;
  const categories = [...new Set(failed.map((e) => e.category))].join(', ');
  const ids = failed.flatMap((e) => e.context?.fromObjectId ?? []);
  const internalMessage = `${failed.length} per-input error(s) (${categories})${ids.length > 0 ? ` for ${ids.slice(0, 20).join(', ')}` : ''}: ${describeBody(failed.slice(0, 5))}`;
  const userMessage = `HubSpot could not read the associations of ${failed.length} object(s) in ${what} (${categories}); the batch is retried, never taken as "no associations"`;
  if (failed.some((e) => e.category === 'RATE_LIMITS')) return new RollingLimitError('RATE_LIMITS', windowOf(undefined), { userMessage, internalMessage });
  return new TributaryError('transient', { userMessage, internalMessage });
}

/**
 * A HubSpot API whose every call runs under `ctx.call` (rate limit + retries). For a writer
 * session, pass a context whose `call` makes one attempt (the runtime already limits and
 * retries each `write`).
 */
export interface HubspotApiOptions {
  /** Search's own per-second limit, applied on top of the context's limiter. */
  searchLimiter?: RateLimiter;
  /**
   * The context limiter's cap for HubSpot's reported limit (`X-HubSpot-RateLimit-Max` per
   * `-Interval-Milliseconds`); without it the reported limit is not fed to the limiter.
   */
  limitFromHeaders?: (max: number, intervalMs: number) => number;
  /**
   * How long a call keeps trying while HubSpot answers it with rolling-limit 429s, ms from
   * its first attempt (default 0: only `ctx.call`'s own attempts). When `ctx.call` gives up
   * on such a 429 earlier, the call waits out the policy's window (10 s, 1 s for search's
   * `SECONDLY`) and runs `ctx.call` again; past this time it fails.
   */
  rateLimitWaitMs?: number;
}

export function hubspotApi(ctx: ConnectorContext, config: ApiConfig, options: HubspotApiOptions = {}): HubspotApi {
  const base = config.base_url ?? 'https://api.hubapi.com';
  const httpAgent = stallGuardedAgent(base, (config.request_timeout_seconds ?? DEFAULT_REQUEST_TIMEOUT_MS / 1000) * 1000);
  // A stop (SIGTERM) must not wait for a request in flight: the client takes no signal, so
  // its sockets are destroyed, the request rejects, and `ctx.call` sees the aborted signal.
  const abortRequests = (): void => httpAgent.destroy();
  ctx.signal.addEventListener('abort', abortRequests, { once: true });
  const client = new Client({ accessToken: config.access_token, basePath: base.replace(/\/+$/, ''), numberOfApiCallRetries: 0 });
  // Passed with every call: in @hubspot/api-client 13.5 the generated APIs apply middleware
  // (and so `httpAgent`) only when a call brings its own — the Client's are never run.
  const callOptions = {
    middleware: [
      {
        pre: (context: { setAgent(agent: Agent | HttpsAgent): void }) => {
          context.setAgent(httpAgent);
          return Promise.resolve(context);
        },
        post: async (context: { httpStatusCode: number; headers: Record<string, string>; body: { text(): Promise<string>; binary(): Promise<Buffer> } }) => {
          if (context.httpStatusCode === 429) {
            // Read the body once, keep its policyName (the client's error model drops it),
            // and hand the client an identical body.
            const text = await context.body.text();
            try {
              const policy = (JSON.parse(text) as { policyName?: unknown }).policyName;
              if (typeof policy === 'string') context.headers[POLICY_HEADER] = policy;
            } catch {
              // Not JSON: the status alone decides.
            }
            context.body = { text: () => Promise.resolve(text), binary: () => Promise.resolve(Buffer.from(text)) };
          }
          return context;
        },
      },
    ],
    middlewareMergeStrategy: 'replace',
  } as never;

  function observe(headers: Record<string, string> | undefined): void {
    const max = Number(headers?.['x-hubspot-ratelimit-max']);
    const interval = Number(headers?.['x-hubspot-ratelimit-interval-milliseconds'] ?? 10_000);
    if (options.limitFromHeaders && Number.isFinite(max) && max >= 1 && Number.isFinite(interval) && interval > 0) {
      ctx.limiter.observe({ limit: options.limitFromHeaders(max, interval) });
    }
  }

  /**
   * One request under `ctx.call`; `check` may refuse a 2xx answer (a batch whose per-input
   * errors must be retried) by returning the error to retry with. Rolling-limit 429s are
   * ridden out for up to `rateLimitWaitMs` (see `HubspotApiOptions`).
   */
  async function call<T>(
    what: string,
    request: () => Promise<{ httpStatusCode: number; headers: Record<string, string>; data: T }>,
    extraLimiter?: RateLimiter,
    check?: (data: T) => TributaryError | undefined,
  ): Promise<{ status: number; data: T }> {
    const attempt = async (): Promise<{ status: number; data: T }> => {
      // Search has its own, lower per-second limit on top of the account's budget.
      if (extraLimiter) await extraLimiter.schedule(() => Promise.resolve(), ctx.signal);
      try {
        const info = await request();
        observe(info.headers);
        const refused = check?.(info.data);
        if (refused) throw refused;
        return { status: info.httpStatusCode, data: info.data };
      } catch (error) {
        if (isApiException(error)) observe(error.headers);
        throw toHubspotError(error, what);
      }
    };
    const budgetMs = options.rateLimitWaitMs ?? 0;
    const started = Date.now();
    for (;;) {
      try {
        return await ctx.call(attempt);
      } catch (error) {
        const limited = rollingLimitOf(error);
        if (!limited || budgetMs === 0 || ctx.signal.aborted) throw error;
        const waited = Date.now() - started;
        if (waited + limited.windowMs > budgetMs) throw stormOutlasted(what, limited, waited, budgetMs, error);
        ctx.logger.warn(`HubSpot keeps rate limiting ${what} (${limited.policy}); waiting ${limited.windowMs} ms for its window to roll over`, {
          policy: limited.policy,
          waitedMs: waited,
          budgetMs,
        });
        await pause(limited.windowMs, ctx.signal);
      }
    }
  }

  return {
    async properties(objectType) {
      const { data } = await call(`GET /crm/v3/properties/${objectType}`, () => client.crm.properties.coreApi.getAllWithHttpInfo(objectType, undefined, undefined, callOptions));
      return data.results.map((p) => ({
        name: p.name,
        label: p.label,
        type: p.type,
        fieldType: p.fieldType,
        hasUniqueValue: p.hasUniqueValue === true,
        calculated: p.calculated === true,
        ...(p.modificationMetadata ? { modificationMetadata: { readOnlyValue: p.modificationMetadata.readOnlyValue } } : {}),
      }));
    },
    async listPage(objectType, query) {
      const { data } = await call(`GET /crm/v3/objects/${objectType}`, () =>
        client.crm.objects.basicApi.getPageWithHttpInfo(objectType, query.limit, query.after, query.properties, undefined, undefined, query.archived, callOptions),
      );
      const next = data.paging?.next?.after;
      return { results: data.results.map(plainObject), ...(next ? { next } : {}) };
    },
    async search(objectType, body) {
      const { data } = await call(`POST /crm/v3/objects/${objectType}/search`, () =>
        client.crm.objects.searchApi.doSearchWithHttpInfo(objectType, body as unknown as Parameters<typeof client.crm.objects.searchApi.doSearch>[1], callOptions),
        options.searchLimiter,
      );
      const next = data.paging?.next?.after;
      return { total: data.total, results: data.results.map(plainObject), ...(next ? { next } : {}) };
    },
    async batchRead(objectType, idProperty, ids, properties) {
      const { status, data } = await call(`POST /crm/v3/objects/${objectType}/batch/read`, () =>
        client.crm.objects.batchApi.readWithHttpInfo(objectType, { idProperty, inputs: ids.map((id) => ({ id })), properties, propertiesWithHistory: [] }, undefined, callOptions),
      );
      return { status, results: data.results.map(plainObject), errors: batchErrors(data) };
    },
    async batchUpsert(objectType, idProperty, inputs) {
      const { status, data } = await call(`POST /crm/v3/objects/${objectType}/batch/upsert`, () =>
        client.crm.objects.batchApi.upsertWithHttpInfo(objectType, { inputs: inputs.map((i) => ({ id: i.id, idProperty, properties: i.properties })) }, callOptions),
      );
      return {
        status,
        results: data.results.map((r) => ({ ...plainObject(r), new: (r as { _new?: boolean; new?: boolean })._new ?? (r as { new?: boolean }).new ?? false })),
        errors: batchErrors(data),
      };
    },
    async associations(fromType, toType, ids) {
      // Each result is paged on its own: an object with more associations than one page
      // holds comes back with `paging.next.after`, sent again alongside its id until none.
      const rows = new Map<string, string[]>();
      let inputs: Array<{ id: string; after?: string }> = ids.map((id) => ({ id }));
      while (inputs.length > 0) {
        const batch = inputs;
        const what = `POST /crm/v4/associations/${fromType}/${toType}/batch/read`;
        const { data } = await call(
          what,
          () => client.crm.associations.v4.batchApi.getPageWithHttpInfo(fromType, toType, { inputs: batch }, callOptions),
          undefined,
          (answer) => associationBatchFailure(batchErrors(answer), what),
        );
        const asked = new Map(batch.map((input) => [input.id, input.after]));
        inputs = [];
        // Objects without associations come back as OBJECT_NOT_FOUND errors of the 207 answer:
        // nothing to emit. Any other per-input error was retried above (`associationBatchFailure`).
        for (const r of data.results) {
          const fromId = String(r._from.id);
          const toIds = rows.get(fromId) ?? [];
          if (!rows.has(fromId)) rows.set(fromId, toIds);
          for (const t of r.to) toIds.push(String(t.toObjectId));
          const after = r.paging?.next?.after;
          if (!after) continue;
          if (after === asked.get(fromId)) {
            throw new TributaryError('fatal', { userMessage: `HubSpot returned the same associations page of ${fromType} ${fromId} again (after=${after})` });
          }
          inputs.push({ id: fromId, after });
        }
      }
      return [...rows].map(([fromId, toIds]) => ({ fromId, toIds }));
    },
    close() {
      ctx.signal.removeEventListener('abort', abortRequests);
      httpAgent.destroy();
    },
  };
}
