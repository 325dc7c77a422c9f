/**
 * The one place that talks to Salesforce: a jsforce Connection (jsforce does the HTTP, the
 * OAuth 2.0 token requests and the re-authentication after a 401), wrapped so that
 *
 * - every request makes exactly one attempt at the HTTP level: jsforce's own retry loop
 *   (GET/PUT/DELETE on 420/429/5xx, five times) is switched off, and retries happen only
 *   through `ctx.call`, under the connector's rate limit and retry policy;
 * - every answer's `Sforce-Limit-Info: api-usage=USED/MAX` is recorded, so callers can stop
 *   before the org's daily limit;
 * - failures become TributaryErrors of the right kind, with the errorCode Salesforce sent;
 * - re-authentication is bounded: jsforce logs in again after every 401 without limit, which
 *   loops forever when the new token is refused too;
 * - an answer whose connection drops mid-body, or that stops arriving (no data for
 *   `response_idle_timeout_ms`), fails (and is retried) instead of hanging: see
 *   `WholeBodyTransport`.
 */
import { PassThrough, type Duplex } from 'node:stream';
import { Connection, OAuth2, type HttpRequest } from 'jsforce';
import { HttpApi } from 'jsforce/lib/http-api.js';
import { Transport } from 'jsforce/lib/transport.js';
import type { HttpRequestOptions, HttpResponse } from 'jsforce/lib/types/common.js';
import type { Schema } from 'jsforce/lib/types/schema.js';
import { TributaryError, type ConnectorContext } from '@tributary/core';
import { EnvHttpProxyAgent, fetch as undiciFetch, type Dispatcher } from 'undici';
import { sourceSpec } from '../config.js';
import { parseJson, stringifyJson } from './json.js';

/** The connection fields shared by the source's and the writer's config. */
export interface ConnectionSettings {
  login_url: string;
  instance_url?: string;
  api_version: string;
  client_id?: string;
  client_secret?: string;
  refresh_token?: string;
  username?: string;
  password?: string;
  access_token?: string;
  /** How long an answer's body may go without data before the request fails as `transient`. */
  response_idle_timeout_ms?: number;
}

export interface SalesforceResponse<T> {
  status: number;
  headers: Record<string, string>;
  body: T;
}

export interface SalesforceRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Relative to the versioned root (`/query?q=…`) or to the instance (`/services/data/…`). */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** `text` keeps the body as a string (CSV results). */
  responseType?: 'json' | 'text';
  /**
   * Validates the answer as part of the attempt: a TributaryError it throws (e.g. `transient`
   * for a body cut short) is retried like a failed request.
   */
  check?: (response: SalesforceResponse<unknown>) => void;
}

export interface ApiUsage {
  used: number;
  limit: number;
}

/**
 * The longest query path (`/query?q=…`, relative to the versioned root) a request may carry.
 * A SOQL query travels in the URI of its GET, and Salesforce refuses a request whose URI and
 * headers together pass 16,384 bytes (414 URI Too Long, or 431). The margin is for the
 * versioned root (`/services/data/vNN.N`) and the headers (session token, query options).
 */
export const MAX_QUERY_PATH_LENGTH = 12_000;

/** The path of a REST query (`query`, or `queryAll` for rows in the recycle bin too). */
export function queryPath(soql: string, all = false): string {
  return `/${all ? 'queryAll' : 'query'}?q=${encodeURIComponent(soql)}`;
}

/** The org answered 403 REQUEST_LIMIT_EXCEEDED: nothing will work until the daily limit resets. */
export const DAILY_LIMIT_ERROR_CODE = 'REQUEST_LIMIT_EXCEEDED';

/**
 * The message of REQUEST_LIMIT_EXCEEDED when the org runs as many long-running requests (20 s
 * or more) as it may: `ConcurrentRequests (Concurrent API Requests) Limit exceeded.` (and
 * `ConcurrentPerOrgLongTxn …`). Same errorCode and status as the daily limit (`TotalRequests
 * Limit exceeded.`), but it clears as soon as one of those requests ends.
 */
