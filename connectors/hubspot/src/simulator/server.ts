/**
 * A local HubSpot CRM v3 simulator: a real HTTP server on 127.0.0.1 (ephemeral port) that
 * the real `@hubspot/api-client` talks to. It reproduces the documented behaviour the
 * connector's correctness depends on:
 *
 * - CRM objects (contacts, companies, deals): list paged by an id cursor, `archived=true`
 *   listing, batch read/create/update/upsert/archive (at most 100 inputs; 207 with `errors`
 *   and `numErrors` when some inputs fail), merges (a new record listing the merged-away ids
 *   in `hs_merged_object_ids`), the properties API, associations v4.
 * - Search: filterGroups (≤ 5 groups, ≤ 6 filters each), ONE honoured sort (ties come back
 *   in an order unrelated to id, as nothing is promised), ≤ 200 per page, 400 when a query
 *   pages past 10,000 results, never archived records, an index that lags writes by
 *   `searchLagMs`, and its own per-second limit (429 "You have reached your secondly limit.").
 * - Rate limits: a rolling 10-second window and a daily quota per token, with the
 *   `X-HubSpot-RateLimit-*` headers on every non-search answer and 429 bodies naming the
 *   policy (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY`).
 * - 401 `INVALID_AUTHENTICATION`, 400 `VALIDATION_ERROR` bodies; every body is JSON with
 *   `Content-Type: application/json` (the client throws a plain Error otherwise).
 *
 * Limits default to HubSpot's documented ones for a Professional private app and are all
 * configurable so tests can use small windows. Fault injection (`throttle`, `failNext`,
 * `exhaustDaily`) and an in-process API (`create`, `update`, `archive`, `restore`, `seed`) let tests
 * write while a sync runs and stage 429 storms.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { searchObjects, type SearchRequest } from './search.js';
import { WebhookEmitter, type ChangeSource, type SimulatorWebhooks, type WebhookOptions } from './webhook-emitter.js';
import {
  DEFAULT_PROPERTIES,
  ObjectTable,
  checkValue,
  modificationProperty,
  type PropertyDefinition,
  type StoredObject,
} from './store.js';

export interface SimulatorLimits {
  /** Requests per rolling window (default 190, Professional/Enterprise private apps). */
  burst: number;
  /** The rolling window, ms (default 10,000). */
  burstWindowMs: number;
  /** Requests per day (default 650,000, Professional). */
  daily: number;
  /** Search requests per second (default 5). */
  searchPerSecond: number;
  /** Results a search can page through (default 10,000). */
  searchMaxResults: number;
  /** Largest search page (default 200). */
  searchPageSize: number;
  /** Largest list page (default 100). */
  listPageSize: number;
  /** Inputs per batch request (default 100). */
  batchSize: number;
  /**
   * Associated objects per "from" object in one associations v4 batch read (default 500): more
   * come back with that result's `paging.next.after`, to send again alongside the id.
   */
  associationsPageSize: number;
}

export const HUBSPOT_LIMITS: Readonly<SimulatorLimits> = Object.freeze({
  burst: 190,
  burstWindowMs: 10_000,
  daily: 650_000,
  searchPerSecond: 5,
  searchMaxResults: 10_000,
  searchPageSize: 200,
  listPageSize: 100,
  batchSize: 100,
  associationsPageSize: 500,
});

export interface SimulatorOptions {
  limits?: Partial<SimulatorLimits>;
  /** How long a write takes to reach the search index, ms (default 1,000). */
  searchLagMs?: number;
  /** Delay added before every answer, ms (default 0): makes syncs slow enough to kill mid-way. */
  latencyMs?: number;
  /** Object types served (default contacts, companies, deals). */
  objectTypes?: string[];
  /**
   * A webhook subscription (default none): every change the simulator applies — API writes
   * (batch create, update, upsert, archive, merge) and control operations (`create`,
   * `update`, `archive`, `restore`, `merge`, `associate`) — is sent to `targetUrl` as
   * HubSpot's events, in signed batches, retried as HubSpot retries (see webhook-emitter.ts).
   */
  webhooks?: WebhookOptions;
}

export interface ServedRequest {
  method: string;
  path: string;
  status: number;
  /** When the request arrived (epoch ms). */
  at: number;
  search: boolean;
}

export interface SimulatorStats {
  requests: number;
  byStatus: Record<number, number>;
  /** Most requests accepted (not answered 429) in any rolling burst window, search included. */
  maxInWindow: number;
  /** Arrival time of every accepted request, for budget-efficiency figures. */
  acceptedAt: number[];
}

