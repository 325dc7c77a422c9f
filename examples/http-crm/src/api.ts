/**
 * The wire format of the contacts API both connectors talk to (and `simulator.ts` serves).
 *
 *   GET  /v1/contacts?updated_since=&after_id=&limit=   first page, ordered by (updated_at, id)
 *   GET  /v1/contacts?page_token=&limit=                following pages (`next` of the previous one)
 *   POST /v1/contacts/batch_upsert                      up to 50 upserts by email, one result each
 *
 * Every request carries `Authorization: Bearer <token>`. Errors are JSON `{ error: { code,
 * message } }`: 401 bad token, 400 bad request, 429 over the per-second budget (with
 * Retry-After), 503 temporarily unavailable. Every answer that passed the rate limit carries
 * `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds).
 */
import { createHttpClient, type ConnectorContext, type HttpClient, type RetryPolicy } from '@tributary/core';

/** A contact as the API returns it. `updated_at` is UTC with whole seconds. */
export type Contact = {
  id: number;
  email: string;
  first_name: string | null;
  last_name: string | null;
  company: string | null;
  updated_at: string;
};

/** One page of `GET /v1/contacts`. `next` is opaque; `null` on the last page. */
export type ContactPage = {
  data: Contact[];
  next: string | null;
};

/** The fields a client may set; `email` is the key and is given beside them. */
export type ContactProperties = {
  first_name?: string | null;
  last_name?: string | null;
  company?: string | null;
};

export type UpsertInput = {
  email: string;
  properties: ContactProperties;
  /** A replay of a key the API already applied answers `unchanged` and changes nothing. */
  idempotency_key?: string;
};

export type UpsertRequest = {
  inputs: UpsertInput[];
  /** Validate and answer as if applied, without changing anything. */
  dry_run?: boolean;
};

export type UpsertStatus = 'created' | 'updated' | 'unchanged' | 'error';

/** One result per input, in input order. */
export type UpsertResult = {
  email: string | null;
  status: UpsertStatus;
  /** The contact's id (absent for errors and for creations in a dry run). */
  id?: number;
  error?: { code: string; message: string };
};

export type UpsertResponse = { results: UpsertResult[] };

export type ApiError = { error: { code: string; message: string } };

/** The part of both connectors' configs that reaches the API. */
export interface ApiConnection {
  base_url: string;
  api_token: string;
}

/**
 * An HTTP client for the API: every request runs through `ctx.call` (the connector's shared
 * rate limit and retries), statuses map to error kinds (401 `auth`, 429 `rate_limited` with
 * Retry-After, 5xx `transient`, other 4xx `skippable`) and the token is scrubbed from errors.
 */
export function crmClient(ctx: ConnectorContext, connection: ApiConnection, retry?: RetryPolicy): HttpClient {
  return createHttpClient(ctx, {
    baseUrl: connection.base_url,
    headers: { authorization: `Bearer ${connection.api_token}` },
    timeoutMs: 15_000,
    ...(retry ? { retry } : {}),
  });
}
