/**
 * Reverse ETL into HubSpot: upsert CRM objects by a unique property (email for contacts,
 * domain for companies), at most 100 per request, one result per record.
 *
 * Each `write` reads the targets first (`batch/read` by the id property), then upserts only
 * the records whose values differ (`batch/upsert`). That is what makes it idempotent — the
 * same batch again reads equal values and answers `unchanged` without writing — and what a
 * dry run reports (creates, updates, unchanged) without the upsert. A 207 answer is split
 * per record: successes are matched by their id property, the rest fail with HubSpot's
 * error message for them.
 *
 * Rate limits, retries and the circuit breaker on repeated 5xx are the runtime's: `write`
 * makes one attempt of each request (see `singleAttempt`) and the declared budget counts the
 * two requests a write can make.
 */
import {
  TributaryError,
  defineWriter,
  singleAttempt,
  type WritableField,
  type WritableObject,
  type WriteRequest,
  type WriteResult,
} from '@tributary/core';
import { hubspotApi, type ApiProperty, type BatchError, type HubspotApi } from '../api/client.js';
import { scaledLimit } from '../source/index.js';
import { propertySchema } from '../source/schema.js';
import { writerSpec } from '../spec.js';

export const MAX_BATCH = 100;
export const WRITER_RATE_LIMIT = { requests: 19, perMs: 2_040, concurrency: 2 } as const;
const WRITER_OBJECTS = ['contacts', 'companies', 'deals'];
/** Records per page of the list endpoint (HubSpot's maximum). */
const LIST_PAGE_SIZE = 100;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;


function isReadOnly(p: ApiProperty): boolean {
  return p.calculated === true || p.modificationMetadata?.readOnlyValue === true;
}

/**
 * HubSpot takes every property value as a string; null clears a value. A number is its
 * shortest decimal (what JSON writes for it), a bigint (an in-process source's integer
 * beyond ±2^53) its digits: `JSON.stringify` throws on a bigint.
 */
function wireValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

/** Why HubSpot would refuse this value, checked locally so that a dry run reports it too. */
function problemOf(properties: ReadonlyMap<string, ApiProperty>, name: string, value: string): string | undefined {
  const p = properties.get(name);
  if (!p) return `Property "${name}" does not exist`;
  if (isReadOnly(p)) return `"${name}" is a read only property; its value cannot be set.`;
  if (value === '') return undefined;
  if (name === 'email' && !EMAIL.test(value)) return `Property values were not valid: INVALID_EMAIL "${value}"`;
  if (p.type === 'number' && !Number.isFinite(Number(value))) return `Property values were not valid: ${value} is not a valid number for "${name}"`;
  if (p.type === 'bool' && value !== 'true' && value !== 'false') return `Property values were not valid: ${value} is not a valid boolean for "${name}"`;
  return undefined;
}

/**
 * A property's value as the "already applied?" comparison sees it (`sameValue`): HubSpot's
 * text of it (null and '' both clear it), emails without regard to case. Also a dry run's
 * `comparedValues`, so that the runtime judges a contact's later records as this does.
 */
function comparedText(name: string, value: string | null | undefined): string {
  const text = value ?? '';
  return name === 'email' ? text.toLowerCase() : text;
}

/** Values as HubSpot stores them, for the "already applied?" comparison. */
function sameValue(name: string, stored: string | null | undefined, wanted: string): boolean {
  return comparedText(name, stored) === comparedText(name, wanted);
}

/** What a record leaves in the contact (its wire values), as `sameValue` compares it. */
function comparedValuesOf(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, comparedText(name, value)]));
}

const RETRYABLE_CATEGORIES = new Set(['RATE_LIMIT', 'INTERNAL_ERROR']);

/** How HubSpot matches a key of `idProperty`: emails without regard to case. */
function keyIdentity(idProperty: string, key: string): string {
  return idProperty === 'email' ? key.toLowerCase() : key;
}

function names(error: BatchError, identity: string, idProperty: string): boolean {
  return Object.values(error.context ?? {}).some((values) => values.some((v) => keyIdentity(idProperty, v) === identity));
}

type Failure = { reason: string; retryable: boolean };

function failureOf(error: BatchError): Failure {
  return { reason: `${error.category}: ${error.message}`, retryable: RETRYABLE_CATEGORIES.has(error.category) };
}

/**
 * Why HubSpot refused each record its 207 answer has no result for. An error naming the
 * record (in its `context`) is its own. HubSpot does not promise that an error names its
 * input (an error about a property value names the property), so each error naming no
 * record of the request goes, at most once, to a record whose local check (`problemOf`) says
 * the same; then a single error left goes to a single record left. A record still without
 * one gets an "unknown" reason — never another record's error.
 */
