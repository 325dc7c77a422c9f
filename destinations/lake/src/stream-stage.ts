import { hash } from 'node:crypto';
import type { DuckDBAppender, DuckDBConnection } from '@duckdb/node-api';
import { replaceLoneSurrogates, stringifyJson, TributaryError, type RecordData, type RejectedRecord } from '@tributary/core';
import type { StreamMapping } from './config.js';
import { epochMsTimestampSql, ident, literal } from './duck.js';
import { emptyEnvelope, jsonText, jsonTextAllowingBigints, toEnvelope, type Envelope } from './envelope.js';
import type { AddedRecord } from './key-moves.js';
import { recordFingerprint, type ReplayWindow } from './replay-window.js';
import { INGEST_SEQ_COLUMN } from './row-order.js';
import { columnName, columnTypeOfValue, ENVELOPE_COLUMNS, isReservedField, NON_FINITE_TEXTS, type ColumnType, type PayloadColumn } from './schema-registry.js';

const ENVELOPE_NAMES: ReadonlySet<string> = new Set(ENVELOPE_COLUMNS);

/**
 * Staging layout. One staging-table row holds up to VALUES_PER_ROW records of one batch:
 * each column holds that column's values joined into one string (see `encodeColumn`), and
 * the COPY splits them back into rows side by side (`unnest(string_split(…))`, see
 * `fromSql`). Handing DuckDB a string costs one native call (~0.3–0.5 µs: per value, the
 * largest cost of the former DataChunk appender path), so this makes it one call per column
 * per 1024 records; `Array.join` is cheap, and DuckDB splits on its own threads while the
 * next rows are staged (measured: see the README). Values are staged in their JS-native
 * types (text, numbers, booleans: no BigInt or Date) and cast to their Parquet types by the
 * COPY. Envelope strings that merely repeat a payload string column (customer id, tenant,
 * event id, single-field key, cursor position) are not staged: the COPY takes them from
 * that column (see `Derived`). `ingest_time_ms` is one value per batch: a plain DOUBLE
 * column, repeated on each of the row's records by the COPY; `row_count` is the number of
 * records the row holds, from which the COPY numbers them (`_tributary_ingest_seq`).
 */
type EnvelopeSlot = 'event_id' | 'entity_key' | 'customer_id' | 'tenant_id' | 'event_time_ms' | 'ingest_time_ms' | 'row_count' | 'op_code' | 'source_position' | 'source_txid' | 'before_image' | 'unchanged_fields';
type StagingType = 'VARCHAR' | 'DOUBLE' | 'BIGINT' | 'BOOLEAN';
const SLOT_TYPES: Record<EnvelopeSlot, StagingType> = {
  event_id: 'VARCHAR',
  entity_key: 'VARCHAR',
  customer_id: 'VARCHAR',
  tenant_id: 'VARCHAR',
  event_time_ms: 'DOUBLE',
  ingest_time_ms: 'DOUBLE',
  row_count: 'DOUBLE',
  op_code: 'DOUBLE',
  source_position: 'VARCHAR',
  source_txid: 'VARCHAR',
  before_image: 'VARCHAR',
  unchanged_fields: 'VARCHAR',
};

/** Staging-table column of an envelope slot: prefixed, so that no payload column (never `_tributary_*`, see columnName) can have its name. */
export function slotColumn(slot: EnvelopeSlot): string {
  return `_tributary_${slot}`;
}

const OPS = ['snapshot', 'insert', 'update', 'delete'] as const;
const CDC_SLOTS: readonly EnvelopeSlot[] = ['op_code', 'source_position', 'source_txid', 'before_image', 'unchanged_fields'];
const OP_CODE: Record<string, number> = { snapshot: 0, insert: 1, update: 2, delete: 3 };

/** Envelope values the COPY reads from a payload string column instead of a staged one (field names). */
interface Derived {
  eventId?: string;
  entityKey?: string;
  customerId?: string;
  tenant?: string;
  cursor?: string;
}

/**
 * The type the COPY casts a payload column's staged text to. Integers are staged as their
 * digits (a safe integer as JavaScript prints it, beyond ±2^53 the text `stageValue` made)
 * and cast straight to BIGINT, so every digit of a BIGINT arrives.
 */
const stagingSql = (type: ColumnType): StagingType => (type === 'integer' ? 'BIGINT' : type === 'number' ? 'DOUBLE' : type === 'boolean' ? 'BOOLEAN' : 'VARCHAR');

/** Records per staging-table row (bounds the strings and lists the COPY handles at once). */
const VALUES_PER_ROW = 1024;
/**
 * A staging row also ends once its payload and before-image strings reach this many
 * characters, so a column's joined string stays far below V8's maximum string length
 * (2^29 − 24) even with large text or JSON values (envelope strings are derived from the
 * payload and at most comparable in size).
 */
const CHARS_PER_ROW = 32 * 1024 * 1024;