const CONCURRENT_LIMIT_MESSAGE = /^Concurrent/i;

const dailyLimitErrors = new WeakSet<TributaryError>();

/** Whether an error is the org's daily API limit (403 REQUEST_LIMIT_EXCEEDED): retrying is pointless. */
export function isDailyLimitError(error: unknown): boolean {
  return error instanceof TributaryError && dailyLimitErrors.has(error);
}

/** The errorCode Salesforce answered with (e.g. `INVALID_QUERY_LOCATOR`), for an error of `request` or `attempt`. */
export function salesforceErrorCode(error: unknown): string | undefined {
  const cause = error instanceof Error ? (error.cause as { errorCode?: unknown } | undefined) : undefined;
  return typeof cause?.errorCode === 'string' ? cause.errorCode : undefined;
}

export interface SalesforceClient {
  readonly connection: Connection;
  /** One attempt, no retry (writer sessions: the runtime retries around `write`). */
  attempt<T>(request: SalesforceRequest): Promise<SalesforceResponse<T>>;
  /**
   * Through `ctx.call`: rate limited and retried on transient and rate_limited errors —
   * except the daily limit (403 REQUEST_LIMIT_EXCEEDED), thrown at once: retries cannot help.
   */
  request<T>(request: SalesforceRequest): Promise<SalesforceResponse<T>>;
  /** The last `Sforce-Limit-Info` seen, if any. */
  usage(): ApiUsage | undefined;
  /** Re-authentications done (token refreshes after a 401). */
  refreshes(): number;
}

/** How long a request may wait for Salesforce to start answering before it is retried. */
const REQUEST_TIMEOUT_MS = 120_000;

/** The schema's default, for settings that do not come through the config schema. */
const RESPONSE_IDLE_TIMEOUT_MS = sourceSpec.properties.response_idle_timeout_ms.default;

/**
 * An answer that stopped arriving: no body data for `idleMs` after its headers or its last
 * chunk. The request was aborted, which closed its connection; another attempt may get it whole.
 */
class StalledAnswerError extends Error {
  constructor(readonly idleMs: number) {
    super(`no data for ${idleMs} ms`);
    this.name = 'StalledAnswerError';
  }
}

/** How many times in a row a new token may be refused before the error is reported. */
const MAX_CONSECUTIVE_REFRESHES = 2;

type TokenAnswer = { access_token: string; instance_url?: string };