function attributeErrors<P extends { record: { key: string }; problem?: string }>(
  missing: readonly P[],
  sent: readonly P[],
  idProperty: string,
  errors: readonly BatchError[],
): Map<P, Failure> {
  const out = new Map<P, Failure>();
  const sentIdentities = sent.map((p) => keyIdentity(idProperty, p.record.key));
  const pool = errors.filter((e) => !sentIdentities.some((k) => names(e, k, idProperty)));
  const left: P[] = [];
  for (const pending of missing) {
    const own = errors.find((e) => names(e, keyIdentity(idProperty, pending.record.key), idProperty));
    if (own) out.set(pending, failureOf(own));
    else left.push(pending);
  }
  for (const pending of [...left]) {
    const problem = pending.problem;
    const at = problem === undefined ? -1 : pool.findIndex((e) => e.message === problem || e.message.includes(problem));
    if (at < 0) continue;
    out.set(pending, failureOf(pool.splice(at, 1)[0]!));
    left.splice(left.indexOf(pending), 1);
  }
  if (left.length === 1 && pool.length === 1) {
    out.set(left[0]!, failureOf(pool[0]!));
    return out;
  }
  const listed = pool.slice(0, 3).map((e) => `${e.category}: ${e.message}`).join('; ');
  for (const pending of left) {
    out.set(
      pending,
      pool.length === 0
        ? { reason: 'HubSpot returned no result for this record', retryable: true }
        : {
            reason: `unknown: HubSpot returned no result for this record, and none of its errors names it; the ${pool.length} error(s) naming no record: ${listed}${pool.length > 3 ? '; …' : ''}`,
            retryable: pool.some((e) => RETRYABLE_CATEGORIES.has(e.category)),
          },
    );
  }
  return out;
}

function writableObject(name: string, properties: readonly ApiProperty[]): WritableObject {
  const fields: WritableField[] = properties.map((p) => ({
    name: p.name,
    schema: propertySchema(p),
    ...(isReadOnly(p) ? { writable: false } : {}),
    ...(p.hasUniqueValue ? { unique: true } : {}),
  }));
  return {
    name,
    fields,
    idProperties: properties.filter((p) => p.hasUniqueValue === true && p.name !== 'hs_object_id' && !isReadOnly(p)).map((p) => p.name),
    modes: ['upsert'],
  };
}

async function writeBatch(api: HubspotApi, properties: ReadonlyMap<string, ApiProperty>, request: WriteRequest): Promise<WriteResult[]> {
  const { object, idProperty } = request;
  const results: WriteResult[] = [];
  /** `problem`: what the local copy of HubSpot's rules finds wrong (to attribute HubSpot's errors). */
  type Pending = { record: WriteRequest['records'][number]; values: Record<string, string>; problem?: string };
  const valid: Pending[] = [];
  for (const record of request.records) {
    const values: Record<string, string> = {};
    let problem: string | undefined;
    for (const [name, value] of Object.entries(record.fields)) {
      if (name === idProperty) continue;
      const text = wireValue(value);
      problem ??= problemOf(properties, name, text);
      values[name] = text;
    }
    problem ??= problemOf(new Map([[idProperty, { ...properties.get(idProperty)!, calculated: false, modificationMetadata: {} }]]), idProperty, record.key);
    // A dry run answers locally what HubSpot would refuse; a real run lets HubSpot decide
    // (and reports its 207 errors), so the two agree without trusting this copy of its rules.
    if (problem && request.dryRun) results.push({ idempotencyKey: record.idempotencyKey, key: record.key, status: 'failed', reason: `VALIDATION_ERROR: ${problem}`, retryable: false });
    else valid.push({ record, values, ...(problem ? { problem } : {}) });
  }
  if (valid.length === 0) return results;

  const names = [...new Set(valid.flatMap((p) => Object.keys(p.values)).filter((n) => properties.has(n)))];
  const current = await api.batchRead(object, idProperty, valid.map((p) => p.record.key), [idProperty, ...names]);
  const existing = new Map<string, (typeof current.results)[number]>();
  for (const o of current.results) {
    const key = o.properties[idProperty];
    if (key) existing.set(keyIdentity(idProperty, key), o);
  }
  const lookup = (key: string) => existing.get(keyIdentity(idProperty, key));

  const toSend: Pending[] = [];
  for (const pending of valid) {
    const found = lookup(pending.record.key);
    const base = { idempotencyKey: pending.record.idempotencyKey, key: pending.record.key, ...(request.dryRun ? { comparedValues: comparedValuesOf(pending.values) } : {}) };
    if (found && Object.entries(pending.values).every(([name, value]) => sameValue(name, found.properties[name], value))) {
      results.push({ ...base, status: 'unchanged', id: found.id });
    } else if (request.dryRun) {
      results.push({ ...base, status: found ? 'updated' : 'created', ...(found ? { id: found.id } : {}) });
    } else {
      toSend.push(pending);
    }
  }
  if (toSend.length === 0) return results;

  const answer = await api.batchUpsert(
    object,
    idProperty,
    toSend.map((p) => ({ id: p.record.key, properties: p.values })),
  );
  // Results are matched to records by the key's identity as HubSpot matches it (email
  // without regard to case, every other unique property exactly): folding the case of, say,
  // `domain` made `Acme.example` and `acme.example` — two companies — one key, so a refused
  // record took the other's success and id.
  const written = new Map<string, (typeof answer.results)[number]>();
  for (const o of answer.results) {
    const key = o.properties[idProperty];
    if (key) written.set(keyIdentity(idProperty, key), o);
  }
  const failures = attributeErrors(
    toSend.filter((p) => !written.has(keyIdentity(idProperty, p.record.key))),
    toSend,
    idProperty,
    answer.errors,
  );
  for (const pending of toSend) {
    const base = { idempotencyKey: pending.record.idempotencyKey, key: pending.record.key };
    const done = written.get(keyIdentity(idProperty, pending.record.key));
    if (done) results.push({ ...base, status: done.new ? 'created' : 'updated', id: done.id });
    else results.push({ ...base, status: 'failed', ...failures.get(pending)! });
  }
  return results;
}

