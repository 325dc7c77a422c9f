import { TributaryError, type JsonSchemaObject } from '@tributary/core';
import { streamDir } from './layout.js';
import type { LakeStore } from './storage/store.js';

/** The envelope columns every row carries, in file order. Payload columns follow them. */
export const ENVELOPE_COLUMNS = [
  'event_id',
  'entity_key',
  'customer_id',
  'tenant_id',
  'event_time',
  'ingest_time',
  'source_system',
  'stream',
  'op',
  'schema_version',
  'source_position',
  'source_txid',
  'before_image',
  'unchanged_fields',
  // Arrival order within one ingest time (see row-order.ts); never a payload column's name (those never start `_tributary_`).
  '_tributary_ingest_seq',
] as const;
const RESERVED = new Set<string>([...ENVELOPE_COLUMNS, 'event_date', 'event_month']);

/** Parquet type of a payload column. `json`: objects, arrays and mixed types, stored as JSON text (DuckDB type JSON). */
export type ColumnType = 'string' | 'integer' | 'number' | 'boolean' | 'json';

export interface PayloadColumn {
  /** Record field. */
  field: string;
  /** Parquet column: the field name, `payload_<field>` when it collides with an envelope column, `<field>__v<n>` after a breaking change mapped to a new column. */
  column: string;
  type: ColumnType;
}

export interface SchemaVersion {
  version: number;
  at: string;
  columns: PayloadColumn[];
  /**
   * The payload's JSON Schema at this version (draft-07), keyed by record field: what a
   * consumer validates a row's payload against. Derived from `columns`; `json` columns
   * accept any JSON value. Every field is optional (a column added later reads as null in
   * older files). Versions written before this field existed lack it.
   */
  jsonSchema?: JsonSchemaObject;
  /** What changed from the previous version, for people reading the registry. */
  change: string;
}

/** `_tributary/schemas/<stream>.json`: every payload schema version of one stream. */
export interface StreamSchemaHistory {
  stream: string;
  versions: SchemaVersion[];
}

/** The stream's registry file, named like its data directory (see MAX_STREAM_NAME_BYTES). */
export const schemaKey = (stream: string): string => `_tributary/schemas/${streamDir(stream)}.json`;

/**
 * Where the versions of a stream are claimed: one object per version number, created only if
 * absent (see `claimVersion`). The registry file (`schemaKey`) is a summary written at each
 * commit with a plain write; two sessions open at once could each add a version 2 and the
 * last summary written lost the other's, so that the rows written with it lost that field
 * in the payloads the library rebuilt. A version's claim is what it is.
 */
const versionsPrefix = (stream: string): string => `_tributary/schemas/versions/${streamDir(stream)}/`;
const versionKey = (stream: string, version: number): string => `${versionsPrefix(stream)}${String(version).padStart(10, '0')}.json`;

/**
 * Every schema version of `stream`: the registry file's, and those claimed since it was
 * written (read only for versions it does not hold: each version's definition in the file is
 * its claim's, since writers only ever hold claimed versions).
 */
export async function loadSchemaHistory(store: LakeStore, stream: string): Promise<StreamSchemaHistory> {
  const bytes = await store.get(schemaKey(stream));
  const history: StreamSchemaHistory = bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as StreamSchemaHistory) : { stream, versions: [] };
  const held = new Set(history.versions.map((v) => v.version));
  let added = false;
  for (const key of await store.list(versionsPrefix(stream))) {
    const number = Number(key.slice(key.lastIndexOf('/') + 1, -'.json'.length));
    if (held.has(number)) continue;
    const claim = await store.get(key);
    if (!claim) continue;
    history.versions.push(JSON.parse(new TextDecoder().decode(claim)) as SchemaVersion);
    added = true;
  }
  if (added) history.versions.sort((a, b) => a.version - b.version);
  return history;
}

/**
 * Claims a new version of `stream`'s schema: true when this writer created it, false when
 * another writer claimed that version number first (load the history again and evolve on top
 * of it). Claimed before any row with that version is staged, so a version number is never
 * used with two meanings.
 */
export function claimVersion(store: LakeStore, stream: string, version: SchemaVersion): Promise<boolean> {
  return store.createIfAbsent(versionKey(stream, version.version), JSON.stringify(version, null, 1));
}

export async function saveSchemaHistory(store: LakeStore, history: StreamSchemaHistory): Promise<void> {
  await store.put(schemaKey(history.stream), JSON.stringify(history, null, 1));
}

