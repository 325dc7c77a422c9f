/**
 * Reading one Salesforce object as one stream.
 *
 * Order and position. Rows are read in (cursor, Id) order — cursor = SystemModstamp, or
 * LastModifiedDate where SystemModstamp is not filterable — and a checkpoint after every
 * page holds the (cursor, Id) of the page's last row. SystemModstamp has whole-second
 * precision, so many rows share one value; resuming strictly after the *pair*
 * (`cursor > :ts OR (cursor = :ts AND Id > :id)`) reads every row of a tie exactly once.
 *
 * Late commits. Salesforce stamps a row when its transaction starts, so a long transaction
 * can commit rows behind a position a reader already passed. Every state also records the
 * read's horizon: the server's time when the read started, minus `lookback_seconds` — or
 * earlier, the start of a transaction still running then, which the `updated` endpoint's
 * `latestDateCovered` reports (see runningTransactionStart), however long it runs. Rows
 * stamped before the horizon were all committed when the read started; the next sync
 * resumes from the earlier of the position and the horizon, and keyed destinations absorb
 * the repeats of the window.
 *
 * Deletions. Incremental reads go through queryAll, which also returns rows in the recycle
 * bin (IsDeleted = true; deleting bumps SystemModstamp). Rows purged from the recycle bin are
 * invisible to queryAll: the `deleted` endpoint reports them, and they are emitted as
 * `{ Id, IsDeleted: true, <cursor>: deletedDate }` tombstones after the rows. The endpoint is
 * read again from the read's horizon by the next sync: deletions made while a read pages are
 * not in its rows. A window Salesforce refuses because it cleaned up its delete log after the
 * window's start is read again from the last hour (see DELETE_LOG_KEPT_MS), with a warning.
 * A window listing more than 600,000 ids (EXCEEDED_ID_LIMIT) is asked for in halves (see
 * deletedInWindow).
 *
 * Locators. A REST query locator Salesforce released (INVALID_QUERY_LOCATOR) is replaced by the
 * same query run again from the position reached (see restPages).
 *
 * Volume. Large reads go through Bulk API 2.0 query jobs with the same SOQL (ordered the same
 * way), their CSV results paged with `Sforce-Locator` here — jsforce's `bulk2.query` fails
 * past the first page — converting and checkpointing each results page in chunks of
 * page_size rows, so that memory stays bounded by a chunk, not by a 50,000-row page.
 *
 * Budget. Every answer reports `api-usage=USED/MAX`; before each request the read checks it
 * against `max_api_usage` and stops with its state saved when the share is reached.
 */
import {
  TributaryError,
  checkpoint,
  recordPage,
  streamStatus,
  type ConnectorContext,
  type RecordData,
  type SourceMessage,
  type StateBlob,
  type SyncMode,
} from '@tributary/core';
import { MAX_QUERY_PATH_LENGTH, queryPath, salesforceErrorCode, type SalesforceClient, type SalesforceRequest, type SalesforceResponse } from '../client/connection.js';
import { countCsvRecords, csvRecords } from '../client/csv.js';
import { cursorFieldOf, describeObject } from '../objects/describe.js';
import { isoDateTime, recordConverter, selectableFields, type DescribedObject } from '../objects/fields.js';

export interface ReadSettings {
  start_date?: string;
  page_size: number;
  bulk: 'auto' | 'always' | 'never';
  bulk_threshold: number;
  bulk_page_size: number;
  bulk_poll_interval_ms: number;
  lookback_seconds: number;
  max_api_usage: number;
  hard_deletes: boolean;
}

/** A position in (cursor, Id) order; without `id` it stands before every row of `cursor`. */
interface Position {
  cursor?: string;
  id?: string;
}

/** What a checkpoint of this source holds. */
interface StreamState extends Position {
  /** Server time the read started, minus the look-back window: rows before it were committed. */
  horizon?: string;
  /** The next sync reads the `deleted` endpoint from here: the earlier of its `latestDateCovered` and the read's horizon. */
  deleted_through?: string;
  /** Set on the checkpoints of a full refresh, which resumes only from its own states. */
  full_refresh?: true;
}

function invalidState(stream: string): TributaryError {
  return new TributaryError('config', {
    userMessage: `The saved state of stream "${stream}" was not written by this source; reset the stream's state`,
    stream: { name: stream },
  });
}