function authError(message: string, cause?: unknown): TributaryError {
  return new TributaryError('auth', {
    userMessage: `Salesforce refused the credentials: ${message}. Check client_id, client_secret and the refresh token or username/password (and that the connected app allows this flow).`,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** Error codes Salesforce answers with a 4xx status that a later attempt may clear. */
const TRANSIENT_ERROR_CODES = new Set(['QUERY_TIMEOUT']);

/** A TributaryError for what jsforce threw, given the HTTP status of the last answer (if any). */
export function classifyError(error: unknown, status: number | undefined, what: string): TributaryError {
  if (error instanceof TributaryError) return error;
  const e = error as { name?: string; errorCode?: string; message?: string; code?: string; data?: unknown } | null;
  const code = e?.errorCode ?? '';
  const message = e?.message ?? String(error);
  const internalMessage = `${what}: ${status ?? 'no answer'} ${code} ${message}`.trim();
  // The token endpoint's failures without an OAuth error body (an HTML page): jsforce names them ERROR_HTTP_<status>.
  const httpStatus = /^ERROR_HTTP_(\d{3})$/.exec(e?.name ?? '');
  if (status === undefined && httpStatus) status = Number(httpStatus[1]);
  if (code === DAILY_LIMIT_ERROR_CODE && CONCURRENT_LIMIT_MESSAGE.test(message)) {
    return new TributaryError('rate_limited', {
      userMessage: `Salesforce refused ${what} while the org runs as many long-running requests as it may (403 REQUEST_LIMIT_EXCEEDED: ${message})`,
      internalMessage,
      cause: error,
    });
  }
  if (code === DAILY_LIMIT_ERROR_CODE) {
    const daily = new TributaryError('rate_limited', {
      userMessage: 'The Salesforce org reached its daily API request limit (403 REQUEST_LIMIT_EXCEEDED); the sync stopped and resumes from its saved state once the limit resets',
      internalMessage,
      cause: error,
    });
    dailyLimitErrors.add(daily);
    return daily;
  }
  if (message.startsWith('Unable to refresh session')) return authError(message.replace(/^Unable to refresh session due to: /, ''), error);
  if (status === 401 || code === 'INVALID_SESSION_ID') return authError('the session is invalid or expired and cannot be refreshed', error);
  if (status === 403) {
    return new TributaryError('auth', { userMessage: `Salesforce refused ${what} (403 ${code}): the integration user lacks a permission`, internalMessage, cause: error });
  }
  if (status === 429 || status === 420) return new TributaryError('rate_limited', { userMessage: `Salesforce asked to slow down (${status})`, internalMessage, cause: error });
  // A query that ran past Salesforce's time limit (400 QUERY_TIMEOUT) is not a refusal of this
  // request: the same query often completes when run again.
  if (status !== undefined && (status >= 500 || status === 408 || TRANSIENT_ERROR_CODES.has(code))) {
    return new TributaryError('transient', { userMessage: `Salesforce answered ${status} ${code} to ${what}`, internalMessage, cause: error });
  }
  if (status !== undefined && status >= 400) {
    return new TributaryError('skippable', { userMessage: `Salesforce refused ${what} (${status} ${code}): ${message}`, internalMessage, cause: error });
  }
  if (e?.name === 'invalid_grant' || e?.name === 'invalid_client_id' || e?.name === 'invalid_client' || e?.name === 'unsupported_grant_type') {
    return authError(message, error);
  }
  if (error instanceof StalledAnswerError) {
    return new TributaryError('transient', { userMessage: `Salesforce stopped sending its answer to ${what} (${message})`, internalMessage, cause: error });
  }
  if (e?.name === 'AbortError' || message === 'Request Timeout') {
    return new TributaryError('transient', { userMessage: `Salesforce did not answer ${what} in time`, internalMessage, cause: error });
  }
  // node-fetch (jsforce's transport) reports network failures as FetchError with a code; Node's
  // fetch as a TypeError whose cause carries the code (a body cut short: UND_ERR_SOCKET).
  const networkCode = e?.name === 'FetchError' ? code || e.code : (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  if (typeof networkCode === 'string' && networkCode !== '') {
    return new TributaryError('transient', { userMessage: `Connection problem talking to Salesforce (${networkCode})`, internalMessage, cause: error });
  }
  return new TributaryError('fatal', { userMessage: `Unexpected failure of ${what}: ${message}`, internalMessage, cause: error });
}

const PROXY_VARIABLES = ['https_proxy', 'http_proxy', 'HTTPS_PROXY', 'HTTP_PROXY'];

/**
 * jsforce's HTTP transport pipes node-fetch's body into its own stream with `pipe`, which does
 * not forward errors: when the connection drops after the headers (a page cut short), the
 * request neither completes nor fails, and the sync hangs forever; nor does it bound the wait
 * for a body that stops arriving. This transport reads the whole body with fetch, which
 * rejects when the body is cut short, and gives up on a body that sends nothing for
 * `idleTimeoutMs` (aborting the request, which closes its connection); either way the attempt
 * fails as `transient` and is retried. The bound is on the silence between two pieces of an
 * answer, not on the whole answer: a large query page or Bulk results page keeps arriving for
 * as long as it takes. (Without it, fetch gives up only after its HTTP client's own body
 * timeout, 300 s per attempt: the most the setting can be.)
 *
 * Proxies: jsforce honours the `http(s)_proxy` variables, and so does this transport (Node's
 * own fetch ignores them): with one set, requests go through undici's `EnvHttpProxyAgent`,
 * which also honours `no_proxy`, so a proxied answer is bounded the same way.
 */
class WholeBodyTransport extends Transport {
  constructor(private readonly idleTimeoutMs: number) {
    super();
  }

  /** Through the proxy the environment names, if any (read when the connection opens, as jsforce does per request). */
  private readonly dispatcher = PROXY_VARIABLES.some((name) => process.env[name]) ? new EnvHttpProxyAgent() : undefined;

  override getRequestStreamCreator(): (req: HttpRequest, options: HttpRequestOptions) => Duplex {
    return (req, options) => {
      const stream = new PassThrough();
      fetchWhole(req, options.timeout ?? REQUEST_TIMEOUT_MS, this.idleTimeoutMs, this.dispatcher).then(
        (response) => stream.emit('complete', response),
        (error: unknown) => stream.emit('error', error),
      );
      return stream;
    };
  }
}

/** What `fetchWhole` reads of an answer (Node's fetch and undici's give the same shape). */
interface AnswerStream {
  readonly status: number;
  readonly headers: { forEach(each: (value: string, name: string) => void): void };
  readonly body: ReadableStream<Uint8Array> | null;
}

/**
 * One request, read to its end. `timeoutMs` bounds the wait for the answer's headers, as
 * jsforce's does; `idleTimeoutMs` each wait for body data after them (StalledAnswerError).
 */
async function fetchWhole(req: HttpRequest, timeoutMs: number, idleTimeoutMs: number, dispatcher: Dispatcher | undefined): Promise<HttpResponse> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response: AnswerStream;
  try {
    const init = {
      method: req.method,
      ...(req.headers ? { headers: req.headers } : {}),
      ...(typeof req.body === 'string' ? { body: req.body } : {}),
      signal: controller.signal,
    };
    // undici's own fetch when a proxy is set: Node's bundled fetch cannot take an agent of the undici package.
    response = dispatcher ? await undiciFetch(req.url, { ...init, dispatcher }) : await fetch(req.url, init);
  } finally {
    clearTimeout(timer);
  }
  const body = await readText(response, controller, idleTimeoutMs);
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name.toLowerCase()] = value;
  });
  return { statusCode: response.status, headers, body };
}