/** The JSON types a property schema allows, `null` left out. */
function nonNullTypes(schema: unknown): unknown[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const raw = (schema as { type?: unknown }).type;
  return (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((t) => t !== 'null');
}

/** Texts a decimal-integer pattern must accept, and texts it must refuse (see admitsIntegerText). */
const INTEGER_TEXTS = ['0', '-1', '9007199254740993', '-9223372036854775808'];
const NOT_INTEGER_TEXTS = ['', 'abc', '1.5', '1e3', ' 1', '1 ', '+-1', '0x1f'];

/**
 * Whether a property schema holds integers given as JSON numbers or as decimal text: type
 * `integer` and `string` (and `null`), with a `pattern` that limits the strings to decimal
 * integers (`^-?[0-9]+$` or any spelling that accepts and refuses what that one does on
 * INTEGER_TEXTS / NOT_INTEGER_TEXTS). Sources declare it for integers a double cannot always
 * hold (PostgreSQL int8, Salesforce Number(18,0)): beyond ±2^53 they send the digits. Such a
 * field gets a BIGINT column, not a JSON one.
 */
export function admitsIntegerText(schema: unknown): boolean {
  const types = nonNullTypes(schema);
  if (types.length !== 2 || !types.includes('integer') || !types.includes('string')) return false;
  const regex = patternOf(schema);
  return regex !== undefined && INTEGER_TEXTS.every((t) => regex.test(t)) && !NOT_INTEGER_TEXTS.some((t) => regex.test(t));
}

/** The texts a double has no JSON number for, as sources send them and the lake's readers return them (see duck.ts). */
export const NON_FINITE_TEXTS: ReadonlySet<string> = new Set(['NaN', 'Infinity', '-Infinity']);
const FINITE_TEXTS = ['', '1.5', '0', 'nan', 'inf', 'abc', 'Infinityx'];

/**
 * Whether a property schema holds doubles given as JSON numbers or, for the values JSON has
 * no number for, as `NaN`, `Infinity`, `-Infinity`: type `number` and `string` (and `null`),
 * with a `pattern` that accepts exactly those three texts (as the PostgreSQL source declares
 * float4/float8). Such a field gets a DOUBLE column, not a JSON one.
 */
export function admitsNonFiniteText(schema: unknown): boolean {
  const types = nonNullTypes(schema);
  if (types.length !== 2 || !types.includes('number') || !types.includes('string')) return false;
  const regex = patternOf(schema);
  return regex !== undefined && [...NON_FINITE_TEXTS].every((t) => regex.test(t)) && !FINITE_TEXTS.some((t) => regex.test(t));
}

function patternOf(schema: unknown): RegExp | undefined {
  const pattern = (schema as { pattern?: unknown }).pattern;
  if (typeof pattern !== 'string') return undefined;
  try {
    return new RegExp(pattern, 'u');
  } catch {
    return undefined;
  }
}

/** The column type a JSON Schema property maps to. */
export function columnTypeOf(schema: unknown): ColumnType {
  if (typeof schema !== 'object' || schema === null) return 'json';
  const types = nonNullTypes(schema);
  if (types.length === 1) {
    const [t] = types;
    if (t === 'string' || t === 'integer' || t === 'number' || t === 'boolean') return t;
    return 'json';
  }
  if (types.length === 2 && types.includes('integer') && types.includes('number')) return 'number';
  if (admitsIntegerText(schema)) return 'integer';
  if (admitsNonFiniteText(schema)) return 'number';
  return 'json';
}

/** The type of a field first seen in a record (not declared by the stream schema). */
export function columnTypeOfValue(value: unknown): ColumnType {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'bigint') return 'integer';
  return 'json';
}

/**
 * The CDC fields sources add to records (see the PostgreSQL source): the envelope takes them
 * (op, position, txid, commit time, before-image, unchanged columns) and they get no payload
 * column. Any other field, `_tributary_`-prefixed or not, is payload (`columnName` gives a
 * `_tributary_…` one the column `payload__tributary_…`).
 */
export const CDC_FIELDS: ReadonlySet<string> = new Set(['_tributary_op', '_tributary_position', '_tributary_txid', '_tributary_commit_time', '_tributary_before', '_tributary_unchanged']);

export function isReservedField(field: string): boolean {
  return CDC_FIELDS.has(field);
}

