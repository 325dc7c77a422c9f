import { Pool, request as undiciRequest } from 'undici';
import type { ConnectorContext } from '../connector/context.js';
import { TributaryError, toTributaryError } from '../errors.js';
import type { RetryPolicy } from './policy.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

export type HttpQueryValue = string | number | boolean | null | undefined | ReadonlyArray<string | number | boolean>;

export interface HttpRequest {
  method: HttpMethod;
  /** Appended to the base URL's path; may not change the origin. */
  path: string;
  /** `undefined`/`null` values are left out; arrays repeat the parameter. */
  query?: Record<string, HttpQueryValue>;
  /** Strings and bytes are sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * Whether sending this request twice has the effect of sending it once, so that it may be
   * retried after a failure that leaves its outcome unknown (see `HttpClient.request`).
   * Defaults to true for GET, HEAD, PUT, DELETE and OPTIONS (idempotent by HTTP semantics)
   * and for a request carrying an `Idempotency-Key` header in `headers`; false otherwise
   * (POST, PATCH). Set it to true for a POST or PATCH the server applies at most once (a
   * search read via POST, an upsert whose inputs carry the API's idempotency keys); set it
   * to false for a GET or DELETE with effects a repeat would redo (e.g. one that pops a queue).
   */
  idempotent?: boolean;
}

export interface HttpResponse<T> {
  status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Parsed JSON when the content type is JSON, the text otherwise, `undefined` when empty. */
  body: T;
}

export interface HttpClientOptions {
  baseUrl: string;
  /** Sent with every request (e.g. Authorization); never copied into errors. */
  headers?: Record<string, string>;
  /** Deadline for one attempt, headers and body included (default 30 000 ms). */
  timeoutMs?: number;
  retry?: RetryPolicy;
}

export interface HttpClient {
  /**
   * One logical request: every attempt goes through `ctx.call` (rate limit + retries).
   * Resolves for 2xx; otherwise rejects with a TributaryError: 429 `rate_limited` (with
   * `retryAfterMs`), 401/403 `auth`, 400/404/409/422 `skippable` (the peer's error body in
   * `internalMessage`), 408/5xx, network failures and timeouts `transient` — except where a
   * retry could apply the request twice (below) — and anything else `fatal`.
   *
   * Retries and idempotency. A `transient` error gets retried (by `ctx.call`, or by the
   * runtime around a writer session), so it is raised only when repeating the request is
   * safe. A request that is not idempotent (see `HttpRequest.idempotent`: by default POST and
   * PATCH) may already have been applied when it fails after reaching the server, and a
   * repeat could apply it twice (create a record twice). Such a failure is `fatal` — not
   * retried by anyone, the sync or writer run stops — with a message saying the request may
   * have been applied. For these requests that covers: a connection that dropped or reset
   * once the request could have been written, the timeout, a 2xx whose body was cut short or
   * is not valid JSON (the server did apply it), and every 5xx except a 503 with Retry-After.
   * What proves the server did not apply the request stays retryable whatever the method:
   * - a failure before anything was sent: connection refused, DNS failure, connect timeout;
   * - 429 (`rate_limited`): the server turned the request away;
   * - 408, and 503 with Retry-After: the server declined it and said to come back. A 503
   *   without Retry-After is also what proxies answer for an upstream that dropped a request
   *   it had received, so for a non-idempotent request it is an unknown outcome.
   */
  request<T = unknown>(req: HttpRequest): Promise<HttpResponse<T>>;
  close(): Promise<void>;
}

export interface RateLimitBudget {
  remaining?: number;
  limit?: number;
  resetInMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_BODY_IN_ERROR = 2_000;
const SENSITIVE_NAME = /auth|token|secret|key|password|passwd|cookie|session|signature|credential/i;
/** Methods whose repeat has the effect of one request (RFC 9110, 9.2.2). */
const IDEMPOTENT_METHODS: ReadonlySet<HttpMethod> = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
/**
 * Failures of the connection attempt itself (DNS, connect): no byte of the request was
 * written, so any request may be retried. A reset, EPIPE or "other side closed" may come
 * after the request was written (a pooled keep-alive connection closed by the peer looks
 * the same), so they are not in this list.
 */
const NOT_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'UND_ERR_CONNECT_TIMEOUT']);
const NOT_SENT_SYSCALLS: ReadonlySet<string> = new Set(['connect', 'getaddrinfo']);
const TRANSIENT_UNDICI_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_INFO',
]);