function isInstant(value: unknown): value is string {
  return typeof value === 'string' && Number.isFinite(Date.parse(value));
}

/** Validates a saved blob (Nango-style: a state is checked when loaded, never trusted). */
export function parseState(blob: StateBlob | undefined, stream: string, syncMode: SyncMode): StreamState {
  if (blob === undefined) return {};
  const { cursor, id, horizon, deleted_through: deletedThrough, full_refresh: fullRefresh } = blob as Record<string, unknown>;
  if ((cursor !== undefined && !isInstant(cursor)) || (id !== undefined && typeof id !== 'string')) throw invalidState(stream);
  if ((horizon !== undefined && !isInstant(horizon)) || (deletedThrough !== undefined && !isInstant(deletedThrough))) throw invalidState(stream);
  // A full refresh never resumes from an incremental state (it would skip rows before it).
  if (syncMode === 'full_refresh' && fullRefresh !== true) return {};
  const state: StreamState = {};
  if (cursor !== undefined) state.cursor = cursor as string;
  if (id !== undefined) state.id = id as string;
  if (horizon !== undefined) state.horizon = horizon as string;
  if (deletedThrough !== undefined) state.deleted_through = deletedThrough as string;
  if (fullRefresh === true) state.full_refresh = true;
  return state;
}

/** Where this read starts: after the saved position, or at the saved horizon when that is earlier. */
export function startOf(state: StreamState, syncMode: SyncMode, startDate: string | undefined): Position | undefined {
  const saved: Position | undefined = state.cursor !== undefined || state.id !== undefined ? { ...state } : undefined;
  if (saved === undefined) return startDate !== undefined ? { cursor: startDate } : undefined;
  delete (saved as StreamState).horizon;
  delete (saved as StreamState).deleted_through;
  delete (saved as StreamState).full_refresh;
  if (syncMode === 'incremental' && state.horizon !== undefined && saved.cursor !== undefined && Date.parse(state.horizon) < Date.parse(saved.cursor)) {
    return { cursor: state.horizon };
  }
  return saved;
}

function soqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function soqlDateTime(value: string): string {
  return new Date(Date.parse(value)).toISOString();
}

/** The WHERE clause selecting the rows strictly after `position` (or from it, without an id). */
export function whereAfter(position: Position | undefined, cursorField: string | undefined): string {
  if (position === undefined) return '';
  if (cursorField === undefined || position.cursor === undefined) return position.id !== undefined ? ` WHERE Id > ${soqlString(position.id)}` : '';
  const ts = soqlDateTime(position.cursor);
  if (position.id === undefined) return ` WHERE ${cursorField} >= ${ts}`;
  return ` WHERE (${cursorField} > ${ts} OR (${cursorField} = ${ts} AND Id > ${soqlString(position.id)}))`;
}

/**
 * Whether a row may have changed while the read paged, so that it can sit out of place in
 * the query's order: its cursor is not earlier than the read's horizon (`horizonMs`: the
 * server time the read started at, from the Date header, minus the look-back window).
 *
 * A query locator serves rows changed after the query started with their new values in their
 * old place. A write made during the read is stamped in or after the query's own second; a
 * long transaction that started before the query and commits while it pages is stamped at
 * its start, earlier than the query yet not earlier than the horizon (at or before the start
 * of a transaction that was running when the read started, see runningTransactionStart).
 * Either way the row now carries a later cursor than the rows served after it, so the
 * position must not move to it: the checkpoint would claim the rows between
 * its old and new place, not read yet, and a resume would skip them. Rows stamped before the
 * horizon did not change during the read and are in order. The next sync starts at or before
 * the horizon anyway, so a position held below it costs no extra rows.
 */
function mayHaveMovedDuringRead(record: RecordData, cursorField: string | undefined, horizonMs: number | undefined): boolean {
  if (cursorField === undefined || horizonMs === undefined) return false;
  const at = Date.parse(String(record[cursorField]));
  return Number.isFinite(at) && at >= horizonMs;
}