/** Column that gives each staged row its schema version (record fields named `_tributary_*` never become columns). */
const VERSION_COLUMN = '_tributary_schema_version';
/** Column of the staging row (DuckDB rowid) each record came from, for `INGEST_SEQ_COLUMN`. */
const STAGED_ROW_COLUMN = '_tributary_staged_row';
/** Slots with one value per staging row (a DOUBLE), not one per record. */
const PER_ROW_SLOTS: ReadonlySet<EnvelopeSlot> = new Set(['ingest_time_ms', 'row_count']);

/** Separates the values of a staged column; a value that is only NULL_MARK is null. */
const SEPARATOR = '\u001e';
const NULL_MARK = '\u001f';
/**
 * An encoded column is its values joined by SEPARATOR or, when a string contains SEPARATOR
 * or NULL_MARK, NULL_MARK followed by a JSON array. A joined column never starts with
 * NULL_MARK + `[` (a null value is NULL_MARK alone, followed by SEPARATOR or the end), so
 * the COPY tells them apart without slicing the common, joined form (slicing costs DuckDB
 * more than splitting).
 */
const JSON_TAG = NULL_MARK;

/**
 * One column of up to VALUES_PER_ROW records as one string: its first `n` values (`values`
 * is consumed). Numbers print in JavaScript's shortest round-trip form, which DuckDB's
 * DOUBLE cast reads back exactly; booleans as true/false. JSON text (json columns) never
 * holds the two control characters raw (JSON escapes them), so the JSON fallback only
 * happens for strings that really contain them.
 */
function encodeColumn(values: unknown[], n: number): string {
  let nulls = false;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) nulls = true;
    else if (v === 0 && Object.is(v, -0)) values[i] = '-0'; // String(-0) is "0"; a number column holds no strings otherwise
    else if (typeof v === 'string' && (v.includes(SEPARATOR) || v.includes(NULL_MARK))) {
      return JSON_TAG + jsonText(values.slice(0, n));
    }
  }
  if (nulls) for (let i = 0; i < n; i++) if (values[i] === null || values[i] === undefined) values[i] = NULL_MARK;
  return (n === values.length ? values : values.slice(0, n)).join(SEPARATOR);
}

/**
 * A text column with one value in every row of a COPY. Typed as a one-value ENUM, so the
 * Parquet writer takes its dictionary from the type instead of hashing every row's value:
 * three such columns cost 3–46 against 115–133 ms of writer CPU per 1M rows. The file is
 * the same: DuckDB writes an ENUM as a dictionary-encoded UTF8 string column, whose
 * statistics (min = max = the value) stay exact.
 */
function constantText(value: string): string {
  return `CAST(${literal(value)} AS ENUM(${literal(value)}))`;
}

function selectOf(column: PayloadColumn): string {
  const c = ident(column.column);
  if (column.type === 'integer') return `CAST(${c} AS BIGINT) AS ${c}`;
  if (column.type === 'json') return `CAST(${c} AS JSON) AS ${c}`;
  return c;
}

const BIGINT_MIN = -(2n ** 63n);
const BIGINT_MAX = 2n ** 63n - 1n;
const DECIMAL_INTEGER = /^-?[0-9]+$/;
/** Canonical digits of 16 or more (the shortest integers beyond ±2^53 have 16). */
const LONG_CANONICAL_INTEGER = /^-?[1-9][0-9]{15,}$/;

/**
 * An integer given as a bigint or as decimal text in its staging form: a number when it is a
 * safe integer (as a stored BIGINT reads back, see ReplayWindow), else its canonical digits;
 * or why it does not fit a BIGINT.
 */
function integerValue(value: bigint | string): number | string | { error: string } {
  if (typeof value === 'string') {
    if (!DECIMAL_INTEGER.test(value)) return { error: `expected an integer, got ${describe(value)}` };
    // Up to 15 digits is always a safe integer: no BigInt needed.
    if (value.length <= 15) return Number(value);
  }
  const big = typeof value === 'bigint' ? value : BigInt(value);
  if (big < BIGINT_MIN || big > BIGINT_MAX) return { error: `integer ${String(big).slice(0, 40)} is beyond the range of a BIGINT (±2^63)` };
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : String(big);
}

/**
 * A payload value in its staging form, or a reason why it does not fit the column.
 *
 * `integerText`: the stream schema lets the field hold integers as decimal text (see
 * admitsIntegerText): an integer column stores every digit, a number column (a lake that
 * stored the field as number before) the nearest double, as it did when the source sent one.
 *
 * Whatever the schema, a column also takes the text forms its values read back as (see
 * duck.ts), since storing one loses nothing: an integer column the canonical digits of an
 * integer beyond ±2^53, a number column `NaN`, `Infinity` and `-Infinity` (DuckDB casts them
 * to the DOUBLE values). A field a source adds mid-stream (a column added to a PostgreSQL
 * table) has no declared schema: its column's type is inferred from its first value, and its
 * later values in these forms were quarantined.
 */
