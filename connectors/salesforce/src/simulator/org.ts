/**
 * The simulated org's data: objects, rows, and the operations on them shared by the HTTP
 * endpoints and the test API — SOQL evaluation, sObject collections upsert with Salesforce's
 * per-record validation, inserts, updates, soft deletes and purges with their SystemModstamp.
 * No HTTP here (see server.ts).
 */
import { componentKeyOf as componentKey } from '../objects/fields.js';
import { sfDateTime } from './format.js';
import { seededRandom } from '@tributary/core';
import { JsonNumber, canonicalDecimal, compareDecimals, fitsDouble } from '../client/json.js';
import { defaultObjects, generateValue, type ExtraFieldSpec, type SimField, type SimObject } from './objects.js';
import { SoqlError, compareValues, conditionFields, evaluate, parseSoql, type SoqlQuery } from './soql.js';

/** Most records an sObject collections request takes. */
export const COLLECTION_SIZE = 200;

export type Row = Record<string, unknown>;

export interface Table {
  object: SimObject;
  byLower: Map<string, SimField>;
  rows: Map<string, Row>;
  /** The `deleted` endpoint's log: soft and hard deletions. */
  deletions: Map<string, number>;
  /**
   * Where the delete log starts after Salesforce's cleanup purged older entries (ms), if it
   * did: the `deleted` endpoint refuses windows starting before it.
   */
  deleteLogStart?: number;
  counter: number;
}

/** An API error: HTTP status and Salesforce errorCode, answered as `[{ message, errorCode }]`. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

export const SEED_EPOCH_MS = Date.parse('2024-01-01T00:00:00Z');
const SYSTEM_FIELDS = new Set(['Id', 'IsDeleted', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp']);
/** Number field types (external ids of these types are matched as numbers). */
const NUMBER_TYPES = new Set(['int', 'double', 'currency', 'percent']);
/** Field types SOQL compares as text (case-insensitively unless unique case-sensitive). */
const TEXT_TYPES = new Set(['string', 'textarea', 'email', 'phone', 'url']);