/**
 * The body decoded as UTF-8, as `Response.text()` does. Rejects when the connection drops
 * mid-body (TypeError "terminated", cause UND_ERR_SOCKET), and with StalledAnswerError after
 * `idleTimeoutMs` without data: it then aborts the request through `controller`, which closes
 * the connection (undici cannot reuse a connection with an unread answer on it).
 */
async function readText(response: AnswerStream, controller: AbortController, idleTimeoutMs: number): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let stalled: StalledAnswerError | undefined;
  const idle = setTimeout(() => {
    stalled = new StalledAnswerError(idleTimeoutMs);
    controller.abort(stalled);
  }, idleTimeoutMs);
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      // The abort may end the body instead of failing it: what arrived is then not the whole answer.
      if (stalled) throw stalled;
      if (done) break;
      idle.refresh();
      text += decoder.decode(value, { stream: true });
    }
  } catch (error) {
    throw stalled ?? error;
  } finally {
    clearTimeout(idle);
  }
  return text + decoder.decode();
}

const JSON_CONTENT_TYPE = /^application\/json(;|$)/;

/**
 * jsforce's HttpApi, parsing JSON answers without losing digits: a number a double cannot
 * hold (a Number(18,0) value past 2^53) comes as its exact decimal string (see json.ts), where
 * jsforce's `JSON.parse` would round it.
 *
 * An error answer is parsed by its own Content-Type, also for a request that asked for text
 * (Bulk results pages): jsforce would keep its JSON error array as text and lose the
 * errorCode, so that a 403 REQUEST_LIMIT_EXCEEDED (a rate limit) read as a missing permission.
 */