export interface HubspotSimulator {
  readonly url: string;
  /** The private-app access token the server accepts. */
  readonly token: string;
  readonly limits: Readonly<SimulatorLimits>;
  readonly stats: SimulatorStats;
  /** The webhook subscription's emitted events and delivery stats; undefined without `options.webhooks`. */
  readonly webhooks: SimulatorWebhooks | undefined;
  /**
   * Creates a live object now (bypassing HTTP and limits); `at` overrides its timestamps,
   * `indexDelayMs` the random delay before search sees it.
   */
  create(objectType: string, properties: Record<string, string | null>, at?: number, indexDelayMs?: number): StoredObject;
  /** Changes properties and bumps the modification date (to `at`, default now). */
  update(objectType: string, id: number, properties: Record<string, string | null>, at?: number, indexDelayMs?: number): StoredObject;
  /**
   * Archives (soft-deletes) an object. Like HubSpot, this does not bump the modification date;
   * `indexDelayMs` overrides the random delay before search stops returning it.
   */
  archive(objectType: string, id: number, at?: number, indexDelayMs?: number): void;
  /**
   * Restores an archived object, as HubSpot's recycle bin does (up to 90 days after the
   * archive; HubSpot's API has no restore endpoint, so this is a control operation of the
   * simulator). Live again with its properties (list, read by id, and search once indexed),
   * `archived: false` and no `archivedAt`; the modification date moves to the restore (`at`,
   * default now), so incremental readers see it as a change. Refused, as in HubSpot, when a
   * live object now holds one of its unique values (a contact's email).
   */
  restore(objectType: string, id: number, at?: number, indexDelayMs?: number): StoredObject;
  /**
   * Merges `idToMerge` into `primaryId` as HubSpot does (see `POST …/merge`): a new record
   * with a new id, both old ids gone (aliases, not archives), listed in its
   * `hs_merged_object_ids`. Returns the new record.
   */
  merge(objectType: string, primaryId: number, idToMerge: number, at?: number): StoredObject;
  associate(fromType: string, fromId: number, toType: string, toId: number): void;
  /**
   * Adds (or replaces) a property definition of an object type, as HubSpot's
   * `POST /crm/v3/properties/{objectType}` does: the properties API lists it from then on and
   * objects may carry values for it.
   */
  defineProperty(objectType: string, definition: PropertyDefinition): void;
  /** Every object of a type (archived included), in id order. */
  objects(objectType: string): StoredObject[];
  /** The next `count` authenticated requests are answered 429 with `policyName`. */
  throttle(count: number, policyName?: 'TEN_SECONDLY_ROLLING' | 'SECONDLY'): void;
  /** The next `count` authenticated requests are answered with `status` (5xx). */
  failNext(count: number, status?: number): void;
  /**
   * The next `count` associations v4 batch reads answer their first input with a per-input
   * error of `category` (a 207, the other inputs answered as usual) instead of its result.
   * HubSpot documents the per-input error shape (`StandardError`: status, category,
   * message, context) and `RATE_LIMITS` as the category of rate-limit errors; only
   * `OBJECT_NOT_FOUND` means the object has no associations.
   */
  failAssociationInputs(count: number, category?: string): void;
  /** Uses up the daily quota: every further request gets 429 DAILY until `resetDaily`. */
  exhaustDaily(): void;
  resetDaily(): void;
  /** Sets how many requests the daily quota still allows. */
  setDailyRemaining(remaining: number): void;
  onServed(listener: (request: ServedRequest) => void): () => void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(String(body.message));
  }
}

function validationError(message: string, extra: Record<string, unknown> = {}): HttpError {
  return new HttpError(400, { status: 'error', message, correlationId: randomUUID(), category: 'VALIDATION_ERROR', ...extra });
}

