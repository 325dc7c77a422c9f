/**
 * A local Salesforce simulator: a real HTTP server on 127.0.0.1 (an ephemeral port) that the
 * real jsforce client talks to. It reproduces the documented behaviour the connector's
 * correctness depends on:
 *
 * - OAuth 2.0 token endpoint (password and refresh_token grants); access tokens expire
 *   (after `tokenTtlMs`, or all at once with `expireTokens()`), and a request with an expired
 *   token gets 401 `[{ errorCode: "INVALID_SESSION_ID" }]`.
 * - REST query / queryAll with `nextRecordsUrl` paging (2,000 rows per page, fewer when the
 *   `Sforce-Query-Options: batchSize=N` header asks); IsDeleted rows only through queryAll;
 *   a SOQL subset (see soql.ts), refusing filters on non-filterable fields. A query locator
 *   expires after 15 minutes without use, and a user holds at most 10 cursors (a new one
 *   releases the oldest): a released locator answers 400 `INVALID_QUERY_LOCATOR`.
 * - describeGlobal, describe, and the replication endpoints `updated` and `deleted` (whole
 *   minutes: the seconds of `start` are ignored; `deleted` answers 400 EXCEEDED_ID_LIMIT when
 *   a window lists more than `deletedIdLimit` ids).
 * - Numbers a double cannot hold (a Number(18,0) field's integers past 2^53) are stored and
 *   served with every digit, in JSON and CSV, and read so from request bodies.
 * - sObject collections upsert by external id: at most 200 records, `allOrNone`, one result
 *   per record; every record of one request shares one SystemModstamp (one transaction).
 * - Bulk API 2.0 query jobs (UploadComplete → InProgress → JobComplete) with CSV results
 *   paged by `Sforce-Locator` (the string `null` on the last page): a quoted header row, then
 *   every value quoted and null as an empty cell, columns in the order of the query, the
 *   job's `columnDelimiter` (default COMMA) and `lineEnding` (default LF).
 * - `Sforce-Limit-Info: api-usage=USED/MAX` on every answer; past the daily limit, 403
 *   `REQUEST_LIMIT_EXCEEDED`. Errors are arrays of `{ message, errorCode }`.
 *
 * SystemModstamp has whole-second precision, so many rows share one value, and the test API
 * can commit rows with a SystemModstamp behind what a reader already passed (`stamp`), as
 * long transactions do on the real platform.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CSV_COLUMN_DELIMITERS, CSV_LINE_ENDINGS, csvValue, sfDateTime } from './format.js';
import { JsonNumber, parseJson, stringifyJson } from '../client/json.js';
import type { ExtraFieldSpec, SimField } from './objects.js';
import { ApiProblem, COLLECTION_SIZE, createOrg, type Row, type SimTransaction, type Table, type WriteOptions } from './org.js';
import type { SoqlQuery } from './soql.js';

export type { SimTransaction, WriteOptions } from './org.js';

/** Salesforce's documented limits, the simulator's defaults. */
export const SALESFORCE_LIMITS = {
  /** Rows per REST query page (the maximum `batchSize`). */
  queryPageSize: 2000,
  /** Records per sObject collections request. */
  collectionSize: COLLECTION_SIZE,
  /** Daily API requests of an Enterprise Edition org before per-license additions. */
  dailyApiRequests: 100_000,
  /** Rows per Bulk API 2.0 results page when the client does not ask for fewer. */
  bulkPageSize: 50_000,
  /**
   * Bytes of a request's URI and headers together: past it Salesforce answers 431 Request
   * Header Fields Too Large, or 414 URI Too Long when the URI alone is past it (Knowledge
   * article 000386264). A SOQL query travels in the URI of `GET /query?q=`.
   */
  requestHeadBytes: 16_384,
  /** A query locator expires after this long without use (SOAP API Developer Guide, QueryLocator). */
  queryLocatorIdleMs: 15 * 60_000,
  /** Query cursors a user may hold open; opening one more releases the oldest. */
  openQueryCursors: 10,
  /**
   * Ids the `deleted` endpoint lists in one answer: past it, 400 EXCEEDED_ID_LIMIT ("choose
   * start and end dates that are closer together", REST API Developer Guide, sObject Get Deleted).
   */
  deletedIds: 600_000,
} as const;

