/**
 * The Salesforce reverse-ETL writer: upserts by external id through sObject collections
 * (`PATCH /composite/sobjects/{Object}/{ExternalIdField}`, 200 records per request), one
 * result per record.
 *
 * Idempotency. Salesforce takes no idempotency key, so the writer compares before writing:
 * one query reads the batch's current rows by external id, records whose fields already hold
 * the values are answered `unchanged` without being sent, and only the others are upserted.
 * A replayed batch (a retried request, a sync resumed from an older checkpoint) is therefore
 * all `unchanged` and changes nothing. The same comparison answers dry runs: `created`,
 * `updated` or `unchanged` per record, and nothing is sent.
 *
 * Budget. Each write costs two API requests (the comparison query and the upsert). Every
 * answer's `Sforce-Limit-Info` is read; once `max_api_usage` of the daily limit is used, or
 * the org answers 403 REQUEST_LIMIT_EXCEEDED, the write throws a `fatal` error that halts the
 * run (the records not yet sent fail, and a sync stops before their checkpoint).
 */
import {
  TributaryError,
  defineWriter,
  singleAttempt,
  type WritableObject,
  type WriteRecord,
  type WriteRequest,
  type WriteResult,
} from '@tributary/core';
import { MAX_QUERY_PATH_LENGTH, checkSalesforce, isDailyLimitError, openSalesforce, queryPath, type SalesforceClient } from '../client/connection.js';
import { writerSpec } from '../config.js';
import { describeObject, listObjects } from '../objects/describe.js';
import { jsonSchemaOf, type DescribedField, type DescribedObject } from '../objects/fields.js';
import { JsonNumber, canonicalDecimal, fitsDouble } from '../client/json.js';
import { comparedText, differs, toSalesforceValue, valueProblem } from './values.js';

/** sObject collections take at most 200 records per request. */
export const MAX_COLLECTION_SIZE = 200;

interface CollectionResult {
  id?: string;
  success: boolean;
  created?: boolean;
  errors?: Array<{ statusCode?: string; message?: string; fields?: string[] }>;
}

/** Statuses of Salesforce per-record errors that a later attempt may clear. */
const RETRYABLE_STATUS = new Set(['UNABLE_TO_LOCK_ROW', 'ALL_OR_NONE_OPERATION_ROLLED_BACK', 'SERVER_UNAVAILABLE', 'REQUEST_RUNNING_TOO_LONG']);


function writableObjectOf(object: DescribedObject): WritableObject {
  const fields = object.fields
    .filter((f) => f.type !== 'address' && f.type !== 'location')
    .map((f) => ({
      name: f.name,
      schema: jsonSchemaOf(f),
      required: f.nillable === false && f.createable === true && f.defaultedOnCreate !== true,
      writable: f.createable === true || f.updateable === true,
      unique: f.externalId === true || f.unique === true || f.name === 'Id',
    }));
  return { name: object.name, fields, idProperties: object.fields.filter((f) => f.externalId === true).map((f) => f.name), modes: ['upsert'] };
}

function soqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** One page of a SOQL query answer. */
type QueryPage = { records?: Array<Record<string, unknown>>; done?: boolean; nextRecordsUrl?: string };

const NUMERIC_TYPES = new Set(['int', 'long', 'double', 'currency', 'percent']);

/** `, ` between two literals of an IN list, as it stands in a query path. */
const IN_SEPARATOR_LENGTH = encodeURIComponent(', ').length;

/**
 * `prefix` + the literals joined by `, ` + `)`, as few queries as the literals need so that
 * each one's REST path stays within MAX_QUERY_PATH_LENGTH: 200 long external ids (composite
 * keys, hashes) do not fit in one URI, which Salesforce refuses past 16 KB (414).
 */