/** Strict (cursor, Id) order; a position without id stands before its cursor's rows. */
function isAfter(record: RecordData, position: Position | undefined, cursorField: string | undefined): boolean {
  if (position === undefined) return true;
  const id = String(record.Id);
  if (cursorField === undefined || position.cursor === undefined) return position.id === undefined || id > position.id;
  const delta = Date.parse(String(record[cursorField])) - Date.parse(position.cursor);
  return delta > 0 || (delta === 0 && (position.id === undefined || id > position.id));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface QueryPage {
  totalSize?: number;
  done?: boolean;
  nextRecordsUrl?: string;
  records?: Array<Record<string, unknown>>;
}

interface BulkJobInfo {
  id: string;
  state: string;
  errorMessage?: string;
  numberRecordsProcessed?: number;
}

/** One page of raw rows and, the first time, how many rows the read will return. */
interface RawPage {
  rows: Array<Record<string, unknown>>;
  total?: number;
}

export interface StreamReader {
  ctx: ConnectorContext;
  client: SalesforceClient;
  settings: ReadSettings;
}

/** The daily-budget guard: throws (after the checkpoints already yielded) once the share is reached. */
function budgetGuard(client: SalesforceClient, share: number, stream: string): () => void {
  return () => {
    const usage = client.usage();
    if (usage && usage.limit > 0 && usage.used >= share * usage.limit) {
      throw new TributaryError('rate_limited', {
        userMessage: `Stopped at ${usage.used} of the org's ${usage.limit} daily Salesforce API requests (max_api_usage ${share}); the state is saved and the next sync resumes from it`,
        stream: { name: stream },
      });
    }
  };
}

/** The server's clock (the Date header of an answer), falling back to ours. */
function serverTime(response: SalesforceResponse<unknown>): number {
  const date = Date.parse(response.headers.date ?? '');
  return Number.isFinite(date) ? date : Date.now();
}

/**
 * Starts the next request now and reports its outcome when awaited: the next page downloads
 * while the current one is converted and delivered. A request refused before it starts (the
 * budget guard) is deferred too, so the current page is still delivered and checkpointed.
 */
function prefetch<T>(start: () => Promise<T>): Promise<T> {
  const pending = Promise.resolve().then(start);
  // Handled here; the caller sees the rejection when it awaits `pending`.
  pending.catch(() => {});
  return pending;
}

/**
 * REST query pages, following `nextRecordsUrl`. `soqlFrom` is the query from the position the
 * consumer has reached (it is called when the generator resumes, after the previous page was
 * delivered and checkpointed).
 *
 * Salesforce releases a query locator after 15 minutes without use (a destination slow to
 * take a page) or when the same user opens an eleventh cursor (another integration); the
 * locator then answers 400 INVALID_QUERY_LOCATOR, for good. The query is run again from the
 * position reached, once per position: rows delivered after that position because they
 * changed during the read (see `mayHaveMovedDuringRead`) come again, with their newest values.
 */
async function* restPages(reader: StreamReader, request: (r: SalesforceRequest) => Promise<SalesforceResponse<unknown>>, soqlFrom: () => string, all: boolean, clock: { now?: number }): AsyncGenerator<RawPage> {
  const headers = { 'Sforce-Query-Options': `batchSize=${reader.settings.page_size}` };
  const fetchPage = (path: string) => request({ method: 'GET', path, headers }) as Promise<SalesforceResponse<QueryPage>>;
  let next: Promise<SalesforceResponse<QueryPage>> | undefined = fetchPage(queryPath(soqlFrom(), all));
  let first = true;
  let restartedWith: string | undefined;
  while (next !== undefined) {
    let response: SalesforceResponse<QueryPage>;
    try {
      response = await next;
    } catch (error) {
      const soql = first || salesforceErrorCode(error) !== 'INVALID_QUERY_LOCATOR' ? undefined : soqlFrom();
      // No progress since the last restart: the locators keep being released; fail, the next sync resumes.
      if (soql === undefined || soql === restartedWith) throw error;
      restartedWith = soql;
      reader.ctx.logger.warn(`Salesforce released the query locator of a read (INVALID_QUERY_LOCATOR): querying again from the position reached`);
      next = fetchPage(queryPath(soql, all));
      continue;
    }
    if (first) clock.now = serverTime(response);
    const page = response.body;
    if (!Array.isArray(page?.records)) throw new TributaryError('fatal', { userMessage: 'Salesforce answered a query with an unexpected body' });
    const nextUrl = page.done === false && typeof page.nextRecordsUrl === 'string' ? page.nextRecordsUrl : undefined;
    next = nextUrl === undefined ? undefined : prefetch(() => fetchPage(nextUrl));
    yield { rows: page.records, ...(first && typeof page.totalSize === 'number' ? { total: page.totalSize } : {}) };
    first = false;
  }
}

/**
 * Bulk API 2.0: create the job, poll it to completion, then page through its CSV results
 * with `Sforce-Locator` until the locator is the string `null`.
 */
async function* bulkPages(reader: StreamReader, request: (r: SalesforceRequest) => Promise<SalesforceResponse<unknown>>, soql: string, all: boolean, clock: { now?: number }): AsyncGenerator<RawPage> {
  const created = (await request({ method: 'POST', path: '/jobs/query', body: { operation: all ? 'queryAll' : 'query', query: soql } })) as SalesforceResponse<BulkJobInfo>;
  clock.now = serverTime(created);
  const jobId = created.body?.id;
  if (typeof jobId !== 'string') throw new TributaryError('fatal', { userMessage: 'Salesforce answered the creation of a Bulk query job without a job id' });
  let job = created.body;
  while (job.state !== 'JobComplete') {
    if (job.state === 'Failed' || job.state === 'Aborted') {
      throw new TributaryError('transient', { userMessage: `The Bulk API 2.0 query job ${jobId} ended ${job.state}: ${job.errorMessage ?? 'no reason given'}` });
    }
    await sleep(reader.settings.bulk_poll_interval_ms, reader.ctx.signal);
    job = ((await request({ method: 'GET', path: `/jobs/query/${jobId}` })) as SalesforceResponse<BulkJobInfo>).body;
  }
  const fetchResults = (locator: string | undefined) => {
    const query = `maxRecords=${reader.settings.bulk_page_size}${locator ? `&locator=${encodeURIComponent(locator)}` : ''}`;
    return request({ method: 'GET', path: `/jobs/query/${jobId}/results?${query}`, responseType: 'text', check: checkComplete }) as Promise<SalesforceResponse<string>>;
  };
  // A body cut short must not turn into records: count before converting anything, as part of
  // the request, so that a short page is fetched again.
  const checkComplete = (response: SalesforceResponse<unknown>): void => {
    const declared = Number(response.headers['sforce-numberofrecords']);
    const counted = typeof response.body === 'string' ? countCsvRecords(response.body) : 0;
    if (Number.isInteger(declared) && declared !== counted) {
      throw new TributaryError('transient', { userMessage: `A Bulk results page of job ${jobId} was cut short (${counted} of ${declared} rows)` });
    }
  };
  let next: Promise<SalesforceResponse<string>> | undefined = fetchResults(undefined);
  let first = true;
  while (next !== undefined) {
    const response: SalesforceResponse<string> = await next;
    const text = typeof response.body === 'string' ? response.body : '';
    const locator = response.headers['sforce-locator'];
    next = locator === undefined || locator === '' || locator === 'null' ? undefined : prefetch(() => fetchResults(locator));
    // Results pages are large (bulk_page_size rows): hand them on in page_size chunks, so only
    // one chunk of records is alive at a time; each chunk gets its own checkpoint.
    const total = first && typeof job.numberRecordsProcessed === 'number' ? { total: job.numberRecordsProcessed } : {};
    let chunk: Array<Record<string, unknown>> = [];
    for (const row of csvRecords(text)) {
      chunk.push(row);
      if (chunk.length >= reader.settings.page_size) {
        yield { rows: chunk, ...(first ? total : {}) };
        first = false;
        chunk = [];
      }
    }
    if (chunk.length > 0 || first) yield { rows: chunk, ...(first ? total : {}) };
    first = false;
  }
}

/**
 * The `updated` window asked for only to learn its `latestDateCovered`: this long on either
 * side of our clock (the window may end in the future: Salesforce covers up to its own now),
 * so that a clock a few minutes off from Salesforce's still asks for a valid window, while the
 * ids it lists stay those of a few minutes of changes — fewer than the look-back re-reads.
 */
const COVERAGE_WINDOW_MS = 5 * 60_000;

/**
 * When the earliest transaction still running started (ms), as the `updated` endpoint's
 * `latestDateCovered` tells: "If Salesforce executes a long-running transaction on your
 * instance, the value in this field is the start time of that long-running transaction until
 * it completes", and a next call should start from it "to capture the changes that started
 * after this date but did not complete before the endDate" (SOAP API Developer Guide,
 * GetUpdatedResult; REST API Developer Guide, sObject Get Updated). A transaction stamps its
 * rows no earlier than its start, so every row committed after this call is stamped at or
 * after the value, however long its transaction runs.
 *
 * Without a running transaction the value is the start of Salesforce's current minute (the
 * endpoint counts whole minutes, DELETED_WINDOW_UNIT_MS): only a value before that minute
 * tells of one, and undefined is answered otherwise — a transaction younger than a minute is
 * the look-back window's to cover, as before. Asked before the read's query starts. Undefined,
 * with a warning, when Salesforce refuses the window (a clock minutes off from Salesforce's:
 * INVALID_REPLICATION_DATE; more than 600,000 ids changed in the last five minutes:
 * EXCEEDED_ID_LIMIT): the read then relies on the look-back window alone.
 */
async function runningTransactionStart(request: (r: SalesforceRequest) => Promise<SalesforceResponse<unknown>>, logger: ConnectorContext['logger'], objectName: string): Promise<number | undefined> {
  const now = Date.now();
  const window = `start=${encodeURIComponent(new Date(now - COVERAGE_WINDOW_MS).toISOString())}&end=${encodeURIComponent(new Date(now + COVERAGE_WINDOW_MS).toISOString())}`;
  let response: SalesforceResponse<{ latestDateCovered?: unknown }>;
  try {
    response = (await request({ method: 'GET', path: `/sobjects/${encodeURIComponent(objectName)}/updated/?${window}` })) as SalesforceResponse<{ latestDateCovered?: unknown }>;
  } catch (error) {
    const code = salesforceErrorCode(error);
    if (code !== 'INVALID_REPLICATION_DATE' && code !== 'EXCEEDED_ID_LIMIT') throw error;
    logger.warn(`${objectName}: Salesforce did not say whether a long transaction is running (${code}); rows of a transaction running longer than lookback_seconds can be missed by this sync`);
    return undefined;
  }
  const covered = response.body?.latestDateCovered;
  const ms = typeof covered === 'string' ? Date.parse(isoDateTime(covered)) : NaN;
  const currentMinute = Math.floor(serverTime(response) / DELETED_WINDOW_UNIT_MS) * DELETED_WINDOW_UNIT_MS;
  return Number.isFinite(ms) && ms < currentMinute ? ms : undefined;
}

/** The earlier of two instants; an undefined one does not count. */
function earlierOf(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return Date.parse(b) < Date.parse(a) ? b : a;
}

/** How long Salesforce keeps the ids of deleted records for the `deleted` endpoint. */
const DELETED_RETENTION_MS = 15 * 86_400_000;

/**
 * A window start the delete log always covers. Salesforce's cleanup of an oversized log (past
 * 15,000 entries per license) drops only entries older than two hours, and a window starting
 * before what it left is refused (400 INVALID_REPLICATION_DATE).
 */
const DELETE_LOG_KEPT_MS = 60 * 60_000;

interface DeletedAnswer {
  deletedRecords?: Array<{ id: string; deletedDate: string }>;
  earliestDateAvailable?: string;
  latestDateCovered?: string;
}

/**
 * The `deleted` endpoint ignores the seconds of `start` and serves whole minutes: the
 * smallest window a read can ask for.
 */
const DELETED_WINDOW_UNIT_MS = 60_000;

/**
 * The `deleted` answer for the window [from, to], asked in smaller windows when Salesforce
 * refuses it for listing more than 600,000 ids (400 EXCEEDED_ID_LIMIT, "choose start and end
 * dates that are closer together"). Without the split such a window fails every later sync
 * too: its start never moves.
 *
 * The window is halved on a whole minute, recursively; the right half starts where the left
 * half's `latestDateCovered` says (as Salesforce asks of a next call), and the halves' lists
 * are concatenated in order without repeating an id (a deletion on a boundary minute comes
 * in both). The merged answer covers what the last half covers. A single minute that still
 * lists too many ids cannot be asked for in smaller pieces: it is skipped with a warning
 * (those deletions cannot be reported; resetting the stream resynchronizes it).
 */
async function deletedInWindow(ask: (from: string, to: string) => Promise<DeletedAnswer>, logger: ConnectorContext['logger'], objectName: string, from: string, to: string): Promise<DeletedAnswer> {
  try {
    return await ask(from, to);
  } catch (error) {
    if (salesforceErrorCode(error) !== 'EXCEEDED_ID_LIMIT') throw error;
  }
  const start = Math.floor(Date.parse(from) / DELETED_WINDOW_UNIT_MS) * DELETED_WINDOW_UNIT_MS;
  const end = Date.parse(to);
  if (end - start <= DELETED_WINDOW_UNIT_MS) {
    logger.warn(
      `${objectName}: Salesforce lists at most 600,000 deleted ids per request, and more records were deleted between ${new Date(start).toISOString()} and ${to}; records purged from the recycle bin in that minute cannot be reported as deleted. Reset the stream to resynchronize it.`,
    );
    return { deletedRecords: [], latestDateCovered: to };
  }
  const middle = start + Math.max(1, Math.floor((end - start) / (2 * DELETED_WINDOW_UNIT_MS))) * DELETED_WINDOW_UNIT_MS;
  const left = await deletedInWindow(ask, logger, objectName, from, new Date(middle).toISOString());
  // Where the left half says its coverage ended, if that is a later minute than its start
  // (otherwise the same window would be asked again, forever): the next call starts there.
  const leftCovered = left.latestDateCovered !== undefined ? Date.parse(isoDateTime(left.latestDateCovered)) : NaN;
  const rightStart = Number.isFinite(leftCovered) && leftCovered >= start + DELETED_WINDOW_UNIT_MS && leftCovered < middle ? leftCovered : middle;
  const right = await deletedInWindow(ask, logger, objectName, new Date(rightStart).toISOString(), to);
  const seen = new Set<string>();
  const deletedRecords: NonNullable<DeletedAnswer['deletedRecords']> = [];
  for (const deleted of [...(left.deletedRecords ?? []), ...(right.deletedRecords ?? [])]) {
    if (seen.has(deleted.id)) continue;
    seen.add(deleted.id);
    deletedRecords.push(deleted);
  }
  const merged: DeletedAnswer = { deletedRecords };
  const earliest = left.earliestDateAvailable ?? right.earliestDateAvailable;
  if (earliest !== undefined) merged.earliestDateAvailable = earliest;
  const covered = right.latestDateCovered ?? left.latestDateCovered;
  if (covered !== undefined) merged.latestDateCovered = covered;
  return merged;
}

/**
 * Hard deletes since `deletedThrough`: the `deleted` endpoint's ids that queryAll no longer
 * knows (rows still in the recycle bin came through queryAll with IsDeleted already).
 */
async function readPurged(
  logger: ConnectorContext['logger'],
  request: (r: SalesforceRequest) => Promise<SalesforceResponse<unknown>>,
  object: DescribedObject,
  cursorField: string,
  deletedThrough: string | undefined,
  now: number,
): Promise<{ tombstones: RecordData[]; covered: string | undefined }> {
  // The window may end in the future: Salesforce covers up to its own now.
  const end = new Date(now + 60_000).toISOString();
  let start = deletedThrough ?? new Date(now - 86_400_000).toISOString();
  // Salesforce keeps deletions 15 days and refuses older windows: read what is left, say so.
  const earliest = now - DELETED_RETENTION_MS + 60_000;
  if (Date.parse(start) < earliest) {
    logger.warn(`${object.name}: the last sync read deletions up to ${start}, more than 15 days ago; records purged before ${new Date(earliest).toISOString()} cannot be reported as deleted`);
    start = new Date(earliest).toISOString();
  }
  if (Date.parse(start) >= Date.parse(end)) return { tombstones: [], covered: deletedThrough };
  const ask = async (from: string, to: string): Promise<DeletedAnswer> => {
    const path = `/sobjects/${encodeURIComponent(object.name)}/deleted/?start=${encodeURIComponent(from)}&end=${encodeURIComponent(to)}`;
    return ((await request({ method: 'GET', path })) as SalesforceResponse<DeletedAnswer>).body;
  };
  const deletedSince = (from: string): Promise<DeletedAnswer> => deletedInWindow(ask, logger, object.name, from, end);
  let body: DeletedAnswer;
  try {
    body = await deletedSince(start);
  } catch (error) {
    // The log was cleaned up after `start`: failing would fail every later sync too (the saved
    // start never moves) and starve the streams after this one. Read what the log still holds.
    const kept = new Date(now - DELETE_LOG_KEPT_MS).toISOString();
    if (salesforceErrorCode(error) !== 'INVALID_REPLICATION_DATE' || Date.parse(start) >= Date.parse(kept)) throw error;
    if (deletedThrough !== undefined) {
      logger.warn(
        `${object.name}: Salesforce purged its delete log (it does once the log passes 15,000 entries per license); records hard-deleted between ${start} and ${kept} cannot be reported as deleted. Reset the stream to resynchronize it.`,
      );
    }
    start = kept;
    body = await deletedSince(start);
  }
  const covered = body.latestDateCovered !== undefined ? isoDateTime(body.latestDateCovered) : deletedThrough;
  // First sync: only the starting point matters; the rows read cover everything before it.
  if (deletedThrough === undefined) return { tombstones: [], covered };
  const deleted = body.deletedRecords ?? [];
  const tombstones: RecordData[] = [];
  for (let i = 0; i < deleted.length; i += 200) {
    const chunk = deleted.slice(i, i + 200);
    const soql = `SELECT Id FROM ${object.name} WHERE Id IN (${chunk.map((d) => soqlString(d.id)).join(', ')})`;
    const visible = new Set<string>();
    for await (const page of restPagesOf(request, soql)) for (const row of page) visible.add(String(row.Id));
    for (const d of chunk) if (!visible.has(d.id)) tombstones.push({ Id: d.id, IsDeleted: true, [cursorField]: isoDateTime(d.deletedDate) });
  }
  return { tombstones, covered };
}

async function* restPagesOf(request: (r: SalesforceRequest) => Promise<SalesforceResponse<unknown>>, soql: string): AsyncGenerator<Array<Record<string, unknown>>> {
  let path: string | undefined = queryPath(soql, true);
  while (path !== undefined) {
    const { body } = (await request({ method: 'GET', path })) as SalesforceResponse<QueryPage>;
    yield body.records ?? [];
    path = body.done === false && body.nextRecordsUrl ? body.nextRecordsUrl : undefined;
  }
}

/** Reads one object as one stream; see the module comment for the guarantees. */
export async function* readObject(reader: StreamReader, name: string, syncMode: SyncMode, blob: StateBlob | undefined): AsyncGenerator<SourceMessage> {
  const { client, settings } = reader;
  const guard = budgetGuard(client, settings.max_api_usage, name);
  const request = (r: SalesforceRequest): Promise<SalesforceResponse<unknown>> => {
    guard();
    return client.request(r);
  };
  const saved = parseState(blob, name, syncMode);
  const object = await (async () => {
    guard();
    return describeObject(client, name);
  })();
  const cursorField = cursorFieldOf(object);
  if (syncMode === 'incremental' && cursorField === undefined) {
    throw new TributaryError('config', { userMessage: `Stream "${name}" has no filterable SystemModstamp or LastModifiedDate: sync it as full_refresh`, stream: { name } });
  }
  const incremental = syncMode === 'incremental';
  const start = startOf(saved, syncMode, settings.start_date);
  const fields = selectableFields(object).map((f) => f.name);
  const soqlAfter = (position: Position | undefined): string =>
    `SELECT ${fields.join(', ')} FROM ${object.name}${whereAfter(position, cursorField)} ORDER BY ${cursorField ? `${cursorField}, Id` : 'Id'}`;
  const soql = soqlAfter(start);

  // A REST query travels in the URI, which Salesforce takes up to 16 KB: an object with
  // hundreds of fields is read through Bulk API 2.0, whose query travels in the request body.
  const fitsRest = queryPath(soql, incremental).length <= MAX_QUERY_PATH_LENGTH;
  if (!fitsRest && settings.bulk === 'never') {
    throw new TributaryError('config', {
      userMessage: `Stream "${name}" selects ${fields.length} fields: its query is too long for the REST API (Salesforce refuses URIs over 16,384 bytes). Set bulk to auto or always to read it through Bulk API 2.0.`,
      stream: { name },
    });
  }
  let bulk = settings.bulk === 'always' || !fitsRest;
  if (settings.bulk === 'auto' && !bulk) {
    const countSoql = `SELECT COUNT() FROM ${object.name}${whereAfter(start, cursorField)}`;
    const { body } = (await request({ method: 'GET', path: queryPath(countSoql, incremental) })) as SalesforceResponse<QueryPage>;
    bulk = (body.totalSize ?? 0) >= settings.bulk_threshold;
  }

  // Set while a transaction that started before this minute runs: it can commit rows stamped
  // `running` at any time, before the next sync or while this read pages.
  const running = incremental ? await runningTransactionStart(request, reader.ctx.logger, object.name) : undefined;
  const clock: { now?: number } = {};
  // The read's horizon: the look-back before its query started, or earlier, where Salesforce
  // says a transaction still running started (its rows may commit behind a position read).
  const horizonMs = (): number | undefined => (clock.now === undefined ? undefined : Math.min(clock.now - settings.lookback_seconds * 1000, running ?? Number.POSITIVE_INFINITY));
  const horizon = (): string | undefined => {
    const ms = horizonMs();
    return ms === undefined ? undefined : new Date(ms).toISOString();
  };
  const stateOf = (position: Position | undefined, deletedThrough: string | undefined): StateBlob => {
    const state: StreamState = { ...(position ?? {}) };
    if (incremental) {
      const readHorizon = horizon();
      if (readHorizon !== undefined) state.horizon = readHorizon;
      if (deletedThrough !== undefined) state.deleted_through = deletedThrough;
    } else if (position !== undefined) state.full_refresh = true;
    return state as StateBlob;
  };

  const readsDeletions = incremental && settings.hard_deletes && cursorField !== undefined;
  // Where the next sync reads the `deleted` endpoint from, while this read pages. A read that
  // stops before its end (a crash, the daily limit) has delivered rows that can be purged
  // before the sync that resumes it: that sync must ask for deletions from this read's horizon
  // (when its query started, less the look-back), not take itself for a first sync, which
  // asks for none because its rows cover what came before.
  const deletionsFrom = (): string | undefined => saved.deleted_through ?? (readsDeletions ? horizon() : undefined);
  const convert = recordConverter(object, bulk);
  let position = start;
  let checkpointed = false;
  // REST reads that must query again (a released locator) resume from the position reached.
  const pages = bulk ? bulkPages(reader, request, soql, incremental, clock) : restPages(reader, request, () => soqlAfter(position), incremental, clock);
  for await (const page of pages) {
    if (page.total !== undefined) {
      yield { kind: 'estimate', stream: name, rows: page.total };
      yield streamStatus(name, 'RUNNING');
    }
    if (page.rows.length === 0) continue;
    const records = page.rows.map(convert);
    // A checkpoint is only as good as the order it relies on: refuse rather than skip rows.
    for (const record of records) {
      // A row changed after the query started can be served with its new cursor value in its
      // old place in the order. It is emitted (its newest version), but the position does not
      // move to it: rows after it in the order may be older, and the next sync, which starts
      // at or before this read's horizon, reads it again.
      if (mayHaveMovedDuringRead(record, cursorField, horizonMs())) continue;
      if (!isAfter(record, position, cursorField)) {
        throw new TributaryError('fatal', { userMessage: `Salesforce returned ${name} rows out of (${cursorField ?? 'Id'}, Id) order`, stream: { name } });
      }
      position = cursorField ? { cursor: String(record[cursorField]), id: String(record.Id) } : { id: String(record.Id) };
    }
    yield recordPage(name, records);
    yield checkpoint(name, stateOf(position, deletionsFrom()));
    checkpointed = true;
  }

  if (readsDeletions) {
    const { tombstones, covered } = await readPurged(reader.ctx.logger, request, object, cursorField, saved.deleted_through, clock.now ?? Date.now());
    if (tombstones.length > 0) yield recordPage(name, tombstones);
    // The rows above are what queryAll saw when the read started: a record deleted after that
    // came back live (or not at all), yet the endpoint already lists it, and readPurged skips
    // it while it sits in the recycle bin (or, on a first sync, skips everything). Once
    // purged it would be reported by nobody. So the next sync reads deletions again from
    // this read's horizon, not from `covered`: repeats are tombstones keyed destinations absorb.
    yield checkpoint(name, stateOf(position, earlierOf(covered, horizon())));
    checkpointed = true;
  }
  // Every stream checkpoints, even when nothing was new: the next sync needs a start.
  if (!checkpointed) yield checkpoint(name, stateOf(position, deletionsFrom()));
}