export interface SalesforceSimulatorOptions {
  /** Records to seed per object, e.g. `{ Account: 500 }` (default none). */
  records?: Partial<Record<string, number>>;
  /** Seeded records sharing one SystemModstamp (default 5): pages split such groups. */
  tieGroup?: number;
  seed?: number;
  /** Largest REST query page (default 2,000); tests use small ones. */
  queryPageSize?: number;
  /** Largest Bulk results page (default 50,000). */
  bulkPageSize?: number;
  /** Daily API request limit (default 100,000). */
  dailyApiLimit?: number;
  /** Access tokens expire this long after they were issued (default: never, see `expireTokens`). */
  tokenTtlMs?: number;
  /** Status polls a Bulk query job takes to complete (default 2). */
  bulkPollsToComplete?: number;
  /** The `updated`/`deleted` endpoints cover whole units of this (default one minute, as Salesforce). */
  replicationGranularityMs?: number;
  /**
   * Extra custom text fields per object, e.g. `{ Account: 600 }` (an org's wide objects: up to
   * 800 custom fields each), named `Custom_Text_Field_0001__c`…, seeded like the others.
   */
  customFields?: Partial<Record<string, number>>;
  /** A query locator unused for this long answers 400 INVALID_QUERY_LOCATOR (default 15 minutes). */
  queryLocatorIdleMs?: number;
  /**
   * Extra fields per object, e.g. `{ Account: [{ name: 'Big__c', type: 'double', precision: 18,
   * scale: 0 }] }` (a Number(18,0) field, whose integers can pass 2^53: they are served as JSON
   * numbers with every digit, as Salesforce does). The test API takes such values as bigints.
   */
  extraFields?: Partial<Record<string, ExtraFieldSpec[]>>;
  /** Most ids one answer of the `deleted` endpoint lists before it answers 400 EXCEEDED_ID_LIMIT (default 600,000). */
  deletedIdLimit?: number;
}

export interface ServedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  status: number;
  /** Rows in the answer (query pages, Bulk result pages). */
  rows?: number;
}

export interface SimulatorStats {
  /** Every HTTP request received. */
  requests: number;
  /** Requests counted against the daily API limit. */
  apiCalls: number;
  byStatus: Record<number, number>;
  tokenRequests: number;
}


export interface SalesforceSimulator {
  /** Base URL; also the login URL and the instance URL. */
  readonly url: string;
  readonly version: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly username: string;
  readonly password: string;
  /** A refresh token the token endpoint accepts (as a connected app would have issued). */
  readonly refreshToken: string;
  readonly stats: SimulatorStats;
  readonly apiUsage: { used: number; limit: number };
  /** Inserts records (as a user of the org would); returns their ids. */
  insert(object: string, records: Array<Record<string, unknown>>, options?: WriteOptions): string[];
  update(object: string, id: string, changes: Record<string, unknown>, options?: WriteOptions): void;
  /** Moves records to the recycle bin: IsDeleted = true, visible to queryAll only. */
  softDelete(object: string, ids: string[], options?: WriteOptions): void;
  /**
   * Restores records from the recycle bin (SOAP `undelete()`; the REST API has none): IsDeleted
   * = false, SystemModstamp and LastModifiedDate moved to the undelete's time. Purged records
   * cannot be restored.
   */
  undelete(object: string, ids: string[], options?: WriteOptions): void;
  /**
   * Starts a long transaction (batch processing, say) that began at `stamp` (default now): its
   * writes stay invisible until `commit()`, then carry that stamp, and while it runs the
   * `updated` endpoint's `latestDateCovered` is no later than its start, as Salesforce documents.
   */
  beginTransaction(options?: WriteOptions): SimTransaction;
  /**
   * Hard-deletes: gone from queryAll too; only the `deleted` endpoint still reports them, with
   * the time of deletion `deletedAt` (ISO string or ms; default now, or when the record went to the recycle bin).
   */
  purge(object: string, ids: string[], options?: { deletedAt?: string | number }): void;
  /**
   * Salesforce's cleanup of an oversized delete log: entries logged before `before` are gone,
   * and a `deleted` window starting before it answers 400 INVALID_REPLICATION_DATE.
   */
  truncateDeleteLog(object: string, before: string | number): void;
  /**
   * Records as stored (date-times as ISO strings, integers a double cannot hold as bigints),
   * deleted ones included with `all`.
   */
  records(object: string, options?: { all?: boolean }): Array<Record<string, unknown>>;
  /** Invalidates every access token issued so far (a session timeout). */
  expireTokens(): void;
  /**
   * Releases every open query cursor, as Salesforce does after 15 minutes without use or when
   * the user opens an eleventh: their locators (`nextRecordsUrl`) answer 400 INVALID_QUERY_LOCATOR.
   */
  expireQueryLocators(): void;
  /** Sets the API usage counter (e.g. close to the limit). */
  setApiUsage(used: number): void;
  setDailyApiLimit(limit: number): void;
  /** Upserts of these external ids fail with UNABLE_TO_LOCK_ROW (another transaction holds the row) until `unlock`. */
  lockRows(externalIds: string[]): void;
  unlock(): void;
  /** The next Bulk results page loses its last row but still declares the full count (a body cut short). */
  cutNextBulkPage(): void;
  /**
   * The next `count` answers to requests whose path starts with `pathPrefix` (default: the API,
   * `/services/data`; `/services/oauth2/token` for the token endpoint) send their headers and
   * half their body, then the connection drops (a network failure mid-answer).
   */
  dropNextAnswer(count?: number, pathPrefix?: string): void;
  /**
   * The next `count` answers to requests whose path starts with `pathPrefix` (as for
   * `dropNextAnswer`) send their headers and half their body (`sent: 'half'`) or none of it
   * (`'none'`), then neither send more nor close the connection (a stalled answer). Only the
   * client can end such a connection (or `close()`).
   */
  stallNextAnswer(count?: number, pathPrefix?: string, sent?: 'half' | 'none'): void;
  /** Stalled answers whose connection is still open: the client has not given up on them (yet). */
  readonly openStalledAnswers: number;
  /** The next `count` token requests answer `status` with an HTML page (an unavailable login server). */
  failNextTokenRequests(count: number, status?: number): void;
  /**
   * The next `count` API requests answer `status` with an error array (e.g. 503) of
   * `errorCode` and `message` — e.g. 403 REQUEST_LIMIT_EXCEEDED with Salesforce's
   * `ConcurrentRequests (Concurrent API Requests) Limit exceeded.`, the answer while the org
   * runs as many long-running requests as it may (25 of 20 s or more in production orgs).
   */
  failNext(count: number, status?: number, errorCode?: string, message?: string): void;
  onRequest(listener: (request: ServedRequest) => void): () => void;
  close(): Promise<void>;
}