function stageValue(value: unknown, type: ColumnType, integerText: boolean): string | number | boolean | null | { error: string } {
  if (value === undefined || value === null) return null;
  switch (type) {
    case 'string':
      return typeof value === 'string' ? value : { error: `expected a string, got ${describe(value)}` };
    case 'integer':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
      if (typeof value === 'bigint' || (typeof value === 'string' && integerText)) return integerValue(value);
      if (typeof value === 'string' && LONG_CANONICAL_INTEGER.test(value)) {
        const staged = integerValue(value);
        // A safe integer as text would read back as a number: not its own form.
        if (typeof staged !== 'number') return staged;
      }
      return { error: `expected an integer, got ${describe(value)}` };
    case 'number':
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      if (typeof value === 'bigint') return Number(value);
      if (typeof value === 'string') {
        if (NON_FINITE_TEXTS.has(value)) return value;
        if (integerText && DECIMAL_INTEGER.test(value)) return Number(value);
      }
      return { error: `expected a number, got ${describe(value)}` };
    case 'boolean':
      return typeof value === 'boolean' ? value : { error: `expected a boolean, got ${describe(value)}` };
    case 'json':
      return jsonText(value);
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = typeof value === 'bigint' ? String(value) : (JSON.stringify(value) ?? String(value));
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

export interface StageCounts {
  written: number;
  replays: number;
  quarantined: number;
  /** Rejected records already in the quarantine (replayed): reported, not stored again. */
  requarantined: number;
}

/** What makes two quarantined records the same one (a replay). */
export function quarantineIdentity(record: unknown): string {
  return hash('sha256', stringifyJson(record) ?? 'undefined', 'base64url');
}

export interface QuarantinedRecord {
  reason: string;
  record: unknown;
}

/**
 * A refused record and its reason as the quarantine stores them (and as the runtime is told
 * the reason): an unpaired UTF-16 surrogate becomes U+FFFD, as in the data files (see
 * `jsonText`). JSON.stringify writes one as a `\udXXX` escape, which DuckDB's JSON reader
 * refuses: one such record (or a reason whose value excerpt was cut inside a surrogate pair)
 * made every query of the `quarantine` view fail. Runs for refused records only; the record
 * is replaced by its JSON form only when that holds such an escape or a bigint.
 */
function quarantineForm(record: unknown, reason: string): QuarantinedRecord {
  const { text, bigints } = jsonTextAllowingBigints(record);
  // A bigint has no JSON form (only an in-process source can send one): stored as its digits, in a string.
  if (bigints) return quarantineForm(JSON.parse(text!) as unknown, reason);
  const stored = text !== undefined && text.includes('\\ud') ? (JSON.parse(jsonText(record)) as unknown) : record;
  return { reason: replaceLoneSurrogates(reason), record: stored };
}

/** A staging table column: an envelope slot or a payload column, in table order. */
type TableColumn = { slot: EnvelopeSlot } | { payload: PayloadColumn };

/**
 * One stream's rows of the current commit, staged in a DuckDB table through an appender
 * (one table row per up to 1024 records, see `EnvelopeSlot`). Not concurrent: the session
 * calls it one batch at a time.
 */
export class StreamStage {
  readonly table: string;
  readonly columns: PayloadColumn[];
  private byField: Map<string, PayloadColumn>;
  private appender: DuckDBAppender | undefined;
  /** Records staged (rows the COPY will write). */
  rows = 0;
  /** Staging-table rows since the last seal (DuckDB rowids). */
  private stagedRows = 0;
  readonly counts: StageCounts = { written: 0, replays: 0, quarantined: 0, requarantined: 0 };
  readonly quarantine: QuarantinedRecord[] = [];
  private readonly derived: Derived;
  /**
   * The staging table's columns in table order (ALTER TABLE appends at the end). Envelope
   * slots that repeat a payload string column are not staged (see Derived); the CDC slots
   * (op, position, txid, before-image, unchanged fields) join when the stream declares or a
   * record carries `_tributary_*` fields, rows staged before that reading their defaults;
   * schema_version is not staged at all: it is constant between widenings (see versionFrom).
   */
  private layout: TableColumn[] = [];
  /**
   * The value arrays of the staging row being filled (one per table column, VALUES_PER_ROW
   * slots each), kept across rows and batches: `encodeColumn` reads the first n values of
   * each and the next row overwrites them; `append` empties them at its end. Allocated per
   * row, they were 66 of the 923 MB a 1M-row sample sync allocated with 2k-record batches;
   * reused, the sync allocates 859 MB (a batch's last, partial row is still copied by
   * `slice` before the join).
   */
  private rowValues: unknown[][] = [];
  /** Staging-table row (DuckDB rowid) from which each schema version applies, in this stage table (a batch starts a new row). */
  private versionFrom: Array<{ row: number; version: number }> = [];
  /**
   * Integer columns this session staged an integer beyond ±2^53 in (as its digits, see
   * stageValue): they do not widen to number (see widensToNumber), since the DOUBLE the
   * staged digits would be cast to at the seal cannot hold them.
   */
  private readonly beyondDouble = new Set<string>();

  constructor(
    private readonly connection: DuckDBConnection,
    index: number,
    readonly mapping: StreamMapping,
    columns: PayloadColumn[],
    /** Current payload schema version; raised by `widen`. */
    public version: number,
    private readonly validate: ((record: RecordData) => string | undefined) | undefined,
    /** Rows already committed by sessions that may be replayed (see LakeState.unclean). */
    private readonly replayWindow: ReplayWindow | undefined,
    /**
     * Called when records bring fields the schema does not have: returns the new version. A
     * field's column there may have another type than the one asked for (another session
     * registered it first, see `evolve`): the records that do not fit it are quarantined.
     */
    private readonly onNewColumns: (added: PayloadColumn[]) => Promise<{ version: number; columns: PayloadColumn[] }>,
    /** The stream declares CDC fields (`_tributary_op`…): stage them from the start. */
    cdc = false,
    /** Identities (quarantineIdentity) of records possibly-replayed sessions already quarantined. */
    private readonly quarantined?: Set<string>,
    /** `validate` refuses any field the schema does not declare: no record brings a new column (see admitsOnlyDeclaredFields). */
    private readonly declaredFieldsOnly = false,
    /** Fields the stream schema declares; the others' column types were inferred from values (see `widensToNumber`). */
    private readonly declared: ReadonlySet<string> = new Set(),
    /** Fields the stream schema lets hold integers as decimal text (see admitsIntegerText, stageValue). */
    private readonly integerText: ReadonlySet<string> = new Set(),
  ) {
    this.table = `stage_${index}`;
    this.columns = columns.map((c) => ({ ...c }));
    this.byField = new Map(this.columns.map((c) => [c.field, c]));
    const stringField = (field: string | undefined): boolean => field !== undefined && this.byField.get(field)?.type === 'string';
    const pk = mapping.primaryKey.length === 1 && mapping.primaryKey[0]!.length === 1 ? mapping.primaryKey[0]![0] : undefined;
    const cursor = mapping.cursorField?.length === 1 ? mapping.cursorField[0] : undefined;
    const derived: Derived = {};
    if (stringField(mapping.eventIdField)) derived.eventId = mapping.eventIdField!;
    if (stringField(pk)) derived.entityKey = pk!;
    if (stringField(mapping.customerIdField)) derived.customerId = mapping.customerIdField;
    if ('field' in mapping.tenant && stringField(mapping.tenant.field)) derived.tenant = mapping.tenant.field;
    if (stringField(cursor)) derived.cursor = cursor!;
    this.derived = derived;
    const slots: EnvelopeSlot[] = [];
    if (!derived.eventId) slots.push('event_id');
    if (!derived.entityKey) slots.push('entity_key');
    if (!derived.customerId) slots.push('customer_id');
    if (!derived.tenant && !('constant' in mapping.tenant)) slots.push('tenant_id');
    slots.push('event_time_ms', 'ingest_time_ms', 'row_count');
    // Any cursor path (a nested one too: only a top-level string column can be derived) gives a position to stage.
    if (mapping.cursorField !== undefined && !derived.cursor) slots.push('source_position');
    if (cdc) {
      for (const slot of CDC_SLOTS) if (!slots.includes(slot)) slots.push(slot);
    } else if (mapping.deletedField !== undefined) {
      // Records marked deleted (`deleted_field`) have an op of their own.
      slots.push('op_code');
    }
    this.layout = [...slots.map((slot) => ({ slot })), ...this.columns.map((payload) => ({ payload }))];
  }

  private has(slot: EnvelopeSlot): boolean {
    return this.layout.some((c) => 'slot' in c && c.slot === slot);
  }

  private columnOf(field: string): string {
    return ident(this.byField.get(field)!.column);
  }

  private versionSql(): string {
    const bounds = this.versionFrom.length > 0 ? this.versionFrom : [{ row: 0, version: this.version }];
    if (bounds.length === 1) return String(bounds[0]!.version);
    return `CASE ${[...bounds].reverse().map((b) => `WHEN rowid >= ${b.row} THEN ${b.version}`).join(' ')} END`;
  }

  /** The SQL of each envelope column, over the staged rows (see `fromSql`). */
  private envelopeSelect(): string[] {
    const d = this.derived;
    const m = this.mapping;
    const has = (slot: EnvelopeSlot): boolean => this.has(slot);
    const col = (slot: EnvelopeSlot): string => ident(slotColumn(slot));
    const ts = epochMsTimestampSql;
    const cursorSql = d.cursor ? this.columnOf(d.cursor) : undefined;
    const position = has('source_position') ? (cursorSql ? `COALESCE(${col('source_position')}, ${cursorSql})` : col('source_position')) : (cursorSql ?? 'NULL::VARCHAR');
    let tenant = col('tenant_id');
    if ('constant' in m.tenant) tenant = constantText(m.tenant.constant);
    else if (d.tenant) tenant = m.tenant.fallback !== undefined ? `COALESCE(NULLIF(${this.columnOf(d.tenant)}, ''), ${literal(m.tenant.fallback)})` : this.columnOf(d.tenant);
    const op = has('op_code')
      ? `CASE CAST(COALESCE(${col('op_code')}, ${OP_CODE[m.defaultOp]}) AS INTEGER) ${OPS.map((o, i) => `WHEN ${i} THEN '${o}'`).join(' ')} END`
      : constantText(m.defaultOp);
    return [
      `${d.eventId ? this.columnOf(d.eventId) : col('event_id')} AS event_id`,
      `${d.entityKey ? this.columnOf(d.entityKey) : col('entity_key')} AS entity_key`,
      `${d.customerId ? this.columnOf(d.customerId) : col('customer_id')} AS customer_id`,
      `${tenant} AS tenant_id`,
      `${ts(col('event_time_ms'))} AS event_time`,
      `${ts(col('ingest_time_ms'))} AS ingest_time`,
      // source_system and stream are constant per stage: written by the COPY, not staged per row.
      `${constantText(m.sourceSystem)} AS source_system`,
      `${constantText(m.stream)} AS stream`,
      `${op} AS op`,
      `CAST(${VERSION_COLUMN} AS INTEGER) AS schema_version`,
      `${position} AS source_position`,
      `${has('source_txid') ? col('source_txid') : 'NULL::VARCHAR'} AS source_txid`,
      `${has('before_image') ? `CAST(${col('before_image')} AS JSON)` : 'NULL::JSON'} AS before_image`,
      `${has('unchanged_fields') ? `CAST(${col('unchanged_fields')} AS JSON)` : 'NULL::JSON'} AS unchanged_fields`,
      // The record's place among those staged in this stage (see INGEST_SEQ_COLUMN): staging row, then place in it.
      `${STAGED_ROW_COLUMN} * ${VALUES_PER_ROW} + ${col('row_count')} AS ${INGEST_SEQ_COLUMN}`,
    ];
  }

  private static nameOf(c: TableColumn): string {
    return 'slot' in c ? slotColumn(c.slot) : c.payload.column;
  }

  /** Staging-table column: the row's values as one string (see encodeColumn), except the per-batch ingest time. */
  private columnDef(c: TableColumn): string {
    return `${ident(StreamStage.nameOf(c))} ${'slot' in c && PER_ROW_SLOTS.has(c.slot) ? 'DOUBLE' : 'VARCHAR'}`;
  }

  /**
   * The staging table `table` as rows: every encoded column split back into its values,
   * side by side (a column added after some rows is NULL there, and unnests as NULLs
   * beside the others), then typed; per-row values (ingest time, schema version) repeat
   * on each of the row's records.
   */
  private fromSql(table: string): string {
    const split: string[] = [];
    const typed: string[] = [];
    for (const c of this.layout) {
      const name = StreamStage.nameOf(c);
      const column = ident(name);
      if ('slot' in c && c.slot === 'row_count') {
        // 0 … n − 1 beside the row's n records: each one's place in its staging row.
        split.push(`unnest(range(CAST(${column} AS BIGINT))) AS ${column}`);
        typed.push(column);
        continue;
      }
      if ('slot' in c && c.slot === 'ingest_time_ms') {
        split.push(column);
        typed.push(column);
        continue;
      }
      const values = `string_split(${column}, chr(30))`;
      const type = 'slot' in c ? SLOT_TYPES[c.slot] : stagingSql(c.payload.type);
      if (type === 'VARCHAR') {
        // Only string columns can need the JSON form; its nulls are JSON nulls, not NULL_MARK.
        const isJson = ident(`_tributary_json_${name}`);
        const tagged = `starts_with(${column}, chr(31) || '[')`;
        split.push(`unnest(CASE WHEN ${tagged} THEN from_json(${column}[2:], '["VARCHAR"]') ELSE ${values} END) AS ${column}`);
        split.push(`${tagged} AS ${isJson}`);
        typed.push(`CASE WHEN ${isJson} THEN ${column} ELSE NULLIF(${column}, chr(31)) END AS ${column}`);
      } else {
        split.push(`unnest(${values}) AS ${column}`);
        typed.push(`CAST(NULLIF(${column}, chr(31)) AS ${type}) AS ${column}`);
      }
    }
    return `(SELECT ${typed.join(', ')}, ${VERSION_COLUMN}, ${STAGED_ROW_COLUMN} FROM (SELECT ${split.join(', ')}, ${this.versionSql()} AS ${VERSION_COLUMN}, rowid AS ${STAGED_ROW_COLUMN} FROM ${table}))`;
  }

  async create(): Promise<void> {
    await this.connection.run(`CREATE TABLE ${this.table} (${this.layout.map((c) => this.columnDef(c)).join(', ')})`);
    this.appender = await this.connection.createAppender(this.table);
  }

  /** The COPY select list (over `fromSql`): the envelope, then the payload columns cast to their Parquet types. */
  private selectList(): string {
    // A payload field stored in its envelope column (see columnsOfSchema) is written by the envelope select.
    const payload = this.columns.filter((c) => !ENVELOPE_NAMES.has(c.column)).map(selectOf);
    return [...this.envelopeSelect(), ...payload].join(', ');
  }

  /** Adds columns to the staging table (rows already staged read NULL). */
  private async addColumns(added: TableColumn[]): Promise<void> {
    if (added.length === 0) return;
    this.appender?.flushSync();
    this.appender?.closeSync();
    this.appender = undefined;
    for (const c of added) await this.connection.run(`ALTER TABLE ${this.table} ADD COLUMN ${this.columnDef(c)}`);
    this.layout.push(...added);
    this.appender = await this.connection.createAppender(this.table);
  }

  /**
   * Hands the staged rows over: the staging table is renamed to `sealedName` (with the
   * select list and FROM clause that write it, captured now since later batches may widen
   * the schema) and an empty staging table with the same columns takes its place.
   */
  async seal(sealedName: string): Promise<{ table: string; select: string; from: string }> {
    const select = this.selectList();
    const from = this.fromSql(sealedName);
    this.appender?.flushSync();
    this.appender?.closeSync();
    this.appender = undefined;
    await this.connection.run(`ALTER TABLE ${this.table} RENAME TO ${sealedName}`);
    await this.connection.run(`CREATE TABLE ${this.table} AS SELECT * FROM ${sealedName} LIMIT 0`);
    this.appender = await this.connection.createAppender(this.table);
    this.rows = 0;
    this.stagedRows = 0;
    this.versionFrom = [];
    return { table: sealedName, select, from };
  }

  /**
   * The rows staged since the last seal as a relation with the envelope's columns (the
   * COPY's select over the staging table; its appender flushed first), or undefined when
   * there are none. For lookups of earlier rows (see delete-attribution.ts).
   */
  stagedRowsSql(): string | undefined {
    if (this.stagedRows === 0) return undefined;
    this.appender?.flushSync();
    return `(SELECT ${this.selectList()} FROM ${this.fromSql(this.table)})`;
  }

  /** The column type of a payload field, if it has a column. */
  typeOf(field: string): ColumnType | undefined {
    return this.byField.get(field)?.type;
  }

  /** The column name of a payload field, if it has a column. */
  payloadColumnOf(field: string): string | undefined {
    return this.byField.get(field)?.column;
  }

  close(): void {
    try {
      this.appender?.closeSync();
    } catch {
      // The connection is being torn down anyway.
    }
    this.appender = undefined;
  }

  /**
   * Fields of `records` the schema has no column for yet, typed by their first non-null
   * value, and whether any record carries CDC fields. A field seen only as null gets no
   * column yet: a column's type is a guess from values, and a guess from nulls alone (JSON)
   * would make the field's real type, once a value or a stream schema shows it, a breaking
   * change. Its nulls lose nothing: rows without the column read it as NULL.
   */
  private scan(records: readonly RecordData[]): { added: PayloadColumn[]; cdc: boolean } {
    const found = new Map<string, PayloadColumn>();
    let cdc = false;
    for (const record of records) {
      if (typeof record !== 'object' || record === null) continue;
      for (const field in record) {
        if (this.byField.has(field) || found.has(field)) continue;
        if (isReservedField(field)) {
          cdc = true;
          continue;
        }
        const value = record[field];
        if (value === null || value === undefined) continue;
        found.set(field, { field, column: columnName(field), type: columnTypeOfValue(value) });
      }
    }
    return { added: [...found.values()], cdc };
  }

  /** Adds columns for fields first seen in records: a new schema version from the next staged row on. */
  private async widen(added: PayloadColumn[]): Promise<void> {
    const next = await this.onNewColumns(added);
    const fresh: TableColumn[] = [];
    for (const column of next.columns) {
      const have = this.byField.get(column.field);
      if (have) {
        // Staged text stays valid across integer → number (a BIGINT's digits cast to DOUBLE at the seal); any other change cannot.
        if (have.column !== column.column || (have.type !== column.type && !(have.type === 'integer' && column.type === 'number'))) {
          // Only new fields reach here (known fields with other types are quarantined) and widened ones, so this cannot happen unless the registry moved.
          throw new TributaryError('fatal', { userMessage: `lake: stream "${this.mapping.stream}": field "${column.field}" changed column mid-sync; restart the sync` });
        }
        have.type = column.type;
        continue;
      }
      const c = { ...column };
      this.columns.push(c);
      this.byField.set(c.field, c);
      fresh.push({ payload: c });
    }
    if (this.versionFrom.length === 0) this.versionFrom.push({ row: 0, version: this.version });
    this.versionFrom.push({ row: this.stagedRows, version: next.version });
    this.version = next.version;
    await this.addColumns(fresh);
  }

  /**
   * The integer column of a field the stream schema does not declare, when `record` holds a
   * number that column cannot (a fraction, or an integer beyond 2^53): its type was a guess
   * from the first values seen, so the column widens to number (integer → number is a
   * compatible change) instead of the record being quarantined. Not a column that already
   * holds an integer beyond ±2^53 from this session (see beyondDouble): widened, that value
   * was stored as the nearest double (its staged digits cast to DOUBLE at the seal), so the
   * record that does not fit is quarantined instead.
   */
  private widensToNumber(record: RecordData): PayloadColumn | undefined {
    for (const column of this.columns) {
      const value = record[column.field];
      if (column.type === 'integer' && !this.declared.has(column.field) && !this.beyondDouble.has(column.field) && typeof value === 'number' && Number.isFinite(value) && !Number.isSafeInteger(value)) return column;
    }
    return undefined;
  }

  /**
   * Whether a record whose event id the replay window holds is a replay: same content as a
   * stored row of that id. Runs only for such records (after a crash, the resume's replayed
   * ones). Payload columns added since the session opened are null in every stored row.
   */
  private isReplay(envelope: Envelope, payload: readonly unknown[]): boolean {
    const window = this.replayWindow!;
    const covered = window.columns.length;
    for (let c = covered; c < this.columns.length; c++) if (payload[c] !== null) return false;
    return window.holds(envelope.eventId, recordFingerprint(envelope, payload, covered));
  }

  /**
   * Stages a batch; returns the records refused (kept in `quarantine` with the reason).
   *
   * The runtime repeats a write that failed with a retryable error, so a failure must leave
   * nothing of the batch behind: before any record is staged or quarantined (new columns are
   * added first), an error passes as it is; after (a widening mid-batch failed, or DuckDB's
   * appender), it becomes `fatal`, since a retry would store those records twice. The sync
   * then stops; the next one resumes from the last checkpoint, and what this session
   * committed of the batch is recognised as a replay.
   *
   * `added`: records the session added to the batch (the deletes of moved keys, see
   * key-moves.ts `addedRecordsOf`), by index. One that cannot be stored is never returned
   * (it has no index in the runtime's batch): it is dropped when `dropIfRefused`, else
   * quarantined with its `context` before the reason and counted in `counts.quarantined`.
   */
  async append(records: readonly RecordData[], ingestMs: number, added?: ReadonlyMap<number, AddedRecord>): Promise<RejectedRecord[]> {
    // Looking for new fields walks every field of every record: skipped when validation already refuses them.
    const { added: newColumns, cdc } = this.declaredFieldsOnly && this.validate ? { added: [], cdc: false } : this.scan(records);
    if (cdc) await this.addColumns(CDC_SLOTS.filter((slot) => !this.has(slot)).map((slot) => ({ slot })));
    if (newColumns.length > 0) await this.widen(newColumns);
    const rows = this.rows;
    const quarantined = this.quarantine.length + this.counts.requarantined;
    try {
      return await this.stageBatch(records, ingestMs, added);
    } catch (error) {
      if (this.rows === rows && this.quarantine.length + this.counts.requarantined === quarantined) throw error;
      throw new TributaryError('fatal', {
        userMessage: `lake: stream "${this.mapping.stream}": staging a batch failed after part of it was staged, so it cannot be retried without storing those records twice; the sync stops (the next one resumes from the last checkpoint)`,
        cause: error,
      });
    }
  }

  /** `append` once the batch's new columns exist. */
  private async stageBatch(records: readonly RecordData[], ingestMs: number, addedRecords: ReadonlyMap<number, AddedRecord> | undefined): Promise<RejectedRecord[]> {
    const rejected: RejectedRecord[] = [];
    const layout = this.layout;
    const width = layout.length;
    const payloadIndex = layout.map((c) => ('payload' in c ? this.columns.indexOf(c.payload) : -1));
    const slotOf = layout.map((c) => ('slot' in c ? c.slot : undefined));
    const payloadCount = this.columns.length;
    const payload: unknown[] = new Array<unknown>(payloadCount);
    const textOk = this.columns.map((c) => this.integerText.has(c.field));
    /**
     * Columns of fields named as Object.prototype's members (`__proto__`, `constructor`,
     * `toString`, …): a record without such a field reads the inherited member there (JSON
     * never makes it a value), which is no value. Decided per column, so other fields pay nothing.
     */
    const inheritedName = this.columns.map((c) => c.field in Object.prototype);
    const { mapping } = this;
    const derivedCursor = this.derived.cursor !== undefined;
    /** Refused records the session added (see `append`) that were quarantined: counted, not returned. */
    let addedQuarantined = 0;
    const quarantine = (stored: QuarantinedRecord): void => {
      // The identity of the stored form: what a later session reads back from the quarantine file.
      if (this.quarantined?.has(quarantineIdentity(stored.record))) this.counts.requarantined++;
      else this.quarantine.push(stored);
    };
    // Runs for refused records only.
    const reject = (index: number, record: unknown, reason: string): void => {
      const added = addedRecords?.get(index);
      if (added !== undefined) {
        if (added.dropIfRefused) return;
        quarantine(quarantineForm(record, `${added.context}: ${reason}`));
        addedQuarantined++;
        return;
      }
      const stored = quarantineForm(record, reason);
      rejected.push({ index, reason: stored.reason });
      quarantine(stored);
    };
    // Filled record after record (the stage copies its values out at once).
    const envelope = emptyEnvelope();
    // The values of the next staging row per column (the per-batch ingest time column stays
    // empty): sized for a whole row, filled by index, reused (see rowValues).
    if (this.rowValues.length !== width) this.rowValues = Array.from({ length: width }, () => new Array<unknown>(VALUES_PER_ROW));
    const cols = this.rowValues;
    let n = 0;
    let chars = 0;
    const stageRow = (): void => {
      if (n === 0) return;
      // One staging row for up to VALUES_PER_ROW records: one native call per column, not per value.
      const appender = this.appender!;
      for (let k = 0; k < width; k++) {
        if (slotOf[k] === 'ingest_time_ms') appender.appendDouble(ingestMs);
        else if (slotOf[k] === 'row_count') appender.appendDouble(n);
        else appender.appendVarchar(encodeColumn(cols[k]!, n));
      }
      appender.endRow();
      this.stagedRows++;
      this.rows += n;
      this.counts.written += n;
      n = 0;
      chars = 0;
    };
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      if (typeof record !== 'object' || record === null || Array.isArray(record)) {
        reject(i, record, 'not a JSON object');
        continue;
      }
      const invalid = this.validate?.(record);
      if (invalid !== undefined) {
        reject(i, record, `does not match the stream schema: ${invalid}`);
        continue;
      }
      const unfit = toEnvelope(record, mapping, ingestMs, envelope);
      if (unfit !== undefined) {
        reject(i, record, unfit);
        continue;
      }
      // A stored row with this id: a replay if its content is the same (see ReplayWindow).
      const storedId = this.replayWindow?.has(envelope.eventId) === true;
      let error: string | undefined;
      for (let c = 0; c < payloadCount; c++) {
        const column = this.columns[c]!;
        const raw = inheritedName[c] && !Object.hasOwn(record, column.field) ? undefined : record[column.field];
        const v = stageValue(raw, column.type, textOk[c]!);
        if (v !== null && typeof v === 'object') {
          error = `field "${column.field}": ${v.error}`;
          break;
        }
        if (typeof v === 'string') {
          chars += v.length;
          // Digits beyond ±2^53 (strings are rare in an integer column): see beyondDouble.
          if (column.type === 'integer') this.beyondDouble.add(column.field);
        }
        payload[c] = v;
      }
      if (error !== undefined) {
        const widening = this.widensToNumber(record);
        if (widening !== undefined) {
          // Rows staged so far keep their version: the widening applies from the next staging row, where this record is staged again.
          stageRow();
          await this.widen([{ ...widening, type: 'number' }]);
          i--;
          continue;
        }
        reject(i, record, error);
        continue;
      }
      if (storedId && this.isReplay(envelope, payload)) {
        this.counts.replays++;
        continue;
      }
      // A position that only repeats the (staged) cursor column is not staged twice.
      const position = derivedCursor && record._tributary_position === undefined ? null : envelope.position;
      for (let k = 0; k < width; k++) {
        const col = cols[k]!;
        const slot = slotOf[k];
        if (slot === undefined) {
          col[n] = payload[payloadIndex[k]!];
          continue;
        }
        switch (slot) {
          case 'event_id': col[n] = envelope.eventId; break;
          case 'entity_key': col[n] = envelope.entityKey; break;
          case 'customer_id': col[n] = envelope.customerId; break;
          case 'tenant_id': col[n] = envelope.tenantId; break;
          case 'event_time_ms': col[n] = envelope.eventTimeMs; break;
          case 'ingest_time_ms':
          case 'row_count':
            break;
          case 'op_code': col[n] = OP_CODE[envelope.op]; break;
          case 'source_position': col[n] = position; break;
          case 'source_txid': col[n] = envelope.txid; break;
          case 'before_image': col[n] = envelope.before; break;
          case 'unchanged_fields': col[n] = envelope.unchanged; break;
        }
      }
      if (envelope.before !== null) chars += envelope.before.length;
      if (++n === VALUES_PER_ROW || chars >= CHARS_PER_ROW) stageRow();
    }
    stageRow();
    // Between batches the arrays hold no values: a row of large text (up to CHARS_PER_ROW)
    // is not kept alive until the next batch overwrites it.
    for (const col of cols) col.fill(undefined);
    this.counts.quarantined += rejected.length + addedQuarantined;
    return rejected;
  }
}
