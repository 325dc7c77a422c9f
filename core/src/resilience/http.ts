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
   * `internalMessage`), 408/5xx and network failures `transient`, anything else `fatal`.
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

function truncate(text: string): string {
  return text.length > MAX_BODY_IN_ERROR ? `${text.slice(0, MAX_BODY_IN_ERROR)}... (${text.length} chars)` : text;
}

/**
 * An HTTP client for connectors, on undici with one connection pool per client. Every
 * request runs through `ctx.call`, so it respects the connector's shared rate limit and is
 * retried when transient; every response's rate-limit headers are fed to
 * `ctx.limiter.observe`, so the limiter pauses before the peer starts answering 429.
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
      if (timeout.aborted) {
        throw new TributaryError('transient', { userMessage: `${what} timed out after ${timeoutMs} ms` });
      }
      const code = errorCode(error);
      const message = scrub(error instanceof Error ? error.message : String(error), secrets);
      if (code !== undefined && (/^E[A-Z0-9_]+$/.test(code) || TRANSIENT_UNDICI_CODES.has(code))) {
        // undici's errors carry no request headers, so the cause is safe to keep.
        throw new TributaryError('transient', { userMessage: `${what} failed: ${code}`, internalMessage: message, cause: error });
      }
      const converted = toTributaryError(error, `${what} failed`);
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
          // Most often a body cut short by the network: worth another attempt.
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