interface Cursor {
  table: Table;
  fields: SimField[];
  rows: Row[];
  pageSize: number;
  /** When the cursor was last read (ms): it expires `queryLocatorIdleMs` later. */
  usedAt: number;
}

interface BulkJob {
  id: string;
  operation: 'query' | 'queryAll';
  query: SoqlQuery;
  table: Table;
  fields: SimField[];
  polls: number;
  state: 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Aborted';
  rows?: Row[];
  createdDate: number;
  /** The job's `columnDelimiter` and `lineEnding` (their names: COMMA, LF…). */
  columnDelimiter: string;
  lineEnding: string;
}

const ORG_ID = '00D000000000001AAA';
const USER_ID = '005000000000001AAA';
const MAX_BODY_BYTES = 50 * 1024 * 1024;

export async function startSalesforceSimulator(options: SalesforceSimulatorOptions = {}): Promise<SalesforceSimulator> {
  const version = '60.0';
  const clientId = `3MVG9${randomBytes(8).toString('hex')}`;
  const clientSecret = randomBytes(16).toString('hex');
  const username = 'integration@tributary.example';
  const password = `pw-${randomBytes(6).toString('hex')}`;
  const refreshToken = `5Aep${randomBytes(16).toString('hex')}`;
  const queryPageSize = options.queryPageSize ?? SALESFORCE_LIMITS.queryPageSize;
  const bulkPageSize = options.bulkPageSize ?? SALESFORCE_LIMITS.bulkPageSize;
  const bulkPollsToComplete = options.bulkPollsToComplete ?? 2;
  const queryLocatorIdleMs = options.queryLocatorIdleMs ?? SALESFORCE_LIMITS.queryLocatorIdleMs;
  const granularity = Math.max(1, options.replicationGranularityMs ?? 60_000);
  const deletedIdLimit = options.deletedIdLimit ?? SALESFORCE_LIMITS.deletedIds;
  let dailyApiLimit = options.dailyApiLimit ?? SALESFORCE_LIMITS.dailyApiRequests;
  let apiUsed = 0;

  const org = createOrg({
    version,
    ...(options.records ? { records: options.records } : {}),
    ...(options.tieGroup !== undefined ? { tieGroup: options.tieGroup } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.customFields ? { customFields: options.customFields } : {}),
    ...(options.extraFields ? { extraFields: options.extraFields } : {}),
  });
  const { tables, tableOf, select, parse, restRecord, upsertCollection } = org;

  /** Access token → expiry (ms, Infinity for none); expired or revoked tokens are removed. */
  const tokens = new Map<string, number>();
  const cursors = new Map<string, Cursor>();
  const jobs = new Map<string, BulkJob>();
  const listeners = new Set<(request: ServedRequest) => void>();
  const stats: SimulatorStats = { requests: 0, apiCalls: 0, byStatus: {}, tokenRequests: 0 };
  const UNAVAILABLE = 'The server is temporarily unable to handle the request';
  let failures: { count: number; status: number; errorCode: string; message: string } = { count: 0, status: 503, errorCode: 'SERVER_UNAVAILABLE', message: UNAVAILABLE };
  let cutBulkPages = 0;
  let droppedAnswers = { count: 0, pathPrefix: '/services/data' };
  let stalledAnswers: { count: number; pathPrefix: string; sent: 'half' | 'none' } = { count: 0, pathPrefix: '/services/data', sent: 'half' };
  const stalledSockets = new Set<Socket>();
  let tokenFailures = { count: 0, status: 503 };
  let url = '';

  function batchSizeOf(req: IncomingMessage): number {
    const header = String(req.headers['sforce-query-options'] ?? '');
    const match = /batchSize\s*=\s*(\d+)/i.exec(header);
    // Salesforce accepts 200–2,000 and treats the size as a hint; anything else is the default.
    const asked = match ? Number(match[1]) : SALESFORCE_LIMITS.queryPageSize;
    const size = asked >= 200 && asked <= SALESFORCE_LIMITS.queryPageSize ? asked : SALESFORCE_LIMITS.queryPageSize;
    return Math.min(size, queryPageSize);
  }

  function queryPage(cursorId: string, cursor: Cursor, offset: number): { body: Row; rows: number } {
    const slice = cursor.rows.slice(offset, offset + cursor.pageSize);
    const end = offset + slice.length;
    const done = end >= cursor.rows.length;
    if (done) cursors.delete(cursorId);
    const body: Row = {
      totalSize: cursor.rows.length,
      done,
      records: slice.map((row) => restRecord(cursor.table, cursor.fields, row)),
    };
    if (!done) body.nextRecordsUrl = `/services/data/v${version}/query/${cursorId}-${end}`;
    return { body, rows: slice.length };
  }

  function runQuery(soql: string | null, all: boolean, req: IncomingMessage): { body: Row; rows: number } {
    const query = parse(soql);
    const { table, fields, rows } = select(query, all);
    if (query.count) return { body: { totalSize: rows.length, done: true, records: [] }, rows: 0 };
    const cursorId = `01g${randomBytes(6).toString('hex').toUpperCase()}`;
    const cursor: Cursor = { table, fields, rows, pageSize: batchSizeOf(req), usedAt: Date.now() };
    // One user holds at most 10 cursors: a new one releases the oldest (Maps keep insertion order).
    if (cursors.size >= SALESFORCE_LIMITS.openQueryCursors) cursors.delete(cursors.keys().next().value!);
    cursors.set(cursorId, cursor);
    return queryPage(cursorId, cursor, 0);
  }

  function parseInstant(value: string | null, name: string): number {
    const ms = value === null ? NaN : Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
    if (!Number.isFinite(ms)) throw new ApiProblem(400, 'INVALID_REPLICATION_DATE', `${name} must be an ISO 8601 date-time`);
    return ms;
  }

  function replicationWindow(params: URLSearchParams): { start: number; end: number; covered: number } {
    // Salesforce ignores the seconds of `start` (12:30:15 is read as 12:30:00): whole units.
    const start = Math.floor(parseInstant(params.get('start'), 'start') / granularity) * granularity;
    const end = parseInstant(params.get('end'), 'end');
    if (end <= start) throw new ApiProblem(400, 'INVALID_REPLICATION_DATE', 'end must be after start');
    // Salesforce keeps replication data for 15 days and serves windows of at most 30 days.
    if (start < Date.now() - 15 * 86_400_000) throw new ApiProblem(400, 'INVALID_REPLICATION_DATE', 'startDate cannot be more than 15 days ago');
    if (end - start > 30 * 86_400_000) throw new ApiProblem(400, 'INVALID_REPLICATION_DATE', 'the window cannot exceed 30 days');
    // Salesforce covers whole minutes, up to now.
    const covered = Math.floor(Math.min(end, Date.now()) / granularity) * granularity;
    return { start, end, covered };
  }

  /** A job option among its documented values, or its default when the request leaves it out. */
  function jobOption(value: unknown, name: string, allowed: Readonly<Record<string, string>>, fallback: string): string {
    if (value === undefined || value === null) return fallback;
    // Salesforce documents the values, not the error for others: a 400 naming the option.
    if (typeof value !== 'string' || !Object.hasOwn(allowed, value)) throw new ApiProblem(400, 'INVALIDJOB', `${name} must be one of ${Object.keys(allowed).join(', ')}`);
    return value;
  }

  function createJob(body: unknown): BulkJob {
    const request = body as { operation?: unknown; query?: unknown; columnDelimiter?: unknown; lineEnding?: unknown } | null;
    const operation = request?.operation;
    if (operation !== 'query' && operation !== 'queryAll') throw new ApiProblem(400, 'INVALIDJOB', "operation must be 'query' or 'queryAll'");
    const columnDelimiter = jobOption(request?.columnDelimiter, 'columnDelimiter', CSV_COLUMN_DELIMITERS, 'COMMA');
    const lineEnding = jobOption(request?.lineEnding, 'lineEnding', CSV_LINE_ENDINGS, 'LF');
    const query = parse(typeof request?.query === 'string' ? request.query : null);
    if (query.count) throw new ApiProblem(400, 'INVALIDJOB', 'Aggregate queries are not supported by Bulk API 2.0');
    const { table, fields } = select({ ...query, limit: 0 }, false);
    const compound = fields.find((f) => f.type === 'address' || f.type === 'location');
    if (compound) throw new ApiProblem(400, 'API_ERROR', `Compound fields are not supported by Bulk API 2.0 queries: ${compound.name}`);
    const job: BulkJob = { id: `750${randomBytes(6).toString('hex').toUpperCase()}`, operation, query, table, fields, polls: 0, state: 'UploadComplete', createdDate: Date.now(), columnDelimiter, lineEnding };
    jobs.set(job.id, job);
    return job;
  }

  function jobInfo(job: BulkJob): Row {
    return {
      id: job.id,
      operation: job.operation,
      object: job.table.object.name,
      createdById: USER_ID,
      createdDate: sfDateTime(job.createdDate),
      systemModstamp: sfDateTime(job.createdDate),
      state: job.state,
      concurrencyMode: 'Parallel',
      contentType: 'CSV',
      apiVersion: Number(version),
      lineEnding: job.lineEnding,
      columnDelimiter: job.columnDelimiter,
      ...(job.rows ? { numberRecordsProcessed: job.rows.length, retries: 0, totalProcessingTime: 1 } : {}),
    };
  }

  function pollJob(job: BulkJob): void {
    if (job.state === 'JobComplete' || job.state === 'Aborted') return;
    job.polls++;
    if (job.polls >= bulkPollsToComplete) {
      // The job's snapshot is taken when it runs, not when it was created.
      job.rows = select(job.query, job.operation === 'queryAll').rows;
      job.state = 'JobComplete';
    } else job.state = 'InProgress';
  }

  function jobResults(job: BulkJob, params: URLSearchParams): { csv: string; locator: string; rows: number } {
    if (job.state !== 'JobComplete' || !job.rows) throw new ApiProblem(400, 'INVALIDJOB', `Job ${job.id} is not complete (state ${job.state})`);
    const locator = params.get('locator');
    let offset = 0;
    if (locator !== null && locator !== '') {
      offset = Number(Buffer.from(locator, 'base64url').toString('utf8'));
      if (!Number.isInteger(offset) || offset < 0 || offset > job.rows.length) throw new ApiProblem(400, 'INVALIDLOCATOR', 'Invalid locator');
    }
    const asked = params.get('maxRecords');
    const max = asked === null ? bulkPageSize : Number(asked);
    if (!Number.isInteger(max) || max < 1) throw new ApiProblem(400, 'INVALID_MAX_RECORDS', 'maxRecords must be a positive integer');
    const slice = job.rows.slice(offset, offset + Math.min(max, bulkPageSize));
    const end = offset + slice.length;
    // Get Results for a Query Job: a header row, then one row per record, columns in the
    // order the query names them (API 50.0 and later), in the job's delimiter and line ending.
    const delimiter = CSV_COLUMN_DELIMITERS[job.columnDelimiter]!;
    const lineEnding = CSV_LINE_ENDINGS[job.lineEnding]!;
    const lines = [job.query.fields.map(csvValue).join(delimiter)];
    for (const row of slice) {
      lines.push(
        job.fields
          .map((f) => {
            const value = row[f.name] ?? null;
            return csvValue(f.type === 'datetime' && typeof value === 'number' ? sfDateTime(value) : value);
          })
          .join(delimiter),
      );
    }
    if (cutBulkPages > 0 && lines.length > 1) {
      cutBulkPages--;
      lines.pop();
    }
    return { csv: lines.join(lineEnding) + lineEnding, locator: end < job.rows.length ? Buffer.from(String(end)).toString('base64url') : 'null', rows: slice.length };
  }

  // ---- HTTP ----

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new ApiProblem(413, 'REQUEST_TOO_LARGE', 'request body too large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const text = await readBody(req);
    try {
      // Numbers with more digits than a double holds are kept whole, as Salesforce does.
      return parseJson(text, (decimal) => new JsonNumber(decimal));
    } catch {
      throw new ApiProblem(400, 'JSON_PARSER_ERROR', 'The request body is not valid JSON');
    }
  }

  function issueToken(): Row {
    const accessToken = `${ORG_ID.slice(0, 15)}!${randomBytes(24).toString('base64url')}`;
    tokens.set(accessToken, options.tokenTtlMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.tokenTtlMs);
    const issuedAt = String(Date.now());
    return {
      access_token: accessToken,
      instance_url: url,
      id: `${url}/id/${ORG_ID}/${USER_ID}`,
      token_type: 'Bearer',
      issued_at: issuedAt,
      signature: randomBytes(32).toString('base64'),
    };
  }

  async function handleToken(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    stats.tokenRequests++;
    const params = new URLSearchParams(await readBody(req));
    const refused = (error: string, description: string) => ({ status: 400, body: { error, error_description: description } });
    if (params.get('client_id') !== clientId || (params.get('client_secret') ?? clientSecret) !== clientSecret) return refused('invalid_client_id', 'client identifier invalid');
    const grant = params.get('grant_type');
    if (grant === 'password') {
      if (params.get('username') !== username || params.get('password') !== password) return refused('invalid_grant', 'authentication failure');
      return { status: 200, body: issueToken() };
    }
    if (grant === 'refresh_token') {
      if (params.get('refresh_token') !== refreshToken) return refused('invalid_grant', 'expired access/refresh token');
      return { status: 200, body: issueToken() };
    }
    return refused('unsupported_grant_type', 'grant type not supported');
  }

  /** Routes one API request (auth, limits and injected failures already handled). */
  async function route(req: IncomingMessage, path: string, params: URLSearchParams, headers: Record<string, string>): Promise<{ status: number; body: unknown; rows?: number; csv?: string }> {
    const method = req.method ?? 'GET';
    const base = `/services/data/v${version}`;
    if (!path.startsWith(base)) {
      if (method === 'GET' && path === '/services/data') return { status: 200, body: [{ label: 'Winter 24', url: base, version }] };
      throw new ApiProblem(404, 'NOT_FOUND', 'The requested resource does not exist');
    }
    const rest = path.slice(base.length).replace(/\/$/, '');
    const parts = rest.split('/').filter(Boolean).map(decodeURIComponent);
    if (method === 'GET' && parts.length === 0) return { status: 200, body: { sobjects: `${base}/sobjects`, query: `${base}/query`, limits: `${base}/limits` } };
    if (method === 'GET' && rest === '/limits') return { status: 200, body: { DailyApiRequests: { Max: dailyApiLimit, Remaining: Math.max(0, dailyApiLimit - apiUsed) } } };
    if (method === 'GET' && (rest === '/query' || rest === '/queryAll')) {
      const { body, rows } = runQuery(params.get('q'), rest === '/queryAll', req);
      return { status: 200, body, rows };
    }
    if (method === 'GET' && (parts[0] === 'query' || parts[0] === 'queryAll') && parts.length === 2) {
      const match = /^(.+)-(\d+)$/.exec(parts[1]!);
      let cursor = match ? cursors.get(match[1]!) : undefined;
      // Expired after queryLocatorIdleMs without use: released like any other cursor.
      if (cursor && Date.now() - cursor.usedAt > queryLocatorIdleMs) {
        cursors.delete(match![1]!);
        cursor = undefined;
      }
      if (!match || !cursor) throw new ApiProblem(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
      cursor.usedAt = Date.now();
      const { body, rows } = queryPage(match[1]!, cursor, Number(match[2]));
      return { status: 200, body, rows };
    }
    if (parts[0] === 'sobjects') {
      if (method === 'GET' && parts.length === 1) {
        return {
          status: 200,
          body: {
            encoding: 'UTF-8',
            maxBatchSize: SALESFORCE_LIMITS.collectionSize,
            sobjects: [...tables.values()].map(({ object }) => ({
              name: object.name,
              label: object.label,
              keyPrefix: object.keyPrefix,
              custom: object.custom,
              queryable: true,
              retrieveable: true,
              replicateable: true,
              createable: true,
              updateable: true,
              deletable: true,
              urls: { sobject: `${base}/sobjects/${object.name}`, describe: `${base}/sobjects/${object.name}/describe` },
            })),
          },
        };
      }
      const table = tableOf(parts[1] ?? '');
      if (method === 'GET' && parts[2] === 'describe' && parts.length === 3) {
        const { object } = table;
        return {
          status: 200,
          body: { name: object.name, label: object.label, keyPrefix: object.keyPrefix, custom: object.custom, queryable: true, retrieveable: true, replicateable: true, createable: true, updateable: true, fields: object.fields },
        };
      }
      if (method === 'GET' && parts[2] === 'updated' && parts.length === 3) {
        const { start, covered } = replicationWindow(params);
        const ids = [...table.rows.values()]
          .filter((row) => row.IsDeleted !== true && (row.SystemModstamp as number) >= start && (row.SystemModstamp as number) < covered)
          .map((row) => row.Id as string);
        // Changes of a transaction still running are not covered: the answer covers no later than its start.
        const running = org.earliestOpenTransaction();
        const latest = running === undefined ? covered : Math.min(covered, running);
        return { status: 200, body: { ids, latestDateCovered: sfDateTime(latest) } };
      }
      if (method === 'GET' && parts[2] === 'deleted' && parts.length === 3) {
        const { start, covered } = replicationWindow(params);
        if (table.deleteLogStart !== undefined && start < table.deleteLogStart) {
          throw new ApiProblem(400, 'INVALID_REPLICATION_DATE', `startDate is before the earliest date available (${sfDateTime(table.deleteLogStart)}): the delete log was purged`);
        }
        const deletedRecords = [...table.deletions]
          .filter(([, at]) => at >= start && at <= covered)
          .sort((a, b) => a[1] - b[1])
          .map(([id, at]) => ({ id, deletedDate: sfDateTime(at) }));
        if (deletedRecords.length > deletedIdLimit) {
          throw new ApiProblem(400, 'EXCEEDED_ID_LIMIT', `More than ${deletedIdLimit} ids were found: choose start and end dates that are closer together`);
        }
        const earliest = table.deleteLogStart ?? Math.min(covered, ...table.deletions.values(), Date.now() - 15 * 86_400_000);
        return { status: 200, body: { deletedRecords, earliestDateAvailable: sfDateTime(earliest), latestDateCovered: sfDateTime(covered) } };
      }
      throw new ApiProblem(404, 'NOT_FOUND', 'The requested resource does not exist');
    }
    if (method === 'PATCH' && parts[0] === 'composite' && parts[1] === 'sobjects' && parts.length === 4) {
      return { status: 200, body: upsertCollection(parts[2]!, parts[3]!, await readJson(req)) };
    }
    if (parts[0] === 'jobs' && parts[1] === 'query') {
      if (method === 'POST' && parts.length === 2) return { status: 200, body: jobInfo(createJob(await readJson(req))) };
      const job = jobs.get(parts[2] ?? '');
      if (!job) throw new ApiProblem(404, 'NOT_FOUND', 'The requested resource does not exist');
      if (method === 'GET' && parts.length === 3) {
        pollJob(job);
        return { status: 200, body: jobInfo(job) };
      }
      if (method === 'GET' && parts[3] === 'results' && parts.length === 4) {
        const { csv, locator, rows } = jobResults(job, params);
        headers['sforce-locator'] = locator;
        headers['sforce-numberofrecords'] = String(rows);
        return { status: 200, body: undefined, csv, rows };
      }
      if (method === 'DELETE' && parts.length === 3) {
        jobs.delete(job.id);
        return { status: 204, body: undefined };
      }
      if (method === 'PATCH' && parts.length === 3) {
        job.state = 'Aborted';
        return { status: 200, body: jobInfo(job) };
      }
    }
    throw new ApiProblem(404, 'NOT_FOUND', 'The requested resource does not exist');
  }

  async function handle(req: IncomingMessage, path: string, params: URLSearchParams, headers: Record<string, string>): Promise<{ status: number; body: unknown; rows?: number; csv?: string; html?: string }> {
    if (path === '/services/oauth2/token' && req.method === 'POST') {
      if (tokenFailures.count > 0) {
        tokenFailures.count--;
        stats.tokenRequests++;
        return { status: tokenFailures.status, body: undefined, html: '<html><body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p></body></html>' };
      }
      return handleToken(req);
    }
    if (!path.startsWith('/services/data')) throw new ApiProblem(404, 'NOT_FOUND', 'The requested resource does not exist');
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const expiry = tokens.get(token);
    if (expiry === undefined || expiry <= Date.now()) {
      tokens.delete(token);
      throw new ApiProblem(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
    }
    if (apiUsed >= dailyApiLimit) {
      headers['sforce-limit-info'] = `api-usage=${apiUsed}/${dailyApiLimit}`;
      throw new ApiProblem(403, 'REQUEST_LIMIT_EXCEEDED', `TotalRequests Limit exceeded.`);
    }
    apiUsed++;
    stats.apiCalls++;
    headers['sforce-limit-info'] = `api-usage=${apiUsed}/${dailyApiLimit}`;
    if (failures.count > 0) {
      failures.count--;
      throw new ApiProblem(failures.status, failures.errorCode, failures.message);
    }
    return route(req, path, params, headers);
  }

  /**
   * 414 when the URI alone is longer than Salesforce takes, 431 when URI and headers together
   * are (the request line's method and version, and header separators, are not counted).
   */
  function requestHeadProblem(req: IncomingMessage): { status: number; reason: string } | undefined {
    const uriBytes = Buffer.byteLength(req.url ?? '');
    if (uriBytes > SALESFORCE_LIMITS.requestHeadBytes) return { status: 414, reason: 'URI Too Long' };
    let headerBytes = 0;
    for (const part of req.rawHeaders) headerBytes += Buffer.byteLength(part);
    if (uriBytes + headerBytes > SALESFORCE_LIMITS.requestHeadBytes) return { status: 431, reason: 'Request Header Fields Too Large' };
    return undefined;
  }

  // Node's own header limit (16 KiB, the request line included) would answer before the
  // simulator could: raise it, so that the limit applied is Salesforce's, checked above.
  const server = createServer({ maxHeaderSize: 4 * SALESFORCE_LIMITS.requestHeadBytes }, (req, res: ServerResponse) => {
    stats.requests++;
    const headers: Record<string, string> = {};
    const target = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = target.pathname;
    const send = (status: number, payload: string | undefined, contentType: string, rows?: number): void => {
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      if (droppedAnswers.count > 0 && payload !== undefined && path.startsWith(droppedAnswers.pathPrefix)) {
        droppedAnswers.count--;
        const bytes = Buffer.from(payload);
        res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': String(bytes.length) });
        res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.destroy());
        return;
      }
      if (stalledAnswers.count > 0 && payload !== undefined && path.startsWith(stalledAnswers.pathPrefix)) {
        stalledAnswers.count--;
        const bytes = Buffer.from(payload);
        res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': String(bytes.length) });
        if (stalledAnswers.sent === 'half') res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
        else res.flushHeaders();
        const socket = req.socket;
        stalledSockets.add(socket);
        socket.once('close', () => stalledSockets.delete(socket));
        return;
      }
      if (payload === undefined) res.writeHead(status, headers);
      else res.writeHead(status, { ...headers, 'content-type': contentType });
      res.end(payload);
      const served: ServedRequest = { method: req.method ?? 'GET', path, status, ...(rows !== undefined ? { rows } : {}) };
      for (const listener of [...listeners]) listener(served);
    };
    const tooLarge = requestHeadProblem(req);
    if (tooLarge) {
      send(tooLarge.status, `<html><body><h1>${tooLarge.status} ${tooLarge.reason}</h1></body></html>`, 'text/html;charset=UTF-8');
      return;
    }
    handle(req, path, target.searchParams, headers).then(
      ({ status, body, rows, csv, html }) => {
        if (html !== undefined) send(status, html, 'text/html;charset=UTF-8');
        else if (csv !== undefined) send(status, csv, 'text/csv', rows);
        else send(status, body === undefined ? undefined : stringifyJson(body), 'application/json;charset=UTF-8', rows);
      },
      (error: unknown) => {
        const problem = error instanceof ApiProblem ? error : new ApiProblem(500, 'UNKNOWN_EXCEPTION', error instanceof Error ? error.message : String(error));
        send(problem.status, JSON.stringify([{ message: problem.message, errorCode: problem.errorCode }]), 'application/json;charset=UTF-8');
      },
    );
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    version,
    clientId,
    clientSecret,
    username,
    password,
    refreshToken,
    get stats() {
      return { ...stats, byStatus: { ...stats.byStatus } };
    },
    get apiUsage() {
      return { used: apiUsed, limit: dailyApiLimit };
    },
    insert: org.insert,
    update: org.update,
    softDelete: org.softDelete,
    undelete: org.undelete,
    beginTransaction: org.beginTransaction,
    purge: org.purge,
    truncateDeleteLog: org.truncateDeleteLog,
    records: org.records,
    expireTokens() {
      tokens.clear();
    },
    expireQueryLocators() {
      cursors.clear();
    },
    setApiUsage(used) {
      apiUsed = used;
    },
    setDailyApiLimit(limit) {
      dailyApiLimit = limit;
    },
    cutNextBulkPage() {
      cutBulkPages++;
    },
    dropNextAnswer(count = 1, pathPrefix = '/services/data') {
      droppedAnswers = { count, pathPrefix };
    },
    stallNextAnswer(count = 1, pathPrefix = '/services/data', sent = 'half') {
      stalledAnswers = { count, pathPrefix, sent };
    },
    get openStalledAnswers() {
      return stalledSockets.size;
    },
    failNextTokenRequests(count, status = 503) {
      tokenFailures = { count, status };
    },
    lockRows(externalIds) {
      for (const id of externalIds) org.locked.add(id);
    },
    unlock() {
      org.locked.clear();
    },
    failNext(count, status = 503, errorCode = 'SERVER_UNAVAILABLE', message = UNAVAILABLE) {
      failures = { count, status, errorCode, message };
    },
    onRequest(listener) {
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