/** Leading number of a header value (`"100"`, `"100, 100;w=60"` -> 100). */
function leadingNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(-?\d+(?:\.\d+)?)/.exec(value);
  return match ? Number(match[1]) : undefined;
}

/** `Retry-After` (delay-seconds or an HTTP date) in ms from `now`; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(text)) return Math.ceil(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * A reset header in ms from `now`. Peers disagree on the unit: values that look like epoch
 * milliseconds or epoch seconds (GitHub's `X-RateLimit-Reset`) are taken as instants,
 * anything smaller as delta seconds (the IETF `RateLimit-Reset`).
 */
export function parseResetHeader(value: string | undefined, now: number = Date.now()): number | undefined {
  const n = leadingNumber(value);
  if (n === undefined || n < 0) return undefined;
  if (n > 1e12) return Math.max(0, n - now);
  if (n > 1e9) return Math.max(0, n * 1000 - now);
  return Math.ceil(n * 1000);
}

/**
 * Reads the peer's rate-limit accounting from response headers (lower-cased names):
 * `X-RateLimit-Remaining/-Limit/-Reset`, IETF `RateLimit-Remaining/-Limit/-Reset`, and
 * HubSpot's `X-HubSpot-RateLimit-Remaining/-Max/-Interval-Milliseconds` (HubSpot sends no
 * reset; its rolling interval is the longest the budget can take to come back).
 */
export function readRateLimitHeaders(headers: Record<string, string>, now: number = Date.now()): RateLimitBudget | undefined {
  const families: Array<() => RateLimitBudget> = [
    () => ({
      remaining: leadingNumber(headers['x-ratelimit-remaining']),
      limit: leadingNumber(headers['x-ratelimit-limit']),
      resetInMs: parseResetHeader(headers['x-ratelimit-reset'], now),
    }),
    () => ({
      remaining: leadingNumber(headers['ratelimit-remaining']),
      limit: leadingNumber(headers['ratelimit-limit']),
      resetInMs: parseResetHeader(headers['ratelimit-reset'], now),
    }),
    () => ({
      remaining: leadingNumber(headers['x-hubspot-ratelimit-remaining']),
      limit: leadingNumber(headers['x-hubspot-ratelimit-max']),
      resetInMs: leadingNumber(headers['x-hubspot-ratelimit-interval-milliseconds']),
    }),
  ];
  for (const family of families) {
    const raw = family();
    if (raw.remaining === undefined && raw.limit === undefined) continue;
    const budget: RateLimitBudget = {};
    if (raw.remaining !== undefined) budget.remaining = raw.remaining;
    if (raw.limit !== undefined) budget.limit = raw.limit;
    if (raw.resetInMs !== undefined) budget.resetInMs = raw.resetInMs;
    return budget;
  }
  return undefined;
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Values that must never appear in an error: sensitive header values and query values. */
function collectSensitiveValues(headers: Record<string, string>, query: Record<string, HttpQueryValue> | undefined, out: Set<string>): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!SENSITIVE_NAME.test(name)) continue;
    out.add(value);
    // "Bearer abc", "Basic abc": the credential alone may be echoed too.
    const parts = value.split(/\s+/);
    if (parts.length > 1) for (const part of parts.slice(1)) out.add(part);
  }
  for (const [name, value] of Object.entries(query ?? {})) {
    if (!SENSITIVE_NAME.test(name) || value === null || value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) out.add(String(item));
  }
}