export const hubspotWriter = defineWriter({
  name: 'hubspot',
  version: '0.1.0',
  spec: { connectionSpecification: writerSpec, documentationUrl: 'https://developers.hubspot.com/docs/api/crm/contacts' },
  // 190 requests per rolling 10 s, paced as the source's (see HUBSPOT_RATE_LIMIT), and a
  // write makes up to two: 19 writes per 2.04 s, at most 95 writes (190 requests) in any
  // 10 s. Two in flight keep the pipe full while one waits for HubSpot.
  rateLimit: WRITER_RATE_LIMIT,
  retry: { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 15_000 },
  maxBatchSize: MAX_BATCH,
  // HubSpot matches emails without regard to case: records for `A@x.com` and `a@x.com` are
  // one contact, kept in input order by the runtime.
  keyIdentity: (_object, idProperty, key) => keyIdentity(idProperty, key),

  async check(ctx, config) {
    const api = hubspotApi(ctx, config);
    try {
      await api.properties('contacts');
    } catch (error) {
      if (TributaryError.is(error, 'auth')) throw error;
      const reason = TributaryError.is(error) ? error.userMessage : String(error);
      throw new TributaryError('config', { userMessage: `Cannot reach HubSpot at base_url: ${reason}`, cause: error });
    } finally {
      api.close();
    }
  },

  async discover(ctx, config) {
    const api = hubspotApi(ctx, config);
    try {
      const objects: WritableObject[] = [];
      for (const name of WRITER_OBJECTS) objects.push(writableObject(name, await api.properties(name)));
      return objects;
    } finally {
      api.close();
    }
  },

  async open(ctx, config) {
    // Property definitions are read once per session, through the limited, retried context.
    const setup = hubspotApi(ctx, config);
    const definitions = new Map<string, Map<string, ApiProperty>>();
    try {
      for (const name of WRITER_OBJECTS) definitions.set(name, new Map((await setup.properties(name)).map((p) => [p.name, p])));
    } finally {
      setup.close();
    }
    const api = hubspotApi(singleAttempt(ctx), config, {
      limitFromHeaders: (max, intervalMs) => scaledLimit(max, intervalMs, WRITER_RATE_LIMIT.perMs, 2),
    });
    return {
      async write(request): Promise<WriteResult[]> {
        const properties = definitions.get(request.object);
        if (!properties || request.mode !== 'upsert') {
          throw new TributaryError('config', {
            userMessage: `The HubSpot writer upserts ${WRITER_OBJECTS.join(', ')}; it cannot ${request.mode} ${request.object}`,
          });
        }
        const id = properties.get(request.idProperty);
        if (!id || !id.hasUniqueValue || id.name === 'hs_object_id') {
          throw new TributaryError('config', {
            userMessage: `"${request.idProperty}" is not a unique property of HubSpot ${request.object}: upsert by one of ${writableObject(request.object, [...properties.values()]).idProperties.join(', ')}`,
          });
        }
        return writeBatch(api, properties, request);
      },
      /**
       * Every `idProperty` value of the object's live records (archived ones left out),
       * paged from the list endpoint. Reads back what writes stored (the conformance suite
       * checks applied keys against it). Not `write`'s single attempts: the runtime calls
       * this directly, so it goes through the retried, rate-limited context as discovery
       * does. Records without the property have no key and are not listed.
       */
      async *listKeys(object, idProperty) {
        if (!definitions.has(object)) throw new TributaryError('config', { userMessage: `The HubSpot writer lists keys of ${WRITER_OBJECTS.join(', ')}, not ${object}` });
        const reader = hubspotApi(ctx, config);
        try {
          let after: string | undefined;
          do {
            const page = await reader.listPage(object, { limit: LIST_PAGE_SIZE, ...(after !== undefined ? { after } : {}), properties: [idProperty], archived: false });
            for (const record of page.results) {
              const key = record.properties[idProperty];
              if (key !== null && key !== undefined && key !== '') yield key;
            }
            after = page.next;
          } while (after !== undefined);
        } finally {
          reader.close();
        }
      },
      async close() {
        api.close();
      },
    };
  },
});