/**
 * The column a payload field would like: its name, or `payload_<name>` when an envelope or
 * partition column has that name in any letter case (DuckDB's column names, and the
 * matching of Parquet columns by name, ignore case), when it is empty (no column can be),
 * or when it starts like the lake's internal columns (`_tributary_`, any case). The column
 * it gets is this, made unique: see `uniqueColumn`.
 */
export function columnName(field: string): string {
  const lower = field.toLowerCase();
  return RESERVED.has(lower) || field === '' || lower.startsWith('_tributary_') ? `payload_${field}` : field;
}

/**
 * `preferred`, or `preferred__2`, `__3`… — the first whose lower case is not in `taken`
 * (which then gets it): a field named like another field's column but for letter case
 * (`Email` and `email`) gets a column of its own.
 */
function uniqueColumn(preferred: string, taken: Set<string>): string {
  let column = preferred;
  for (let n = 2; taken.has(column.toLowerCase()); n++) column = `${preferred}__${n}`;
  taken.add(column.toLowerCase());
  return column;
}

/**
 * Columns a stream's JSON Schema declares. `carried`: string fields the envelope column of
 * the same name holds unchanged (the mapping takes event_id, customer_id or tenant_id from
 * them): they are stored once, in the envelope column, which the registry records as
 * their column.
 */
export function columnsOfSchema(jsonSchema: JsonSchemaObject, carried: ReadonlySet<string> = new Set()): PayloadColumn[] {
  const properties = (jsonSchema.properties ?? {}) as Record<string, unknown>;
  // Lower-case names no payload column may take: the envelope and partition columns (RESERVED is lower case), then those given.
  const taken = new Set(RESERVED);
  return Object.entries(properties)
    .filter(([field]) => !isReservedField(field))
    .map(([field, s]) => {
      const type = columnTypeOf(s);
      return { field, column: carried.has(field) && type === 'string' ? field : uniqueColumn(columnName(field), taken), type };
    });
}

/**
 * A field named like an envelope column moving between its payload column (`payload_<name>`,
 * or `payload_<name>__<n>` when another field had that name) and the envelope column (the
 * mapping changed).
 */
function isCarryMove(field: string, from: string, to: string): boolean {
  const prefix = `payload_${field}`;
  const place = (column: string): boolean => column === field || column === prefix || (column.startsWith(`${prefix}__`) && /^[0-9]+$/.test(column.slice(prefix.length + 2)));
  return RESERVED.has(field) && from !== to && place(from) && place(to);
}

/** Lower-case column names no column of `field` may take: the envelope's, and every other field's in any version. */
function columnsOfOthers(history: StreamSchemaHistory, field: string): Set<string> {
  const taken = new Set(RESERVED);
  for (const v of history.versions) for (const c of v.columns) if (c.field !== field) taken.add(c.column.toLowerCase());
  return taken;
}

/** Decimal integer text: how sources send, and the lake's readers return, integers beyond ±2^53. */
export const INTEGER_TEXT_PATTERN = '^-?[0-9]+$';

const JSON_TYPE: Record<ColumnType, JsonSchemaObject> = {
  string: { type: ['string', 'null'] },
  // Readers return a BIGINT beyond ±2^53 as its digits (see reader.ts).
  integer: { type: ['integer', 'string', 'null'], pattern: INTEGER_TEXT_PATTERN },
  // Readers return NaN and ±infinity as text (see duck.ts).
  number: { type: ['number', 'string', 'null'], pattern: '^(NaN|Infinity|-Infinity)$' },
  boolean: { type: ['boolean', 'null'] },
  json: {},
};

/** The JSON Schema of a version's payload (see `SchemaVersion.jsonSchema`). */
export function payloadJsonSchema(columns: readonly PayloadColumn[]): JsonSchemaObject {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: Object.fromEntries(columns.map((c) => [c.field, { ...JSON_TYPE[c.type] }])),
  };
}

/** integer → number is a widening readers can union (BIGINT and DOUBLE unify to DOUBLE). */
function compatible(from: ColumnType, to: ColumnType): boolean {
  return from === to || (from === 'integer' && to === 'number');
}

export type BreakingMode = 'fail' | 'new_column';

/**
 * Where the types of the columns handed to `evolve` come from: `declared` by the stream's
 * JSON Schema, or `inferred` from the first value of a field it does not declare (see
 * columnTypeOfValue), which is a guess.
 */
export type ColumnOrigin = 'declared' | 'inferred';