class ExactJsonHttpApi extends HttpApi<Schema> {
  override async parseResponseBody(response: HttpResponse): Promise<unknown> {
    const contentType = (response.statusCode >= 400 ? response.headers['content-type'] : this.getResponseContentType(response)) ?? '';
    if (!JSON_CONTENT_TYPE.test(contentType)) return super.parseResponseBody(response);
    try {
      return parseJson(response.body);
    } catch {
      // As jsforce: a body that is no JSON stays text.
      return response.body;
    }
  }
}

function parseLimitInfo(header: string | undefined): ApiUsage | undefined {
  const match = header ? /api-usage=(\d+)\/(\d+)/.exec(header) : null;
  return match ? { used: Number(match[1]), limit: Number(match[2]) } : undefined;
}

/** The token request the config allows: refresh token, else username/password. */
function tokenFlow(settings: ConnectionSettings, oauth2: OAuth2): (() => Promise<TokenAnswer>) | undefined {
  if (settings.client_id && settings.refresh_token) {
    const refreshToken = settings.refresh_token;
    return () => oauth2.refreshToken(refreshToken);
  }
  if (settings.client_id && settings.client_secret && settings.username && settings.password) {
    const { username, password } = settings;
    return () => oauth2.authenticate(username, password);
  }
  return undefined;
}

/** Checks that the config names one way to authenticate; the message says which fields to set. */
export function assertCredentials(settings: ConnectionSettings): void {
  const hasFlow = Boolean(settings.client_id && (settings.refresh_token || (settings.client_secret && settings.username && settings.password)));
  if (!hasFlow && !(settings.access_token && settings.instance_url)) {
    throw new TributaryError('config', {
      userMessage:
        'Salesforce credentials are incomplete: set client_id with refresh_token (and client_secret if the app has one), or client_id, client_secret, username and password, or access_token with instance_url',
    });
  }
}

/**
 * `check` of the source and the writer: logs in (or refreshes the token) and reads the org's
 * limits. Refused credentials stay `auth` and bad settings `config`; anything else (an
 * unreachable host, a 5xx) is reported as a `config` error naming the URLs to check.
 */
export async function checkSalesforce(ctx: ConnectorContext, settings: ConnectionSettings): Promise<void> {
  try {
    const client = await openSalesforce(ctx, settings);
    await client.request({ method: 'GET', path: '/limits' });
  } catch (error) {
    if (TributaryError.is(error, 'auth') || TributaryError.is(error, 'config')) throw error;
    const reason = TributaryError.is(error) ? error.userMessage : String(error);
    throw new TributaryError('config', { userMessage: `Cannot reach Salesforce at login_url / instance_url: ${reason}`, cause: error });
  }
}

/**
 * Opens a client. Without an access token, the first token is requested at once (through
 * `ctx.call`, so a transient failure of the token endpoint is retried).
 */