export function secondsOf(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

export function stampOf(options: WriteOptions | undefined): number {
  if (options?.stamp === undefined) return secondsOf(Date.now());
  const ms = typeof options.stamp === 'number' ? options.stamp : Date.parse(options.stamp);
  if (!Number.isFinite(ms)) throw new Error(`invalid stamp ${String(options.stamp)}`);
  return secondsOf(ms);
}

/** Record ids: key prefix + 12 base-36 digits + 'AAA' (18 characters, sortable as text). */
function makeId(table: Table): string {
  table.counter++;
  return `${table.object.keyPrefix}${table.counter.toString(36).toUpperCase().padStart(12, '0')}AAA`;
}

export interface WriteOptions {
  /** SystemModstamp / LastModifiedDate to commit with (ISO string or ms); default now. */
  stamp?: string | number;
}

export interface OrgOptions {
  /** REST API version, for the record URLs in `attributes`. */
  version: string;
  records?: Partial<Record<string, number>>;
  tieGroup?: number;
  seed?: number;
  /** Extra custom text fields per object (see the simulator's `customFields`). */
  customFields?: Partial<Record<string, number>>;
  /** Extra fields per object (see the simulator's `extraFields`). */
  extraFields?: Partial<Record<string, ExtraFieldSpec[]>>;
}

/** A transaction started by the test API (see the org's `beginTransaction`). */
export interface SimTransaction {
  /** Its start (ISO): the SystemModstamp of its writes. */
  readonly stamp: string;
  /** Inserts records when the transaction commits. */
  insert(object: string, records: Array<Record<string, unknown>>): void;
  /** Updates a record when the transaction commits. */
  update(object: string, id: string, changes: Record<string, unknown>): void;
  /** Applies the writes, stamped with the transaction's start, and ends it; returns the ids inserted. */
  commit(): string[];
}

export interface UpsertOutcome {
  id?: string;
  success: boolean;
  created?: boolean;
  errors: Array<{ statusCode: string; message: string; fields: string[] }>;
}

export type Org = ReturnType<typeof createOrg>;

export function createOrg(options: OrgOptions) {
  const { version } = options;
  const tables = new Map<string, Table>();
  for (const object of defaultObjects(options.customFields, options.extraFields)) {
    tables.set(object.name.toLowerCase(), {
      object,
      byLower: new Map(object.fields.map((f) => [f.name.toLowerCase(), f])),
      rows: new Map(),
      deletions: new Map(),
      counter: 0,
    });
  }


  /** External ids whose rows another transaction holds (UNABLE_TO_LOCK_ROW). */
  const locked = new Set<string>();

  /** Start stamps (ms) of the transactions still running (see `beginTransaction`). */
  const openTransactions = new Map<number, number>();
  let transactionCounter = 0;

  /** When the earliest transaction still running started (ms), if any runs. */
  function earliestOpenTransaction(): number | undefined {
    let earliest: number | undefined;
    for (const stamp of openTransactions.values()) if (earliest === undefined || stamp < earliest) earliest = stamp;
    return earliest;
  }

  function tableOf(name: string, status = 404): Table {
    const table = tables.get(name.toLowerCase());
    if (!table) {
      if (status === 400) throw new ApiProblem(400, 'INVALID_TYPE', `sObject type '${name}' is not supported.`);
      throw new ApiProblem(404, 'NOT_FOUND', 'The requested resource does not exist');
    }
    return table;
  }

  /**
   * Whether SOQL equality on a field ignores case: for text fields except unique case-sensitive
   * ones (ids, references and picklists are compared as stored here).
   */
  function foldsCaseOf(f: SimField): boolean {
    return TEXT_TYPES.has(f.type) && !(f.unique && f.caseSensitive);
  }

  /**
   * Whether an upsert matches `key` to a row's external id without case: only when the field
   * is unique and case-insensitive ("Treat ABC and abc as duplicate values").
   */
  function matchesExternalId(f: SimField, stored: unknown, key: string): boolean {
    // A number external id (Number(18,0)) matches the same decimal, digit for digit.
    if (NUMBER_TYPES.has(f.type)) return (typeof stored === 'number' || stored instanceof JsonNumber) && compareDecimals(String(stored), key) === 0;
    return typeof stored === 'string' && identityOfKey(f, stored) === identityOfKey(f, key);
  }

  function fieldOf(table: Table, name: string): SimField {
    const f = table.byLower.get(name.toLowerCase());
    if (!f) throw new ApiProblem(400, 'INVALID_FIELD', `No such column '${name}' on entity '${table.object.name}'.`);
    return f;
  }

  // ---- data changes (shared by the test API and the upsert endpoint) ----

  /**
   * A stored value. Numbers a double cannot hold digit for digit (a Number(18,0) field's
   * integers past 2^53) are kept as a JsonNumber of their exact decimal, which the answers
   * write with every digit (JSON) or as is (CSV); the test API gives them as bigints.
   */
  function normalize(f: SimField, value: unknown): unknown {
    if (value === null || value === undefined || value === '') return null;
    if (typeof value === 'bigint') return fitsDouble(String(value)) ? Number(value) : new JsonNumber(String(value));
    if (f.type === 'datetime') {
      const ms = typeof value === 'number' ? value : Date.parse(String(value).replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
      return Number.isFinite(ms) ? ms : null;
    }
    return value;
  }

  function insertRow(table: Table, values: Row, stamp: number): Row {
    const row: Row = {};
    for (const f of table.object.fields) {
      if (f.type === 'address' || f.type === 'location') continue;
      row[f.name] = f.type === 'boolean' ? false : null;
    }
    for (const [name, value] of Object.entries(values)) {
      const f = fieldOf(table, name);
      if (!SYSTEM_FIELDS.has(f.name)) row[f.name] = normalize(f, value);
    }
    row.Id = makeId(table);
    row.IsDeleted = false;
    row.CreatedDate = stamp;
    row.LastModifiedDate = stamp;
    row.SystemModstamp = stamp;
    table.rows.set(row.Id as string, row);
    return row;
  }

  function updateRow(table: Table, row: Row, values: Row, stamp: number): void {
    for (const [name, value] of Object.entries(values)) {
      const f = fieldOf(table, name);
      if (!SYSTEM_FIELDS.has(f.name)) row[f.name] = normalize(f, value);
    }
    row.LastModifiedDate = stamp;
    row.SystemModstamp = stamp;
  }

  // Seed: ids are handed out in one order and SystemModstamps in another (shuffled), so id
  // order and time order disagree and only the (SystemModstamp, Id) order is stable.
  const random = seededRandom(options.seed ?? 1);
  const tieGroup = Math.max(1, options.tieGroup ?? 5);
  for (const [name, count] of Object.entries(options.records ?? {})) {
    const table = tableOf(name);
    const n = count ?? 0;
    const positions = Array.from({ length: n }, (_, i) => i);
    for (let i = positions.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [positions[i], positions[j]] = [positions[j]!, positions[i]!];
    }
    for (let i = 0; i < n; i++) {
      const values: Row = {};
      for (const f of table.object.fields) {
        if (SYSTEM_FIELDS.has(f.name) || !f.createable) continue;
        values[f.name] = f.externalId ? `${table.object.keyPrefix}-ext-${i + 1}` : generateValue(f, i + 1, random);
      }
      insertRow(table, values, SEED_EPOCH_MS + Math.floor(positions[i]! / tieGroup) * 1000);
    }
  }

  // ---- answers ----

  /** A field's value as the REST API shows it: date-times formatted, compound fields assembled. */
  function restValue(table: Table, f: SimField, row: Row): unknown {
    if (f.type === 'address' || f.type === 'location') {
      const parts = table.object.fields.filter((c) => c.compoundFieldName === f.name);
      if (parts.every((c) => row[c.name] === null || row[c.name] === undefined)) return null;
      return Object.fromEntries(parts.map((c) => [componentKey(f.name, c.name), row[c.name] ?? null]));
    }
    const value = row[f.name] ?? null;
    return f.type === 'datetime' && typeof value === 'number' ? sfDateTime(value) : value;
  }

  function restRecord(table: Table, fields: SimField[], row: Row): Row {
    const record: Row = { attributes: { type: table.object.name, url: `/services/data/v${version}/sobjects/${table.object.name}/${String(row.Id)}` } };
    for (const f of fields) record[f.name] = restValue(table, f, row);
    return record;
  }

  /** Evaluates a parsed query: the matching rows, sorted and limited. */
  function select(query: SoqlQuery, all: boolean): { table: Table; fields: SimField[]; rows: Row[] } {
    const table = tableOf(query.object, 400);
    const fields = query.fields.map((name) => fieldOf(table, name));
    for (const name of conditionFields(query.where)) {
      const f = fieldOf(table, name);
      if (!f.filterable) throw new ApiProblem(400, 'INVALID_FIELD', `field '${f.name}' can not be filtered in a query call`);
    }
    const order = query.orderBy.map((term) => ({ field: fieldOf(table, term.field), descending: term.descending }));
    const valueOf = (row: Row) => (name: string) => row[fieldOf(table, name).name];
    const foldsCase = (name: string) => foldsCaseOf(fieldOf(table, name));
    let rows = [...table.rows.values()].filter((row) => (all || row.IsDeleted !== true) && evaluate(query.where, valueOf(row), foldsCase));
    if (order.length > 0) {
      rows.sort((a, b) => {
        for (const term of order) {
          const c = compareValues(a[term.field.name] ?? null, b[term.field.name] ?? null);
          if (c !== 0) return term.descending ? -c : c;
        }
        return 0;
      });
    }
    if (query.limit !== undefined) rows = rows.slice(0, query.limit);
    return { table, fields, rows };
  }

  function parse(soql: string | null): SoqlQuery {
    if (!soql) throw new ApiProblem(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    try {
      return parseSoql(soql);
    } catch (error) {
      if (error instanceof SoqlError) throw new ApiProblem(400, 'MALFORMED_QUERY', error.message);
      throw error;
    }
  }

  function validateValue(f: SimField, value: unknown): string | undefined {
    if (value === null || value === undefined) return undefined;
    switch (f.type) {
      case 'int':
        return Number.isInteger(value) ? undefined : 'not an integer';
      case 'double':
      case 'currency':
      case 'percent':
        if (value instanceof JsonNumber) return f.scale === 0 && value.text.includes('.') ? 'not an integer' : undefined;
        return typeof value === 'number' && Number.isFinite(value) ? undefined : 'not a number';
      case 'boolean':
        return typeof value === 'boolean' ? undefined : 'not a boolean';
      case 'email':
        return typeof value === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value) ? undefined : 'invalid email address';
      case 'date':
        return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? undefined : 'not a date';
      case 'datetime':
        return typeof value === 'string' && Number.isFinite(Date.parse(value)) ? undefined : 'not a date-time';
      default:
        if (typeof value !== 'string') return 'not a string';
        if (f.length > 0 && value.length > f.length) return `data value too large (max length=${f.length})`;
        if (f.restrictedPicklist && !f.picklistValues.some((p) => p.value === value)) return 'bad value for restricted picklist field';
        return undefined;
    }
  }

  function problemCode(f: SimField, problem: string): string {
    if (problem.startsWith('data value too large')) return 'STRING_TOO_LONG';
    if (problem.startsWith('invalid email')) return 'INVALID_EMAIL_ADDRESS';
    if (problem.startsWith('bad value for restricted')) return 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST';
    return f.type === 'date' || f.type === 'datetime' ? 'INVALID_TYPE_ON_FIELD_IN_RECORD' : 'INVALID_FIELD_FOR_INSERT_UPDATE';
  }

  /**
   * The row `key` names, as the upsert matches external ids (matchesExternalId): without case
   * for a unique case-insensitive field, as a decimal for a number field, exactly otherwise.
   */
  function identityOfKey(f: SimField, key: string): string {
    if (NUMBER_TYPES.has(f.type)) return canonicalDecimal(key) ?? key;
    return f.unique && !f.caseSensitive ? key.toLowerCase() : key;
  }

  /** The identities (identityOfKey) of the keys that more than one record of an upsert request carries. */
  function repeatedKeys(ext: SimField, records: unknown[]): Set<string> {
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const raw of records) {
      const rawKey = ((raw ?? {}) as Row)[ext.name];
      if (rawKey === null || rawKey === undefined || rawKey === '' || (typeof rawKey === 'object' && !(rawKey instanceof JsonNumber))) continue;
      const identity = identityOfKey(ext, String(rawKey));
      if (seen.has(identity)) repeated.add(identity);
      seen.add(identity);
    }
    return repeated;
  }

  function upsertCollection(objectName: string, extName: string, body: unknown): UpsertOutcome[] {
    const table = tableOf(objectName);
    const ext = fieldOf(table, extName);
    if (!ext.externalId && ext.name !== 'Id') throw new ApiProblem(400, 'INVALID_FIELD', `Field ${ext.name} is not an external id field`);
    const request = body as { allOrNone?: unknown; records?: unknown } | null;
    if (!request || !Array.isArray(request.records)) throw new ApiProblem(400, 'JSON_PARSER_ERROR', 'records must be an array');
    if (request.records.length > COLLECTION_SIZE) {
      throw new ApiProblem(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${COLLECTION_SIZE} records in a single call`);
    }
    const stamp = secondsOf(Date.now());
    const fail = (statusCode: string, message: string, fields: string[] = []): UpsertOutcome => ({ success: false, errors: [{ statusCode, message, fields }] });
    const repeated = repeatedKeys(ext, request.records);
    const planned: Array<{ outcome: UpsertOutcome; apply?: () => void }> = request.records.map((raw) => {
      const record = (raw ?? {}) as Row;
      const attributes = record.attributes as { type?: unknown } | undefined;
      if (attributes?.type !== undefined && String(attributes.type).toLowerCase() !== table.object.name.toLowerCase()) {
        return { outcome: fail('INVALID_TYPE', `Record type ${String(attributes.type)} does not match ${table.object.name}`) };
      }
      const rawKey = record[ext.name];
      // A number external id comes as a JSON number (a JsonNumber past a double's digits).
      const key = NUMBER_TYPES.has(ext.type) && (typeof rawKey === 'number' || rawKey instanceof JsonNumber) ? String(rawKey) : rawKey;
      if (typeof key !== 'string' || key === '') return { outcome: fail('MISSING_ARGUMENT', `${ext.name} not specified`, [ext.name]) };
      // Salesforce upserts no record whose key is matched more than once in the request.
      if (repeated.has(identityOfKey(ext, key))) return { outcome: fail('DUPLICATE_VALUE', `Duplicate external id specified: ${key}`, [ext.name]) };
      if (locked.has(key)) return { outcome: fail('UNABLE_TO_LOCK_ROW', 'unable to obtain exclusive access to this record') };
      const values: Row = {};
      for (const [name, value] of Object.entries(record)) {
        if (name === 'attributes') continue;
        const f = table.byLower.get(name.toLowerCase());
        if (!f) return { outcome: fail('INVALID_FIELD', `No such column '${name}' on sobject of type ${table.object.name}`, [name]) };
        const problem = validateValue(f, value);
        if (problem) return { outcome: fail(problemCode(f, problem), `${f.label}: ${problem}: [${String(value)}]`, [f.name]) };
        values[f.name] = value;
      }
      const existing = [...table.rows.values()].find((row) => matchesExternalId(ext, row[ext.name], key) && row.IsDeleted !== true);
      if (existing) {
        const readOnly = Object.keys(values).find((name) => name !== ext.name && !fieldOf(table, name).updateable);
        if (readOnly) return { outcome: fail('INVALID_FIELD_FOR_INSERT_UPDATE', `Unable to create/update fields: ${readOnly}.`, [readOnly]) };
        return { outcome: { id: existing.Id as string, success: true, created: false, errors: [] }, apply: () => updateRow(table, existing, values, stamp) };
      }
      const readOnly = Object.keys(values).find((name) => !fieldOf(table, name).createable);
      if (readOnly) return { outcome: fail('INVALID_FIELD_FOR_INSERT_UPDATE', `Unable to create/update fields: ${readOnly}.`, [readOnly]) };
      const missing = table.object.fields.filter((f) => !f.nillable && f.createable && !f.defaultedOnCreate && (values[f.name] === undefined || values[f.name] === null)).map((f) => f.name);
      if (missing.length > 0) return { outcome: fail('REQUIRED_FIELD_MISSING', `Required fields are missing: [${missing.join(', ')}]`, missing) };
      const outcome: UpsertOutcome = { success: true, created: true, errors: [] };
      return {
        outcome,
        apply: () => {
          outcome.id = insertRow(table, values, stamp).Id as string;
        },
      };
    });
    const allOrNone = request.allOrNone === true;
    if (allOrNone && planned.some((p) => !p.outcome.success)) {
      return planned.map((p) =>
        p.outcome.success
          ? fail('ALL_OR_NONE_OPERATION_ROLLED_BACK', 'Record rolled back because not all records were valid and the request was using AllOrNone header')
          : p.outcome,
      );
    }
    for (const p of planned) p.apply?.();
    return planned.map((p) => p.outcome);
  }

  function rowsToPlain(table: Table, row: Row): Row {
    const plain: Row = {};
    for (const [name, value] of Object.entries(row)) {
      const f = table.byLower.get(name.toLowerCase());
      plain[name] = f?.type === 'datetime' && typeof value === 'number' ? new Date(value).toISOString() : value instanceof JsonNumber ? BigInt(value.text) : value;
    }
    return plain;
  }

  return {
    tables,
    locked,
    tableOf,
    fieldOf,
    select,
    parse,
    restRecord,
    upsertCollection,
    insert(object: string, records: Array<Record<string, unknown>>, writeOptions?: WriteOptions): string[] {
      const table = tableOf(object);
      const stamp = stampOf(writeOptions);
      return records.map((values) => insertRow(table, values, stamp).Id as string);
    },
    update(object: string, id: string, changes: Record<string, unknown>, writeOptions?: WriteOptions): void {
      const table = tableOf(object);
      const row = table.rows.get(id);
      if (!row) throw new Error(`no ${object} ${id}`);
      updateRow(table, row, changes, stampOf(writeOptions));
    },
    softDelete(object: string, ids: string[], writeOptions?: WriteOptions): void {
      const table = tableOf(object);
      const stamp = stampOf(writeOptions);
      for (const id of ids) {
        const row = table.rows.get(id);
        if (!row) throw new Error(`no ${object} ${id}`);
        row.IsDeleted = true;
        row.SystemModstamp = stamp;
        row.LastModifiedDate = stamp;
        table.deletions.set(id, Date.now());
      }
    },
    /**
     * Restores records from the recycle bin, as SOAP API `undelete()` (and Apex `undelete`) do:
     * the REST API has no undelete resource, so this is a control operation of the simulator.
     * Documented behaviour (SOAP API Developer Guide, "undelete()"; Apex Developer Guide,
     * "Restoring Deleted Records"): only records still in the recycle bin can be restored
     * (not purged ones, whose rows are gone here); the record is live again (IsDeleted =
     * false, returned by query as well as queryAll) with the values it had. An undelete is a
     * write by the user: SystemModstamp and LastModifiedDate move to its time, so replication
     * (getUpdated, which goes by SystemModstamp) and SystemModstamp-ordered reads see it as a
     * change. The delete log keeps its entry: the docs do not say that an undelete removes it,
     * and a reader must not take a listed id for a deletion while queryAll shows it live.
     */
    undelete(object: string, ids: string[], writeOptions?: WriteOptions): void {
      const table = tableOf(object);
      const stamp = stampOf(writeOptions);
      for (const id of ids) {
        const row = table.rows.get(id);
        if (!row) throw new Error(`no ${object} ${id} in the recycle bin (purged or never created)`);
        if (row.IsDeleted !== true) throw new Error(`${object} ${id} is not deleted`);
        row.IsDeleted = false;
        row.SystemModstamp = stamp;
        row.LastModifiedDate = stamp;
      }
    },
    /**
     * Starts a transaction that runs until `commit()` — a long one, such as batch processing.
     * Its writes are invisible until it commits and are then stamped with its start (`stamp`,
     * default now), as SystemModstamp-ordered readers see a late commit. While it runs, the
     * `updated` endpoint's `latestDateCovered` is no later than its start: "If Salesforce
     * executes a long-running transaction on your instance, the value in this field is the
     * start time of that long-running transaction until it completes" (SOAP API Developer
     * Guide, GetUpdatedResult; the REST `sObject Get Updated` resource answers the same field).
     */
    beginTransaction(writeOptions?: WriteOptions): SimTransaction {
      const stamp = stampOf(writeOptions);
      const key = ++transactionCounter;
      openTransactions.set(key, stamp);
      const writes: Array<() => string[]> = [];
      return {
        stamp: new Date(stamp).toISOString(),
        insert(object, records) {
          tableOf(object);
          writes.push(() => records.map((values) => insertRow(tableOf(object), values, stamp).Id as string));
        },
        update(object, id, changes) {
          writes.push(() => {
            const row = tableOf(object).rows.get(id);
            if (!row) throw new Error(`no ${object} ${id}`);
            updateRow(tableOf(object), row, changes, stamp);
            return [];
          });
        },
        commit() {
          if (!openTransactions.delete(key)) throw new Error('the transaction is not running');
          return writes.flatMap((write) => write());
        },
      };
    },
    earliestOpenTransaction,
    /**
     * Salesforce's delete-log cleanup (every two hours, once the log passes 15,000 entries per
     * license): entries logged before `before` are gone, and the `deleted` endpoint answers 400
     * INVALID_REPLICATION_DATE to a window starting before it.
     */
    truncateDeleteLog(object: string, before: string | number): void {
      const table = tableOf(object);
      const start = typeof before === 'number' ? before : Date.parse(before);
      for (const [id, at] of table.deletions) if (at < start) table.deletions.delete(id);
      table.deleteLogStart = start;
    },
    purge(object: string, ids: string[], purgeOptions?: { deletedAt?: string | number }): void {
      const table = tableOf(object);
      const at = purgeOptions?.deletedAt === undefined ? undefined : typeof purgeOptions.deletedAt === 'number' ? purgeOptions.deletedAt : Date.parse(purgeOptions.deletedAt);
      if (at !== undefined && !Number.isFinite(at)) throw new Error(`invalid deletedAt ${String(purgeOptions?.deletedAt)}`);
      for (const id of ids) {
        const row = table.rows.get(id);
        if (!row) throw new Error(`no ${object} ${id}`);
        table.rows.delete(id);
        // getDeleted's deletedDate is when the record was deleted: for a record emptied from
        // the recycle bin, when it went there; for a live record (hard-deleted directly), now.
        // A live record's entry from an earlier delete that was undone (undelete) is not its
        // deletion, and must not date this one back.
        if (at !== undefined) table.deletions.set(id, at);
        else if (row.IsDeleted !== true || !table.deletions.has(id)) table.deletions.set(id, Date.now());
      }
    },
    records(object: string, recordOptions?: { all?: boolean }): Array<Record<string, unknown>> {
      const table = tableOf(object);
      return [...table.rows.values()].filter((row) => recordOptions?.all === true || row.IsDeleted !== true).map((row) => rowsToPlain(table, row));
    },
  };
}