/**
 * The next version when `wanted` differs from the latest one, else undefined. New fields
 * are added as optional columns (files written from now on have the wider schema; older
 * files read as NULL for them). Fields that disappear keep their column (NULL from now on).
 * A type change that readers cannot union is breaking: refused (`fail`) or mapped to a new
 * column `<field>__v<version>` (`new_column`); old rows keep the old column, never rewritten.
 * integer → number widens the column; integer wanted for a number column, or any type for a json
 * column, keeps the column as it is. A type `inferred` for a field that already has a column
 * keeps that column too, unless it widens integer → number: a guess is never a breaking change.
 */
export function evolve(history: StreamSchemaHistory, wanted: readonly PayloadColumn[], mode: BreakingMode, origin: ColumnOrigin): SchemaVersion | undefined {
  const latest = history.versions[history.versions.length - 1];
  const version = (latest?.version ?? 0) + 1;
  if (!latest) return { version, at: new Date().toISOString(), columns: [...wanted], jsonSchema: payloadJsonSchema(wanted), change: 'initial schema' };
  const columns = latest.columns.map((c) => ({ ...c }));
  const byField = new Map(columns.map((c) => [c.field, c]));
  // Names a new column may not take: the envelope's, and every column of every version (files of all versions are read together, matched by name).
  const taken = new Set(RESERVED);
  for (const v of history.versions) for (const c of v.columns) taken.add(c.column.toLowerCase());
  const changes: string[] = [];
  for (const w of wanted) {
    const have = byField.get(w.field);
    if (!have) {
      const carriedColumn = RESERVED.has(w.column) && w.column === w.field;
      const column = { ...w, column: carriedColumn ? w.column : uniqueColumn(w.column, taken) };
      columns.push(column);
      byField.set(w.field, column);
      changes.push(`added ${w.field} (${w.type})`);
    } else if (origin === 'inferred' && !(have.type === 'integer' && w.type === 'number')) {
      // A session infers types only for fields it has no column for (or widens one it knows
      // to number, see StreamStage.widensToNumber): this field's column was registered by
      // another session open at the same time, while this one guessed from its own first
      // value (and lost the claim of the version, see claimVersion). A guess is no reason to
      // fail the sync or to move the field to a new column: the column stays as it is, and
      // the stage quarantines the values that do not fit it, with the reason it gives when it
      // knows the column from the start (one session, or sessions one after another).
      continue;
    } else if (have.type === w.type && isCarryMove(w.field, have.column, w.column)) {
      // Back to `payload_<name>`: that name may be another field's column by now (a field
      // literally named `payload_customer_id`), and two fields in one column failed the
      // session's staging table: it gets the next free name, as a new column does.
      const column = w.column === w.field ? w.column : uniqueColumn(`payload_${w.field}`, columnsOfOthers(history, w.field));
      if (column !== have.column) {
        taken.add(column.toLowerCase());
        changes.push(`${w.field} now stored in column ${column}`);
        have.column = column;
      }
    } else if (have.type !== w.type) {
      if (have.type === 'number' && w.type === 'integer') {
        // Narrowed back (a schema inferred from sampled values): integers fit the number column, whose files already hold fractions.
        continue;
      } else if (have.type === 'json') {
        // A JSON column holds any value as its JSON text: a field the source now types more
        // narrowly keeps it (fields stored as JSON before the lake knew integer text, see
        // admitsIntegerText; a source narrowing a union to string) instead of breaking the sync.
        continue;
      } else if (compatible(have.type, w.type)) {
        changes.push(`widened ${w.field} ${have.type} → ${w.type}`);
        have.type = w.type;
      } else if (mode === 'new_column') {
        const column = uniqueColumn(`${w.field}__v${version}`, taken);
        changes.push(`${w.field} changed ${have.type} → ${w.type}: now written to ${column}`);
        have.column = column;
        have.type = w.type;
      } else {
        throw new TributaryError('config', {
          userMessage:
            `Breaking schema change in stream "${history.stream}": field "${w.field}" was ${have.type} (schema version ${latest.version}) and is now ${w.type}. ` +
            'Files already in the lake cannot be read with the new type. Rename the field at the source, or set on_breaking_change: new_column to write it to a new versioned column.',
        });
      }
    }
  }
  if (changes.length === 0) return undefined;
  return { version, at: new Date().toISOString(), columns, jsonSchema: payloadJsonSchema(columns), change: changes.join('; ') };
}