export async function openSalesforce(ctx: ConnectorContext, settings: ConnectionSettings): Promise<SalesforceClient> {
  assertCredentials(settings);
  const oauth2 = new OAuth2({
    loginUrl: settings.login_url,
    ...(settings.client_id ? { clientId: settings.client_id } : {}),
    ...(settings.client_secret ? { clientSecret: settings.client_secret } : {}),
    redirectUri: `${settings.login_url}/services/oauth2/success`,
  });
  // Token requests too: a token answer cut short or stalled must fail, not hang.
  const transport = new WholeBodyTransport(settings.response_idle_timeout_ms ?? RESPONSE_IDLE_TIMEOUT_MS);
  oauth2._transport = transport;
  const requestToken = tokenFlow(settings, oauth2);
  let refreshCount = 0;
  let consecutiveRefreshes = 0;
  /**
   * Why the last token request of a refresh failed, when a retry may help (5xx, a dropped
   * connection). jsforce keeps only the message (`Unable to refresh session due to: …`), which
   * would otherwise read as refused credentials.
   */
  let transientRefreshFailure: TributaryError | undefined;
  let lastUsage: ApiUsage | undefined;

  const connection: Connection = new Connection({
    loginUrl: settings.login_url,
    version: settings.api_version,
    oauth2,
    ...(settings.instance_url ? { instanceUrl: settings.instance_url } : {}),
    ...(settings.access_token ? { accessToken: settings.access_token } : {}),
    // jsforce calls this after a 401 and then repeats the request with the new token.
    refreshFn: (conn, callback) => {
      transientRefreshFailure = undefined;
      if (!requestToken) return callback(new Error('the access token expired and the config has no refresh token or username/password to get a new one'));
      if (++consecutiveRefreshes > MAX_CONSECUTIVE_REFRESHES) {
        consecutiveRefreshes = 0;
        return callback(new Error('Salesforce refused a freshly issued access token'));
      }
      requestToken().then(
        (answer) => {
          refreshCount++;
          if (answer.instance_url) conn.instanceUrl = answer.instance_url;
          callback(undefined, answer.access_token);
        },
        (error: unknown) => {
          const failure = classifyError(error, undefined, 'the token request');
          // No token was issued, so none was refused: this does not count towards the bound.
          consecutiveRefreshes--;
          transientRefreshFailure = failure.retryable ? failure : undefined;
          callback(error instanceof Error ? error : new Error(String(error)));
        },
      );
    },
  });

  if (!settings.access_token && requestToken) {
    const answer = await ctx.call(async () => {
      try {
        return await requestToken();
      } catch (error) {
        throw classifyError(error, undefined, 'the token request');
      }
    });
    connection.accessToken = answer.access_token;
    connection.instanceUrl = answer.instance_url ?? settings.instance_url ?? settings.login_url;
  }

  async function attempt<T>(request: SalesforceRequest): Promise<SalesforceResponse<T>> {
    // jsforce's own retries off: one attempt per call, retries belong to ctx.call.
    const api = new ExactJsonHttpApi(connection, {
      transport,
      retry: { maxRetries: 0 },
      // Until the answer's headers arrive (jsforce's default is 30 minutes); the transport bounds the body.
      timeout: REQUEST_TIMEOUT_MS,
      ...(request.responseType === 'text' ? { responseType: 'text/plain' } : {}),
    });
    let status: number | undefined;
    let headers: Record<string, string> = {};
    api.on('response', (response: { statusCode: number; headers: Record<string, string> }) => {
      status = response.statusCode;
      headers = response.headers;
      const usage = parseLimitInfo(response.headers['sforce-limit-info']);
      if (usage) lastUsage = usage;
      if (response.statusCode < 400) consecutiveRefreshes = 0;
    });
    const path = request.path.startsWith('/services/') ? connection.instanceUrl + request.path : `${connection.instanceUrl}/services/data/v${settings.api_version}${request.path}`;
    const httpRequest: HttpRequest = {
      method: request.method,
      url: path,
      headers: { ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(request.headers ?? {}) },
      // JsonNumbers (values past a double's digits) are written with every digit.
      ...(request.body !== undefined ? { body: stringifyJson(request.body) } : {}),
    };
    try {
      const body = await api.request<T>(httpRequest);
      const response = { status: status ?? 200, headers, body };
      request.check?.(response);
      return response;
    } catch (error) {
      const refreshFailure = transientRefreshFailure;
      if (refreshFailure && error instanceof Error && error.message.startsWith('Unable to refresh session')) throw refreshFailure;
      throw classifyError(error, status, `${request.method} ${request.path.split('?')[0]}`);
    }
  }

  return {
    connection,
    attempt,
    async request<T>(request: SalesforceRequest): Promise<SalesforceResponse<T>> {
      let daily: unknown;
      const response = await ctx.call(async () => {
        try {
          return await attempt<T>(request);
        } catch (error) {
          if (!isDailyLimitError(error)) throw error;
          daily = error;
          return undefined;
        }
      });
      if (response === undefined) throw daily;
      return response;
    },
    usage: () => lastUsage,
    refreshes: () => refreshCount,
  };
}
