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
 *   loops forever when the new token is refused too.
 */
import { Connection, OAuth2, type HttpRequest } from 'jsforce';
import { HttpApi } from 'jsforce/lib/http-api.js';
import { TributaryError, type ConnectorContext } from '@tributary/core';

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

/** The org answered 403 REQUEST_LIMIT_EXCEEDED: nothing will work until the daily limit resets. */
export const DAILY_LIMIT_ERROR_CODE = 'REQUEST_LIMIT_EXCEEDED';

const dailyLimitErrors = new WeakSet<TributaryError>();

/** Whether an error is the org's daily API limit (403 REQUEST_LIMIT_EXCEEDED): retrying is pointless. */
export function isDailyLimitError(error: unknown): boolean {
  return error instanceof TributaryError && dailyLimitErrors.has(error);
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

/** How many times in a row a new token may be refused before the error is reported. */
const MAX_CONSECUTIVE_REFRESHES = 2;

type TokenAnswer = { access_token: string; instance_url?: string };

function authError(message: string, cause?: unknown): TributaryError {
  return new TributaryError('auth', {
    userMessage: `Salesforce refused the credentials: ${message}. Check client_id, client_secret and the refresh token or username/password (and that the connected app allows this flow).`,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** A TributaryError for what jsforce threw, given the HTTP status of the last answer (if any). */
export function classifyError(error: unknown, status: number | undefined, what: string): TributaryError {
  if (error instanceof TributaryError) return error;
  const e = error as { name?: string; errorCode?: string; message?: string; code?: string; data?: unknown } | null;
  const code = e?.errorCode ?? '';
  const message = e?.message ?? String(error);
  const internalMessage = `${what}: ${status ?? 'no answer'} ${code} ${message}`.trim();
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
  if (status !== undefined && (status >= 500 || status === 408)) {
    return new TributaryError('transient', { userMessage: `Salesforce answered ${status} ${code} to ${what}`, internalMessage, cause: error });
  }
  if (status !== undefined && status >= 400) {
    return new TributaryError('skippable', { userMessage: `Salesforce refused ${what} (${status} ${code}): ${message}`, internalMessage, cause: error });
  }
  if (e?.name === 'invalid_grant' || e?.name === 'invalid_client_id' || e?.name === 'invalid_client' || e?.name === 'unsupported_grant_type') {
    return authError(message, error);
  }
  if (e?.name === 'AbortError' || message === 'Request Timeout') {
    return new TributaryError('transient', { userMessage: `Salesforce did not answer ${what} in time`, internalMessage, cause: error });
  }
  const typed = (code || e?.code) && e?.name === 'FetchError' ? { code: e.code } : undefined;
  if (typed) {
    return new TributaryError('transient', { userMessage: `Connection problem talking to Salesforce (${String(e?.code)})`, internalMessage, cause: error });
  }
  return new TributaryError('fatal', { userMessage: `Unexpected failure of ${what}: ${message}`, internalMessage, cause: error });
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
  const requestToken = tokenFlow(settings, oauth2);
  let refreshCount = 0;
  let consecutiveRefreshes = 0;
  let lastUsage: ApiUsage | undefined;

  const connection: Connection = new Connection({
    loginUrl: settings.login_url,
    version: settings.api_version,
    oauth2,
    ...(settings.instance_url ? { instanceUrl: settings.instance_url } : {}),
    ...(settings.access_token ? { accessToken: settings.access_token } : {}),
    // jsforce calls this after a 401 and then repeats the request with the new token.
    refreshFn: (conn, callback) => {
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
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
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
    const api = new HttpApi(connection, {
      retry: { maxRetries: 0 },
      // Until the answer's headers arrive (jsforce's default is 30 minutes).
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
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
    };
    try {
      const body = await api.request<T>(httpRequest);
      const response = { status: status ?? 200, headers, body };
      request.check?.(response);
      return response;
    } catch (error) {
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