function inListQueries(prefix: string, literals: readonly string[], objectName: string): string[] {
  const base = queryPath(`${prefix})`).length;
  const queries: string[] = [];
  let chunk: string[] = [];
  let length = base;
  for (const literal of literals) {
    const added = encodeURIComponent(literal).length;
    if (chunk.length > 0 && length + IN_SEPARATOR_LENGTH + added > MAX_QUERY_PATH_LENGTH) {
      queries.push(`${prefix}${chunk.join(', ')})`);
      chunk = [];
      length = base;
    }
    if (base + added > MAX_QUERY_PATH_LENGTH) {
      throw new TributaryError('config', {
        userMessage: `The writer cannot read the current ${objectName} rows to compare: the query is longer than a Salesforce request URI may be (16,384 bytes) even for one key. Map fewer fields.`,
      });
    }
    length += (chunk.length > 0 ? IN_SEPARATOR_LENGTH : 0) + added;
    chunk.push(literal);
  }
  if (chunk.length > 0) queries.push(`${prefix}${chunk.join(', ')})`);
  return queries;
}

/**
 * The number a key denotes when written to a numeric external id field, as its canonical
 * decimal (`canonicalDecimal`: `1`, `1.0`, `"1.00"`, `1e0` are all `1`), every digit kept;
 * undefined for a key that is no finite number (sent as it is). The other keys JavaScript's
 * Number reads (`0x10`, spaces only) denote the number it reads, as `keyValue` sends them.
 */
function numberOfKey(key: string): string | undefined {
  const value = Number(key);
  if (!Number.isFinite(value)) return undefined;
  return canonicalDecimal(key) ?? canonicalDecimal(String(value));
}

/**
 * The key as Salesforce expects the external id: numbers for numeric external id fields, with
 * every digit (a Number(18,0) key past 2^53 would otherwise arrive rounded, and upsert another
 * row than the record's).
 */
function keyValue(field: DescribedField, key: string): string | number | JsonNumber {
  const decimal = NUMERIC_TYPES.has(field.type) ? numberOfKey(key) : undefined;
  if (decimal === undefined) return key;
  return fitsDouble(decimal) ? Number(decimal) : new JsonNumber(decimal);
}

/** A numeric key as a SOQL literal, every digit kept; `NaN` (refused by Salesforce) for a key that is no number, as before. */
function numericLiteral(key: string): string {
  return numberOfKey(key) ?? String(Number(key));
}

/**
 * How the writer matches a row's external id to a record key: as Salesforce's upsert does,
 * case-insensitively for a unique case-insensitive field (`ABC-1` is the row of `abc-1`; the
 * default for a unique text field), exactly otherwise.
 */
function matchKeyOf(idField: DescribedField): (key: string) => string {
  // Numbers match as the decimals they are (`1.0` is the row of `1`), digit for digit.
  if (NUMERIC_TYPES.has(idField.type)) return (key) => numberOfKey(key) ?? key;
  return idField.unique === true && idField.caseSensitive === false ? (key) => key.toLowerCase() : (key) => key;
}

function failed(record: WriteRecord, reason: string, retryable = false): WriteResult {
  return { idempotencyKey: record.idempotencyKey, key: record.key, status: 'failed', reason, retryable };
}