function notFound(message: string): HttpError {
  return new HttpError(404, { status: 'error', message, correlationId: randomUUID(), category: 'OBJECT_NOT_FOUND' });
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(validationError('Request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw validationError(`Invalid input JSON: ${what} must be an object`);
  return value as Record<string, unknown>;
}

function stringProperties(value: unknown): Record<string, string | null> {
  const input = value === undefined ? {} : asRecord(value, 'properties');
  const out: Record<string, string | null> = {};
  for (const [name, v] of Object.entries(input)) out[name] = v === null ? null : String(v);
  return out;
}

/** Starts a simulator on 127.0.0.1 at an ephemeral port. */
export async function startHubspotSimulator(options: SimulatorOptions = {}): Promise<HubspotSimulator> {
  const limits: SimulatorLimits = { ...HUBSPOT_LIMITS, ...options.limits };
  const searchLagMs = options.searchLagMs ?? 1_000;
  const latencyMs = options.latencyMs ?? 0;
  const token = `pat-na1-${randomBytes(12).toString('hex')}`;
  const tables = new Map<string, ObjectTable>();
  for (const type of options.objectTypes ?? ['contacts', 'companies', 'deals']) {
    const definitions = DEFAULT_PROPERTIES[type] ?? DEFAULT_PROPERTIES.companies!.map((d) => ({ ...d }));
    tables.set(type, new ObjectTable(type, new Map(definitions.map((d) => [d.name, d]))));
  }
  /** `from|to` -> from id -> set of to ids (both directions are stored). */
  const associations = new Map<string, Map<number, Set<number>>>();
  let nextId = 1000;
  const webhooks = options.webhooks ? new WebhookEmitter(options.webhooks) : undefined;
  /** Properties a client may write: only these are sent for `*.propertyChange` subscriptions without a propertyName. */
  const writableIn = (t: ObjectTable) => (name: string): boolean => t.definitions.get(name)?.readOnly !== true;

  const stats: SimulatorStats = { requests: 0, byStatus: {}, maxInWindow: 0, acceptedAt: [] };
  const listeners = new Set<(request: ServedRequest) => void>();
  /** Accepted request times in the burst window (a queue, oldest first). */
  const window: number[] = [];
  let windowHead = 0;
  const searchWindow: number[] = [];
  let dailyUsed = 0;
  let throttled = 0;
  let throttlePolicy: 'TEN_SECONDLY_ROLLING' | 'SECONDLY' = 'TEN_SECONDLY_ROLLING';
  let failing = 0;
  let failStatus = 502;
  let failingAssociationReads = 0;
  let associationErrorCategory = 'RATE_LIMITS';

  function table(objectType: string): ObjectTable {
    const t = tables.get(objectType);
    if (!t) throw notFound(`Unable to infer object type from: ${objectType}`);
    return t;
  }

  /** Timestamps are whole milliseconds of the wall clock: writes in one millisecond tie, as on HubSpot. */
  function stamp(at?: number): number {
    return at ?? Date.now();
  }

  function touch(t: ObjectTable, row: StoredObject, at: number, indexDelayMs?: number): void {
    row.updatedAt = at;
    row.properties[modificationProperty(t.objectType)] = iso(at);
    t.reindex(row, Date.now(), searchLagMs, indexDelayMs);
  }

  /** `source` null: no webhook event (a merge's new record is announced by the merge event). */
  function createRow(t: ObjectTable, properties: Record<string, string | null>, at?: number, indexDelayMs?: number, source: ChangeSource | null = 'API'): StoredObject {
    const when = stamp(at);
    const id = nextId++;
    const row: StoredObject = { id, properties: {}, createdAt: when, updatedAt: when, archived: false };
    t.assign(row, { ...properties, hs_object_id: String(id), createdate: iso(when) });
    t.rows.set(id, row);
    touch(t, row, when, indexDelayMs);
    if (source) webhooks?.onCreate(t.objectType, id, properties, when, source, writableIn(t));
    return row;
  }

  function updateRow(t: ObjectTable, row: StoredObject, properties: Record<string, string | null>, at?: number, indexDelayMs?: number, source: ChangeSource = 'API'): StoredObject {
    // HubSpot sends a property change only for a value that moved ('' and null both mean no value).
    const valueOf = (value: string | null | undefined): string | null => (value === undefined || value === '' ? null : value);
    const changes = webhooks ? Object.fromEntries(Object.entries(properties).filter(([name, value]) => valueOf(row.properties[name]) !== valueOf(value))) : {};
    t.assign(row, properties);
    const when = stamp(at);
    touch(t, row, when, indexDelayMs);
    webhooks?.onPropertyChanges(t.objectType, row.id, changes, when, source, writableIn(t));
    return row;
  }

  function archiveRow(t: ObjectTable, row: StoredObject, at?: number, indexDelayMs?: number, source: ChangeSource = 'API'): void {
    if (row.archived) return;
    row.archived = true;
    row.archivedAt = at ?? Date.now();
    // Archiving does not bump the modification date, but it leaves the search index (which
    // lags it as it lags every write).
    t.reindex(row, Date.now(), searchLagMs, indexDelayMs);
    webhooks?.onDelete(t.objectType, row.id, row.archivedAt, source);
  }

  /**
   * A restore from the recycle bin. Sources: the knowledge base's "Restore deleted records"
   * (records can be restored up to 90 days after deletion, from the UI; a contact whose email
   * an active contact now holds cannot be restored), the API reference of archive ("Deleted
   * contacts can be restored within 90 days of deletion"; no restore endpoint exists), the
   * developer changelog "New subscription types for webhooks" (`*.restore`: "when an object is
   * restored (opposite of delete)"), and HubSpot's answer on integrate.hubspot.com "Restoring
   * recently deleted contacts" (after a restore "the modification date is set"): `updatedAt`
   * and the modification property move to the restore, and the object re-enters the search
   * index (with its lag, like any write).
   */
  function restoreRow(t: ObjectTable, row: StoredObject, at?: number, indexDelayMs?: number, source: ChangeSource = 'CRM_UI'): StoredObject {
    if (!row.archived) throw new Error(`${t.objectType} ${row.id} is not archived`);
    const unique = [...t.definitions.values()].filter((d) => d.hasUniqueValue && d.name !== 'hs_object_id');
    for (const d of unique) {
      const value = row.properties[d.name];
      const holder = value === undefined || value === null || value === '' ? undefined : t.findBy(d.name, value);
      if (holder && holder.id !== row.id) throw new Error(`cannot restore ${t.objectType} ${row.id}: ${t.objectType} ${holder.id} holds its ${d.name}`);
    }
    row.archived = false;
    delete row.archivedAt;
    // Claim its unique values again (another row may have taken and released them meanwhile).
    t.assign(row, Object.fromEntries(unique.map((d) => [d.name, row.properties[d.name] ?? null])));
    const when = stamp(at);
    touch(t, row, when, indexDelayMs);
    webhooks?.onRestore(t.objectType, row.id, when, source);
    return row;
  }

  /**
   * A merge as HubSpot documents it (developer changelog "Updated merge functionality for
   * contacts and companies": contacts and companies now merge as the other object types do):
   * a NEW record with a new id takes both records' values, the primary's winning; its
   * `hs_merged_object_ids` lists both old ids (and any merged into them before); both old ids
   * leave the CRM — list, archived list and (once the index catches up) search — without
   * being archived, and stay aliases: a read by id returns the new record. Associations of
   * either move to the new record.
   */
  function mergeRows(t: ObjectTable, primary: StoredObject, secondary: StoredObject, at?: number, source: ChangeSource = 'API'): StoredObject {
    const olds = [primary, secondary];
    const mergedIds = new Set<string>();
    for (const old of olds) {
      for (const id of (old.properties.hs_merged_object_ids ?? '').split(';')) if (id) mergedIds.add(id);
      mergedIds.add(String(old.id));
    }
    const system = new Set(['hs_object_id', 'createdate', 'hs_merged_object_ids', modificationProperty(t.objectType)]);
    const values: Record<string, string | null> = {};
    for (const old of [secondary, primary]) {
      for (const [name, value] of Object.entries(old.properties)) if (!system.has(name) && value !== null && value !== '') values[name] = value;
    }
    // The values the new record takes from the merged-away record (the primary has none of its own there).
    const moved = Object.keys(values).filter((name) => values[name] !== primary.properties[name]).length;
    for (const old of olds) {
      t.rows.delete(old.id);
      // Release its unique values (email, domain) for the new record, and leave the index.
      const unique = [...t.definitions.values()].filter((d) => d.hasUniqueValue && d.name !== 'hs_object_id');
      t.assign(old, Object.fromEntries(unique.map((d) => [d.name, null])));
      t.reindex({ ...old, archived: true }, Date.now(), searchLagMs);
    }
    const row = createRow(t, { ...values, hs_merged_object_ids: [...mergedIds].join(';') }, at, undefined, null);
    webhooks?.onMerge(t.objectType, primary.id, secondary.id, row.id, moved, row.createdAt, source);
    for (const old of olds) {
      for (const [alias, target] of t.mergedInto) if (target === old.id) t.mergedInto.set(alias, row.id);
      t.mergedInto.set(old.id, row.id);
    }
    for (const [key, map] of associations) {
      const [fromType, toType] = key.split('|');
      for (const old of olds) {
        if (fromType === t.objectType && map.has(old.id)) {
          const target = map.get(row.id) ?? new Set<number>();
          for (const to of map.get(old.id)!) target.add(to);
          map.set(row.id, target);
          map.delete(old.id);
        }
        if (toType === t.objectType) for (const set of map.values()) if (set.delete(old.id)) set.add(row.id);
      }
    }
    return row;
  }

  function handleMerge(objectType: string, body: Record<string, unknown>): Answer {
    const t = table(objectType);
    const primaryId = Number(body.primaryObjectId);
    const otherId = Number(body.objectIdToMerge);
    if (!Number.isInteger(primaryId) || !Number.isInteger(otherId)) throw validationError('primaryObjectId and objectIdToMerge are required');
    if (primaryId === otherId) throw validationError('Cannot merge an object with itself');
    const primary = t.rows.get(primaryId);
    const other = t.rows.get(otherId);
    if (!primary || primary.archived || !other || other.archived) throw notFound(`Object not found. objectId are usually numeric.`);
    return { status: 200, body: publicObject(t, mergeRows(t, primary, other), undefined) };
  }

  function publicObject(t: ObjectTable, row: StoredObject, wanted: readonly string[] | undefined): Record<string, unknown> {
    const names = wanted && wanted.length > 0 ? wanted : ['createdate', modificationProperty(t.objectType), 'hs_object_id'];
    const properties: Record<string, string | null> = {};
    for (const name of names) if (t.definitions.has(name)) properties[name] = row.properties[name] ?? null;
    return {
      id: String(row.id),
      properties,
      createdAt: iso(row.createdAt),
      updatedAt: iso(row.updatedAt),
      archived: row.archived,
      ...(row.archivedAt !== undefined ? { archivedAt: iso(row.archivedAt) } : {}),
    };
  }

  function problemsOf(t: ObjectTable, properties: Record<string, string | null>): string | undefined {
    for (const [name, value] of Object.entries(properties)) {
      const problem = checkValue(t.definitions.get(name), name, value);
      if (problem) return problem.message;
    }
    return undefined;
  }

  function assoc(fromType: string, toType: string): Map<number, Set<number>> {
    const key = `${fromType}|${toType}`;
    let map = associations.get(key);
    if (!map) associations.set(key, (map = new Map()));
    return map;
  }

  // ---- rate limits -------------------------------------------------------------------------

  function windowCount(now: number): number {
    while (windowHead < window.length && window[windowHead]! <= now - limits.burstWindowMs) windowHead++;
    if (windowHead > 4096) {
      window.splice(0, windowHead);
      windowHead = 0;
    }
    return window.length - windowHead;
  }

  function rateHeaders(now: number): Record<string, string> {
    return {
      'x-hubspot-ratelimit-daily': String(limits.daily),
      'x-hubspot-ratelimit-daily-remaining': String(Math.max(0, limits.daily - dailyUsed)),
      'x-hubspot-ratelimit-interval-milliseconds': String(limits.burstWindowMs),
      'x-hubspot-ratelimit-max': String(limits.burst),
      'x-hubspot-ratelimit-remaining': String(Math.max(0, limits.burst - windowCount(now))),
    };
  }

  function tooMany(policyName: string, message: string, headers: Record<string, string>): HttpError {
    return new HttpError(429, { status: 'error', message, errorType: 'RATE_LIMIT', correlationId: randomUUID(), policyName, groupName: 'api-calls' }, headers);
  }

  /** Counts the request against every limit it is subject to, or throws the 429. */
  function admit(now: number, search: boolean): Record<string, string> {
    if (dailyUsed >= limits.daily) {
      throw tooMany('DAILY', 'You have reached your daily limit.', rateHeaders(now));
    }
    if (throttled > 0) {
      throttled--;
      throw throttlePolicy === 'SECONDLY'
        ? tooMany('SECONDLY', 'You have reached your secondly limit.', {})
        : tooMany('TEN_SECONDLY_ROLLING', 'You have reached your ten_secondly_rolling limit.', rateHeaders(now));
    }
    if (windowCount(now) >= limits.burst) {
      throw tooMany('TEN_SECONDLY_ROLLING', 'You have reached your ten_secondly_rolling limit.', rateHeaders(now));
    }
    if (search) {
      while (searchWindow.length > 0 && searchWindow[0]! <= now - 1000) searchWindow.shift();
      if (searchWindow.length >= limits.searchPerSecond) throw tooMany('SECONDLY', 'You have reached your secondly limit.', {});
      searchWindow.push(now);
    }
    window.push(now);
    dailyUsed++;
    stats.acceptedAt.push(now);
    stats.maxInWindow = Math.max(stats.maxInWindow, windowCount(now));
    // Search answers carry no rate-limit headers (HubSpot documents them as not included).
    return search ? {} : rateHeaders(now);
  }

  // ---- handlers ----------------------------------------------------------------------------

  type Answer = { status: number; body?: unknown };

  function parseJson(text: string): Record<string, unknown> {
    try {
      return asRecord(JSON.parse(text), 'the body');
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw validationError('Invalid input JSON on line 1');
    }
  }

  function inputsOf(body: Record<string, unknown>): Record<string, unknown>[] {
    const inputs = body.inputs;
    if (!Array.isArray(inputs)) throw validationError('Invalid input JSON: "inputs" is required');
    if (inputs.length > limits.batchSize) throw validationError(`Batch input too large: ${inputs.length} inputs, the limit is ${limits.batchSize}`);
    return inputs.map((input, i) => asRecord(input, `inputs[${i}]`));
  }

  function batchAnswer(results: unknown[], errors: Array<Record<string, unknown>>, okStatus: number, startedAt: string): Answer {
    const body: Record<string, unknown> = { status: 'COMPLETE', results, startedAt, completedAt: iso(Date.now()) };
    if (errors.length === 0) return { status: okStatus, body };
    return { status: 207, body: { ...body, numErrors: errors.length, errors } };
  }

  function batchError(category: string, message: string, context: Record<string, string[]>, subCategory?: string): Record<string, unknown> {
    return { status: 'error', category, ...(subCategory ? { subCategory } : {}), message, context, links: {}, errors: [] };
  }

  function handleBatch(objectType: string, action: string, body: Record<string, unknown>): Answer {
    const t = table(objectType);
    const startedAt = iso(Date.now());
    const inputs = inputsOf(body);
    const results: unknown[] = [];
    const errors: Array<Record<string, unknown>> = [];
    if (action === 'read') {
      const idProperty = typeof body.idProperty === 'string' ? body.idProperty : 'hs_object_id';
      const wanted = Array.isArray(body.properties) ? body.properties.map(String) : undefined;
      const missing: string[] = [];
      for (const input of inputs) {
        const id = String(input.id ?? '');
        const row = t.findBy(idProperty, id);
        if (row) results.push(publicObject(t, row, wanted));
        else missing.push(id);
      }
      if (missing.length > 0) errors.push(batchError('OBJECT_NOT_FOUND', `Could not get some ${objectType} objects, they may be deleted or not exist.`, { ids: missing }));
      return batchAnswer(results, errors, 200, startedAt);
    }
    if (action === 'archive') {
      for (const input of inputs) {
        const row = t.rows.get(Number(input.id));
        if (row) archiveRow(t, row);
      }
      return { status: 204 };
    }
    if (action === 'create') {
      for (const input of inputs) {
        const properties = stringProperties(input.properties);
        const problem = problemsOf(t, properties);
        if (problem) {
          errors.push(batchError('VALIDATION_ERROR', problem, {}));
          continue;
        }
        const unique = [...t.definitions.values()].find((d) => d.hasUniqueValue && properties[d.name] && t.findBy(d.name, properties[d.name]!));
        if (unique) {
          errors.push(batchError('CONFLICT', `${objectType} already exists with ${unique.name} ${properties[unique.name]}`, { [unique.name]: [properties[unique.name]!] }));
          continue;
        }
        results.push(publicObject(t, createRow(t, properties), Object.keys(properties)));
      }
      return batchAnswer(results, errors, 201, startedAt);
    }
    if (action === 'update') {
      for (const input of inputs) {
        const properties = stringProperties(input.properties);
        const idProperty = typeof input.idProperty === 'string' ? input.idProperty : 'hs_object_id';
        const row = t.findBy(idProperty, String(input.id ?? ''));
        const problem = problemsOf(t, properties);
        if (!row) errors.push(batchError('OBJECT_NOT_FOUND', `Object not found. objectId are usually numeric.`, { ids: [String(input.id)] }));
        else if (problem) errors.push(batchError('VALIDATION_ERROR', problem, { ids: [String(input.id)] }));
        else results.push(publicObject(t, updateRow(t, row, properties), Object.keys(properties)));
      }
      return batchAnswer(results, errors, 200, startedAt);
    }
    if (action === 'upsert') {
      for (const input of inputs) {
        const properties = stringProperties(input.properties);
        const idProperty = typeof input.idProperty === 'string' ? input.idProperty : 'hs_object_id';
        const key = String(input.id ?? '');
        const definition = t.definitions.get(idProperty);
        if (!definition || (!definition.hasUniqueValue && idProperty !== 'hs_object_id')) {
          errors.push(batchError('VALIDATION_ERROR', `Property "${idProperty}" is not a unique identifier property`, { [idProperty]: [key] }));
          continue;
        }
        // As for create: an error about a property value says which property, not which input
        // (a 207's errors are not promised to name their inputs); a bad key names the key.
        const problem = problemsOf(t, properties);
        if (problem) {
          errors.push(batchError('VALIDATION_ERROR', problem, {}));
          continue;
        }
        const keyProblem = idProperty === 'hs_object_id' ? undefined : checkValue({ ...definition, readOnly: false }, idProperty, key)?.message;
        if (keyProblem) {
          errors.push(batchError('VALIDATION_ERROR', keyProblem, { [idProperty]: [key] }));
          continue;
        }
        const row = t.findBy(idProperty, key);
        if (row) {
          results.push({ ...publicObject(t, updateRow(t, row, properties), [idProperty, ...Object.keys(properties)]), new: false });
        } else if (idProperty === 'hs_object_id') {
          errors.push(batchError('OBJECT_NOT_FOUND', 'Object not found.', { ids: [key] }));
        } else {
          const created = createRow(t, { ...properties, [idProperty]: key });
          results.push({ ...publicObject(t, created, [idProperty, ...Object.keys(properties)]), new: true });
        }
      }
      return batchAnswer(results, errors, 200, startedAt);
    }
    throw notFound(`No route for batch/${action}`);
  }

  function handleList(objectType: string, query: URLSearchParams): Answer {
    const t = table(objectType);
    const limit = Number(query.get('limit') ?? 10);
    if (!Number.isInteger(limit) || limit < 1) throw validationError(`limit must be a positive integer`);
    const pageSize = Math.min(limit, limits.listPageSize);
    const after = query.get('after');
    const archived = query.get('archived') === 'true';
    // The client repeats `properties`; the docs show one comma-separated value: accept both.
    const wanted = query.getAll('properties').flatMap((p) => p.split(',')).filter((p) => p.length > 0);
    const from = after === null || after === '' ? 0 : Number(after);
    if (!Number.isFinite(from)) throw validationError(`after must be a cursor returned by a previous page`);
    const results: unknown[] = [];
    let next: number | undefined;
    // Rows are kept in id order (ids only grow); `after` is the id to start from.
    for (const row of t.rows.values()) {
      if (row.id < from || row.archived !== archived) continue;
      if (results.length === pageSize) {
        next = row.id;
        break;
      }
      results.push(publicObject(t, row, wanted));
    }
    const body: Record<string, unknown> = { results };
    if (next !== undefined) body.paging = { next: { after: String(next), link: `?after=${next}` } };
    return { status: 200, body };
  }

  function handleSearch(objectType: string, body: Record<string, unknown>): Answer {
    const t = table(objectType);
    t.catchUpIndex(Date.now());
    const result = searchObjects(t, body as SearchRequest, limits, validationError);
    return { status: 200, body: { total: result.total, results: result.rows.map((row) => publicObject(t, row, result.properties)), ...(result.next !== undefined ? { paging: { next: { after: String(result.next), link: '' } } } : {}) } };
  }

  function handleProperties(objectType: string): Answer {
    const t = table(objectType);
    const results = [...t.definitions.values()].map((d: PropertyDefinition, i) => ({
      name: d.name,
      label: d.label,
      type: d.type,
      fieldType: d.fieldType,
      description: '',
      groupName: d.groupName,
      options: (d.options ?? []).map((o, order) => ({ ...o, displayOrder: order, hidden: false })),
      displayOrder: i,
      calculated: d.readOnly === true,
      externalOptions: false,
      hasUniqueValue: d.hasUniqueValue === true,
      hidden: false,
      hubspotDefined: true,
      modificationMetadata: { archivable: false, readOnlyDefinition: true, readOnlyValue: d.readOnly === true },
      formField: d.readOnly !== true,
      createdAt: '2020-01-01T00:00:00.000Z',
      updatedAt: '2020-01-01T00:00:00.000Z',
    }));
    return { status: 200, body: { results } };
  }

  function handleAssociationsBatchRead(fromType: string, toType: string, body: Record<string, unknown>): Answer {
    table(fromType);
    table(toType);
    const inputs = inputsOf(body);
    const map = assoc(fromType, toType);
    const results: unknown[] = [];
    const errors: Array<Record<string, unknown>> = [];
    const failFirst = failingAssociationReads > 0 && inputs.length > 0;
    if (failFirst) failingAssociationReads--;
    for (const [i, input] of inputs.entries()) {
      const id = Number(input.id);
      const context = { fromObjectId: [String(input.id)], fromObjectType: [fromType], toObjectType: [toType] };
      if (failFirst && i === 0) {
        errors.push(batchError(associationErrorCategory, `Could not read the ${toType} associated with ${fromType} ${String(input.id)}.`, context));
        continue;
      }
      const to = map.get(id);
      if (!to || to.size === 0) {
        // HubSpot's answer for an object without associations of that type.
        errors.push(batchError('OBJECT_NOT_FOUND', `No ${toType} is associated with ${fromType} ${String(input.id)}.`, context, 'crm.associations.NO_ASSOCIATIONS_FOUND'));
        continue;
      }
      // Each result is paged on its own: `after` (from that result's `paging.next`) is sent
      // back alongside the id for the next page of that object's associations.
      const after = input.after === undefined || input.after === null || input.after === '' ? 0 : Number(input.after);
      if (!Number.isFinite(after)) throw validationError('after must be a cursor returned by a previous page');
      const page = [...to].sort((a, b) => a - b).filter((toId) => toId >= after).slice(0, limits.associationsPageSize + 1);
      const next = page[limits.associationsPageSize];
      results.push({
        from: { id: String(id) },
        to: page.slice(0, limits.associationsPageSize).map((toObjectId) => ({ toObjectId, associationTypes: [{ category: 'HUBSPOT_DEFINED', typeId: 1, label: null }] })),
        ...(next !== undefined ? { paging: { next: { after: String(next), link: '' } } } : {}),
      });
    }
    return batchAnswer(results, errors, 200, iso(Date.now()));
  }

  function handleAssociationsOfObject(fromType: string, id: number, toType: string, query: URLSearchParams): Answer {
    table(fromType);
    table(toType);
    const all = [...(assoc(fromType, toType).get(id) ?? [])].sort((a, b) => a - b);
    const limit = Math.min(Number(query.get('limit') ?? 500), 500);
    const from = Number(query.get('after') ?? 0);
    const page = all.filter((to) => to >= from).slice(0, limit + 1);
    const results = page.slice(0, limit).map((toObjectId) => ({ toObjectId, associationTypes: [{ category: 'HUBSPOT_DEFINED', typeId: 1, label: null }] }));
    const next = page[limit];
    return { status: 200, body: { results, ...(next !== undefined ? { paging: { next: { after: String(next), link: '' } } } : {}) } };
  }

  function route(method: string, path: string, query: URLSearchParams, text: string): Answer {
    let m: RegExpMatchArray | null;
    if (method === 'GET' && (m = path.match(/^\/crm\/v3\/properties\/([^/]+)$/))) return handleProperties(m[1]!);
    if (method === 'GET' && (m = path.match(/^\/crm\/v3\/objects\/([^/]+)$/))) return handleList(m[1]!, query);
    if (method === 'POST' && (m = path.match(/^\/crm\/v3\/objects\/([^/]+)\/search$/))) return handleSearch(m[1]!, parseJson(text));
    if (method === 'POST' && (m = path.match(/^\/crm\/v3\/objects\/([^/]+)\/merge$/))) return handleMerge(m[1]!, parseJson(text));
    if (method === 'POST' && (m = path.match(/^\/crm\/v3\/objects\/([^/]+)\/batch\/(read|create|update|upsert|archive)$/))) {
      return handleBatch(m[1]!, m[2]!, parseJson(text));
    }
    if (method === 'POST' && (m = path.match(/^\/crm\/v4\/associations\/([^/]+)\/([^/]+)\/batch\/read$/))) {
      return handleAssociationsBatchRead(m[1]!, m[2]!, parseJson(text));
    }
    if (method === 'GET' && (m = path.match(/^\/crm\/v4\/objects\/([^/]+)\/(\d+)\/associations\/([^/]+)$/))) {
      return handleAssociationsOfObject(m[1]!, Number(m[2]), m[3]!, query);
    }
    throw notFound(`No route for ${method} ${path}`);
  }

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { ...headers, ...(text ? { 'content-type': 'application/json;charset=utf-8' } : {}), 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    stats.requests++;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const search = method === 'POST' && /\/search$/.test(url.pathname);
    let status = 500;
    let headers: Record<string, string> = {};
    let body: unknown;
    try {
      const text = await readBody(req);
      if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
      if (req.headers.authorization !== `Bearer ${token}`) {
        throw new HttpError(401, {
          status: 'error',
          message: 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview',
          correlationId: randomUUID(),
          category: 'INVALID_AUTHENTICATION',
        });
      }
      headers = admit(at, search);
      if (failing > 0) {
        failing--;
        throw new HttpError(failStatus, { status: 'error', message: 'internal error', correlationId: randomUUID(), category: 'INTERNAL_ERROR' }, headers);
      }
      const answer = route(method, url.pathname, url.searchParams, text);
      status = answer.status;
      body = answer.body;
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        body = error.body;
        headers = { ...headers, ...error.headers };
      } else {
        status = 500;
        body = { status: 'error', message: String(error), correlationId: randomUUID(), category: 'INTERNAL_ERROR' };
      }
    }
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    send(res, status, body, headers);
    for (const listener of [...listeners]) listener({ method, path: url.pathname, status, at, search });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { status: 'error', message: String(error), category: 'INTERNAL_ERROR' }, {});
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    limits,
    stats,
    webhooks,
    // Control operations stand for changes made in HubSpot's UI: their events say `CRM_UI`.
    create: (objectType, properties, at, indexDelayMs) => createRow(table(objectType), properties, at, indexDelayMs, 'CRM_UI'),
    update(objectType, id, properties, at, indexDelayMs) {
      const t = table(objectType);
      const row = t.rows.get(id);
      if (!row) throw new Error(`no ${objectType} ${id}`);
      return updateRow(t, row, properties, at, indexDelayMs, 'CRM_UI');
    },
    archive(objectType, id, at, indexDelayMs) {
      const t = table(objectType);
      const row = t.rows.get(id);
      if (!row) throw new Error(`no ${objectType} ${id}`);
      archiveRow(t, row, at, indexDelayMs, 'CRM_UI');
    },
    restore(objectType, id, at, indexDelayMs) {
      const t = table(objectType);
      const row = t.rows.get(id);
      if (!row) throw new Error(`no ${objectType} ${id} to restore (merged away, or never created)`);
      return restoreRow(t, row, at, indexDelayMs, 'CRM_UI');
    },
    merge(objectType, primaryId, idToMerge, at) {
      const t = table(objectType);
      const primary = t.rows.get(primaryId);
      const other = t.rows.get(idToMerge);
      if (!primary || !other || primary === other) throw new Error(`cannot merge ${objectType} ${idToMerge} into ${primaryId}`);
      return mergeRows(t, primary, other, at, 'CRM_UI');
    },
    associate(fromType, fromId, toType, toId) {
      const forward = assoc(fromType, toType);
      if (!forward.has(fromId)) forward.set(fromId, new Set());
      if (!forward.get(fromId)!.has(toId)) webhooks?.onAssociation(fromType, fromId, toType, toId, false, Date.now(), 'CRM_UI');
      forward.get(fromId)!.add(toId);
      const backward = assoc(toType, fromType);
      if (!backward.has(toId)) backward.set(toId, new Set());
      backward.get(toId)!.add(fromId);
    },
    defineProperty(objectType, definition) {
      table(objectType).definitions.set(definition.name, { ...definition });
    },
    objects: (objectType) => [...table(objectType).rows.values()],
    throttle(count, policyName = 'TEN_SECONDLY_ROLLING') {
      throttled = count;
      throttlePolicy = policyName;
    },
    failNext(count, status = 502) {
      failing = count;
      failStatus = status;
    },
    failAssociationInputs(count, category = 'RATE_LIMITS') {
      failingAssociationReads = count;
      associationErrorCategory = category;
    },
    exhaustDaily() {
      dailyUsed = limits.daily;
    },
    resetDaily() {
      dailyUsed = 0;
    },
    setDailyRemaining(remaining) {
      dailyUsed = Math.max(0, limits.daily - remaining);
    },
    onServed(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      webhooks?.close();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