function scrub(text: string, secrets: Set<string>): string {
  let out = text;
  for (const secret of [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('**********');
  }
  return out;
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /\bjson\b|\+json/i.test(contentType);
}

function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** True when `error` (or a cause) shows that the request was never written to a connection. */
function failedBeforeSending(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, syscall } = e as { code?: unknown; syscall?: unknown };
    if (typeof code === 'string' && NOT_SENT_CODES.has(code)) return true;
    if (typeof syscall === 'string' && NOT_SENT_SYSCALLS.has(syscall)) return true;
  }
  return false;
}

/** See `HttpRequest.idempotent`. */
function isIdempotent(req: HttpRequest): boolean {
  if (req.idempotent !== undefined) return req.idempotent;
  if (IDEMPOTENT_METHODS.has(req.method)) return true;
  return Object.keys(req.headers ?? {}).some((name) => name.toLowerCase() === 'idempotency-key');
}

/** Why a retry is refused when a non-idempotent request may have been applied; for operators. */
const NOT_RETRIED_NOTE =
  'not retried: the request is not idempotent (mark it `idempotent: true`, or send an Idempotency-Key, if the server applies a repeat at most once)';

function truncate(text: string): string {
  return text.length > MAX_BODY_IN_ERROR ? `${text.slice(0, MAX_BODY_IN_ERROR)}... (${text.length} chars)` : text;
}

/**
 * An HTTP client for connectors, on undici with one connection pool per client. Every
 * request runs through `ctx.call`, so it respects the connector's shared rate limit and is
 * retried when transient and safe to repeat (see `HttpClient.request`); every response's
 * rate-limit headers are fed to `ctx.limiter.observe`, so the limiter pauses before the
 * peer starts answering 429.
 * Header values with sensitive names (Authorization, API keys, cookies) and sensitive
 * query values are scrubbed from every error this client raises.
 */