export const salesforceWriter = defineWriter({
  name: 'salesforce',
  version: '0.1.0',
  spec: { connectionSpecification: writerSpec, documentationUrl: 'https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm' },
  // No per-second cap at Salesforce (the daily budget binds, see max_api_usage), but each
  // write holds rows locked: a few requests per second, two in flight, keeps lock contention
  // with the org's own automation low.
  rateLimit: { requests: 5, perMs: 1000, concurrency: 2 },
  retry: { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 },
  maxBatchSize: MAX_COLLECTION_SIZE,
  /**
   * Keys differing only in case name one row of a unique case-insensitive external id field
   * (Salesforce's default for a unique text field), keys of one number in different decimal
   * forms (`1`, `1.0`, `"1.00"`; `1e2` and `100`) one row of a Number external id field, and
   * Salesforce refuses every record of an upsert request whose key is matched more than once
   * (DUPLICATE_VALUE, "Duplicate external id specified"). With this identity — the canonical
   * number of a key that is one, else the key without case — the runtime never puts `ABC-1`
   * and `abc-1`, nor `1` and `1.0`, in one request, nor two requests holding them in flight at
   * once, so they land in input order. The describe is not at hand here (the identity must be
   * pure, and gets only the object and field names): a case-sensitive field, and a text field
   * holding `1` and `1.0` (two rows there), get the same treatment, which only costs them
   * batching (and lets a dry run report the second of two such new keys `updated` rather
   * than `created`). Per record: `Number(key)`, and for a numeric key one regular expression (`canonicalDecimal`).
   */
  keyIdentity: (_object, _idProperty, key) => numberOfKey(key) ?? key.toLowerCase(),

  check: checkSalesforce,

  async discover(ctx, config) {
    const client = await openSalesforce(ctx, config);
    const names = await listObjects(client, config.objects);
    const objects: WritableObject[] = [];
    for (const name of names) {
      const writable = writableObjectOf(await describeObject(client, name));
      if (writable.idProperties.length > 0 || config.objects !== undefined) objects.push(writable);
    }
    return objects;
  },

  async open(ctx, config) {
    const single = singleAttempt(ctx);
    let client: SalesforceClient | undefined;
    const described = new Map<string, Promise<DescribedObject>>();
    const share = config.max_api_usage;
    /**
     * Dry runs: the rows (object, external id field, matchKeyOf the key) this session's dry
     * runs reported `created`. Nothing is written, so a later record of such a row finds no
     * row; a real run finds the row the first record created, and neither asks it for the
     * fields required on create nor answers `created` again. One entry per row a dry run
     * would create; empty outside dry runs.
     */
    const createdByDryRun = new Set<string>();

    async function clientOf(): Promise<SalesforceClient> {
      client ??= await openSalesforce(single, config);
      return client;
    }

    /** One attempt; past the budget or at the daily limit, a `fatal` error that halts the run. */
    async function send<T>(request: Parameters<SalesforceClient['attempt']>[0]): Promise<T> {
      const c = await clientOf();
      const usage = c.usage();
      if (usage && usage.limit > 0 && usage.used >= share * usage.limit) {
        throw new TributaryError('fatal', {
          userMessage: `Halted at ${usage.used} of the org's ${usage.limit} daily Salesforce API requests (max_api_usage ${share}); run again once the limit resets`,
        });
      }
      try {
        return (await c.attempt<T>(request)).body;
      } catch (error) {
        if (isDailyLimitError(error)) {
          throw new TributaryError('fatal', { userMessage: (error as TributaryError).userMessage.replace('the sync stopped', 'the run halted'), cause: error });
        }
        throw error;
      }
    }

    function describeOnce(name: string): Promise<DescribedObject> {
      let pending = described.get(name);
      if (!pending) {
        pending = (async () => {
          const body = await send<{ name?: string; fields?: DescribedField[] }>({ method: 'GET', path: `/sobjects/${encodeURIComponent(name)}/describe` });
          if (!Array.isArray(body.fields)) throw new TributaryError('fatal', { userMessage: `Salesforce answered the describe of ${name} without its fields` });
          return { name: body.name ?? name, fields: body.fields };
        })();
        pending.catch(() => described.delete(name));
        described.set(name, pending);
      }
      return pending;
    }

    /** The stored rows of `keys`, by matchKeyOf(idField) of their external id. */
    async function currentRows(object: DescribedObject, idField: DescribedField, keys: string[], fields: string[]): Promise<Map<string, Record<string, unknown>>> {
      const idProperty = idField.name;
      const select = [...new Set(['Id', idProperty, ...fields])].join(', ');
      const literals = keys.map((key) => (NUMERIC_TYPES.has(idField.type) ? numericLiteral(key) : soqlString(key)));
      // Keyed by matchKeyOf(idField): SOQL's IN ignores case too (except on unique
      // case-sensitive fields), so a row stored as `ABC-1` comes back for `abc-1`.
      const matchKey = matchKeyOf(idField);
      const rows = new Map<string, Record<string, unknown>>();
      for (const soql of inListQueries(`SELECT ${select} FROM ${object.name} WHERE ${idProperty} IN (`, literals, object.name)) {
        let path: string | undefined = queryPath(soql);
        while (path !== undefined) {
          const page: QueryPage = await send({ method: 'GET', path });
          for (const row of page.records ?? []) rows.set(matchKey(String(row[idProperty])), row);
          path = page.done === false && page.nextRecordsUrl ? page.nextRecordsUrl : undefined;
        }
      }
      return rows;
    }

    return {
      async write(request: WriteRequest): Promise<WriteResult[]> {
        if (request.mode !== 'upsert') {
          throw new TributaryError('config', { userMessage: `The Salesforce writer upserts by external id; mode "${request.mode}" is not supported` });
        }
        const object = await describeOnce(request.object);
        // API names are case-insensitive in Salesforce: match fields whatever their case.
        const byName = new Map(object.fields.map((f) => [f.name.toLowerCase(), f]));
        const idField = byName.get(request.idProperty.toLowerCase());
        if (!idField || idField.externalId !== true) {
          throw new TributaryError('config', { userMessage: `${request.object}.${request.idProperty} is not an external id field: upserts need one (mark the field External ID in Salesforce)` });
        }
        const requiredOnCreate = object.fields
          .filter((f) => f.nillable === false && f.createable === true && f.defaultedOnCreate !== true)
          .map((f) => f.name);
        const results = new Map<string, WriteResult>();
        const valid: Array<{ record: WriteRecord; values: Record<string, unknown> }> = [];
        for (const record of request.records) {
          const values: Record<string, unknown> = {};
          let problem: string | undefined;
          for (const [name, value] of Object.entries(record.fields)) {
            const field = byName.get(name.toLowerCase());
            if (field === idField) continue;
            if (!field) problem ??= `INVALID_FIELD: ${request.object} has no field ${name}`;
            else if (field.createable !== true && field.updateable !== true) problem ??= `INVALID_FIELD_FOR_INSERT_UPDATE: ${request.object}.${name} is not writable`;
            else {
              values[field.name] = toSalesforceValue(field, value);
              problem ??= valueProblem(field, values[field.name]);
            }
          }
          if (record.key === '') problem ??= `MISSING_ARGUMENT: ${request.idProperty} is empty`;
          if (problem) results.set(record.idempotencyKey, failed(record, problem));
          else valid.push({ record, values });
        }
        if (valid.length > 0) {
          const fields = [...new Set(valid.flatMap((v) => Object.keys(v.values)))];
          const current = await currentRows(object, idField, valid.map((v) => v.record.key), fields);
          const matchKey = matchKeyOf(idField);
          // A dry run's results say what each record leaves in the row as `differs` compares
          // it, so that the runtime judges the row's later records as the real run would.
          const comparedValuesOf = (values: Record<string, unknown>): Record<string, string> =>
            Object.fromEntries(Object.entries(values).map(([name, value]) => [name, comparedText(byName.get(name.toLowerCase())!, value)]));
          const createdRowOf = (key: string): string => `${object.name}\n${idField.name}\n${matchKey(key)}`;
          const toSend: typeof valid = [];
          for (const item of valid) {
            const row = current.get(matchKey(item.record.key));
            const base = { idempotencyKey: item.record.idempotencyKey, key: item.record.key, ...(request.dryRun ? { comparedValues: comparedValuesOf(item.values) } : {}) };
            const createdEarlier = request.dryRun && row === undefined && createdByDryRun.has(createdRowOf(item.record.key));
            const missing = row === undefined && !createdEarlier ? requiredOnCreate.filter((name) => name !== idField.name && (item.values[name] === undefined || item.values[name] === null)) : [];
            if (missing.length > 0) {
              results.set(item.record.idempotencyKey, failed(item.record, `REQUIRED_FIELD_MISSING: Required fields are missing: [${missing.join(', ')}]`));
            } else if (createdEarlier) {
              // Its values are compared with the earlier records' by the runtime (comparedValues).
              results.set(item.record.idempotencyKey, { ...base, status: 'updated' });
            } else if (row === undefined) {
              if (request.dryRun) results.set(item.record.idempotencyKey, { ...base, status: 'created' });
              else toSend.push(item);
            } else if (!Object.entries(item.values).some(([name, value]) => differs(byName.get(name.toLowerCase())!, value, row[name]))) {
              results.set(item.record.idempotencyKey, { ...base, status: 'unchanged', id: String(row.Id) });
            } else if (request.dryRun) results.set(item.record.idempotencyKey, { ...base, status: 'updated', id: String(row.Id) });
            else toSend.push(item);
          }
          // With all_or_none, a record refused here (from the describe) would have made
          // Salesforce roll back the whole request: the other records of the request must not be
          // written either, and they fail as Salesforce would answer them.
          if (config.all_or_none && request.records.some((record) => results.get(record.idempotencyKey)?.status === 'failed')) {
            const rolledBack = (record: WriteRecord): WriteResult =>
              failed(record, 'ALL_OR_NONE_OPERATION_ROLLED_BACK: Record rolled back because not all records were valid and the request was using AllOrNone header', true);
            for (const { record } of toSend) results.set(record.idempotencyKey, rolledBack(record));
            for (const record of request.records) {
              const status = results.get(record.idempotencyKey)?.status;
              if (status === 'created' || status === 'updated') results.set(record.idempotencyKey, rolledBack(record));
            }
            toSend.length = 0;
          }
          if (request.dryRun) {
            for (const { record } of valid) if (results.get(record.idempotencyKey)?.status === 'created') createdByDryRun.add(createdRowOf(record.key));
          }
          if (toSend.length > 0) {
            const body = {
              allOrNone: config.all_or_none,
              records: toSend.map(({ record, values }) => ({ attributes: { type: object.name }, ...values, [idField.name]: keyValue(idField, record.key) })),
            };
            const answer = await send<CollectionResult[]>({ method: 'PATCH', path: `/composite/sobjects/${encodeURIComponent(object.name)}/${encodeURIComponent(idField.name)}`, body });
            if (!Array.isArray(answer) || answer.length !== toSend.length) {
              throw new TributaryError('fatal', { userMessage: 'Salesforce answered an sObject collections upsert with a result count that does not match the request' });
            }
            // Results come back in request order, one per record.
            toSend.forEach(({ record }, index) => {
              const result = answer[index]!;
              if (result.success) {
                results.set(record.idempotencyKey, {
                  idempotencyKey: record.idempotencyKey,
                  key: record.key,
                  status: result.created ? 'created' : 'updated',
                  ...(result.id ? { id: result.id } : {}),
                });
              } else {
                const error = result.errors?.[0];
                const reason = `${error?.statusCode ?? 'UNKNOWN'}: ${error?.message ?? 'refused by Salesforce'}`;
                results.set(record.idempotencyKey, failed(record, reason, RETRYABLE_STATUS.has(error?.statusCode ?? '')));
              }
            });
          }
        }
        return request.records.map((record) => results.get(record.idempotencyKey)!);
      },
      /**
       * Every stored value of the external id field `idProperty` (rows without one have no
       * key and are not listed), paged through SOQL queries. Reads back what writes stored
       * (the conformance suite checks applied records against it). The runtime calls this
       * directly, so it goes through the retried, rate-limited client as the source does, not
       * `write`'s single attempts. Numbers come as their exact decimal text.
       */
      async *listKeys(objectName, idProperty) {
        const reader = await openSalesforce(ctx, config);
        const describe = (await reader.request<{ name?: string; fields?: DescribedField[] }>({ method: 'GET', path: `/sobjects/${encodeURIComponent(objectName)}/describe` })).body;
        const field = describe.fields?.find((f) => f.name.toLowerCase() === idProperty.toLowerCase());
        if (!field) throw new TributaryError('config', { userMessage: `${objectName} has no field ${idProperty} to list keys of` });
        let path: string | undefined = queryPath(`SELECT ${field.name} FROM ${describe.name ?? objectName}`);
        while (path !== undefined) {
          const page: QueryPage = (await reader.request<QueryPage>({ method: 'GET', path })).body;
          for (const row of page.records ?? []) {
            const key = row[field.name];
            if (key !== null && key !== undefined && key !== '') yield String(key);
          }
          path = page.done === false && page.nextRecordsUrl ? page.nextRecordsUrl : undefined;
        }
      },
      async close() {},
    };
  },
});