export function createHttpClient(ctx: ConnectorContext, options: HttpClientOptions): HttpClient {
  const base = new URL(options.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const defaultHeaders = options.headers ?? {};
  const pool = new Pool(base.origin);

  async function attempt<T>(req: HttpRequest): Promise<HttpResponse<T>> {
    const method = req.method;
    const relative = req.path.startsWith('/') ? req.path : `/${req.path}`;
    const url = new URL(base.origin + basePath + relative);
    if (url.origin !== base.origin) {
      throw new TributaryError('fatal', { userMessage: `Request path ${relative} leaves ${base.origin}` });
    }
    for (const [name, value] of Object.entries(req.query ?? {})) {
      if (value === undefined || value === null) continue;
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(item));
    }
    // Shown in errors: the path only, never the query (it may carry an API key).
    const what = `${method} ${url.pathname}`;
    const idempotent = isIdempotent(req);
    /**
     * The error for a failure that left the outcome of this non-idempotent request unknown:
     * `fatal`, so that neither `ctx.call` nor a runtime retrying a writer's batch repeats it.
     */
    const mayHaveApplied = (failure: string, internal: string | undefined, cause?: unknown): TributaryError =>
      new TributaryError('fatal', {
        userMessage: `${what} ${failure}; it may have been applied, so it was not retried (a repeat could apply it twice)`,
        internalMessage: internal ? `${internal} (${NOT_RETRIED_NOTE})` : NOT_RETRIED_NOTE,
        ...(cause !== undefined ? { cause } : {}),
      });

    const headers: Record<string, string> = { accept: 'application/json' };
    for (const source of [defaultHeaders, req.headers ?? {}]) {
      for (const [name, value] of Object.entries(source)) headers[name.toLowerCase()] = value;
    }
    const secrets = new Set<string>();
    collectSensitiveValues(headers, req.query, secrets);

    let body: string | Uint8Array | undefined;
    if (req.body === undefined || req.body === null) body = undefined;
    else if (typeof req.body === 'string' || req.body instanceof Uint8Array) body = req.body;
    else {
      body = JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }

    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([ctx.signal, timeout]);
    let status: number;
    let responseHeaders: Record<string, string>;
    let text: string;
    try {
      const response = await undiciRequest(url, {
        dispatcher: pool,
        method,
        headers,
        body: body ?? null,
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = response.statusCode;
      responseHeaders = flattenHeaders(response.headers);
      text = await response.body.text();
    } catch (error) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const message = scrub(error instanceof Error ? error.message : String(error), secrets);
      // Whether the request reached the server decides below whether a retry is safe.
      const retrySafe = idempotent || failedBeforeSending(error);
      if (timeout.aborted) {
        if (!retrySafe) throw mayHaveApplied(`timed out after ${timeoutMs} ms`, undefined);
        throw new TributaryError('transient', { userMessage: `${what} timed out after ${timeoutMs} ms` });
      }
      const code = errorCode(error);
      if (code !== undefined && (/^E[A-Z0-9_]+$/.test(code) || TRANSIENT_UNDICI_CODES.has(code))) {
        // undici's errors carry no request headers, so the cause is safe to keep.
        if (!retrySafe) throw mayHaveApplied(`failed: ${code}`, message, error);
        throw new TributaryError('transient', { userMessage: `${what} failed: ${code}`, internalMessage: message, cause: error });
      }
      const converted = toTributaryError(error, `${what} failed`);
      if (converted.retryable && !retrySafe) throw mayHaveApplied('failed', message);
      throw new TributaryError(converted.kind, {
        userMessage: scrub(converted.userMessage, secrets),
        internalMessage: message,
      });
    }

    const now = Date.now();
    const budget = readRateLimitHeaders(responseHeaders, now);
    if (budget) ctx.limiter.observe(budget);

    if (status >= 200 && status < 300) {
      let parsed: unknown = text.length === 0 ? undefined : text;
      if (text.length > 0 && isJson(responseHeaders['content-type'])) {
        try {
          parsed = JSON.parse(text);
        } catch {
          // Most often a body cut short by the network: worth another attempt, unless the
          // request is not idempotent — the 2xx says the server applied it.
          if (!idempotent) throw mayHaveApplied(`returned invalid JSON (HTTP ${status})`, scrub(truncate(text), secrets));
          throw new TributaryError('transient', {
            userMessage: `${what} returned invalid JSON (HTTP ${status})`,
            internalMessage: scrub(truncate(text), secrets),
          });
        }
      }
      return { status, headers: responseHeaders, body: parsed as T };
    }

    const internalMessage = scrub(`HTTP ${status}: ${truncate(text)}`, secrets);
    const retryAfterMs = parseRetryAfter(responseHeaders['retry-after'], now) ?? budget?.resetInMs;
    if (status === 429) {
      throw new TributaryError('rate_limited', {
        userMessage: `${what} was rate limited (HTTP 429)`,
        internalMessage,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
    }
    if (status === 401 || status === 403) {
      throw new TributaryError('auth', { userMessage: `${what} was refused (HTTP ${status}): check the credentials`, internalMessage });
    }
    if (status === 400 || status === 404 || status === 409 || status === 422) {
      throw new TributaryError('skippable', { userMessage: `${what} failed (HTTP ${status})`, internalMessage });
    }
    if (status >= 500 || status === 408) {
      const retryAfter = parseRetryAfter(responseHeaders['retry-after'], now);
      // A 408, or a 503 that says when to come back, is the server declining the request;
      // any other 5xx may come after it applied it (a 500 mid-way, a gateway's 502/504 or
      // a proxy's 503 for an upstream that dropped the request it had received).
      const declined = status === 408 || (status === 503 && retryAfter !== undefined);
      if (!idempotent && !declined) throw mayHaveApplied(`failed (HTTP ${status})`, internalMessage);
      throw new TributaryError('transient', {
        userMessage: `${what} failed (HTTP ${status})`,
        internalMessage,
        ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
      });
    }
    throw new TributaryError('fatal', { userMessage: `${what} got an unexpected answer (HTTP ${status})`, internalMessage });
  }

  return {
    request<T = unknown>(req: HttpRequest): Promise<HttpResponse<T>> {
      return ctx.call(() => attempt<T>(req), options.retry);
    },
    close(): Promise<void> {
      return pool.close();
    },
  };
}
