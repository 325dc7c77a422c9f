import type pg from 'pg';

/**
 * PostgreSQL types → JSON values and JSON Schema, without loss.
 *
 * Both read paths (snapshot queries and pgoutput) deliver values as text, in the session
 * settings fixed in `connection.ts`; one converter per type turns that text into the same
 * JSON value on both paths, so a row read by the snapshot equals the same row streamed later.
 *
 * | PostgreSQL | JSON | why |
 * | --- | --- | --- |
 * | bool | boolean | |
 * | int2, int4, oid | integer | exact in a double |
 * | int8 | integer, or a decimal string beyond ±2^53 | a double cannot hold every int8 |
 * | float4, float8 | number, or "NaN"/"Infinity"/"-Infinity" (declared as a pattern) | JSON has no such numbers |
 * | numeric | string (the exact decimal) | beyond double precision |
 * | json, jsonb | the parsed JSON value; numbers in it as doubles | records are JS values written out with JSON.stringify |
 * | bytea | base64 string | |
 * | timestamptz | ISO-8601 string in UTC with microseconds (`…Z`), BC values with a trailing ` BC` | a JS Date keeps milliseconds only |
 * | timestamp | ISO-8601 string without zone, BC values with a trailing ` BC` | |
 * | date | `YYYY-MM-DD`, BC values with a trailing ` BC` (as printed) | |
 * | time, timetz, interval (ISO 8601), uuid, enums, text… | string | |
 * | arrays of any of these | arrays (nested for several dimensions) | |
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type Converter = (text: string) => JsonValue;
export type JsonSchema = Record<string, unknown>;

interface TypeInfo {
  oid: number;
  name: string;
  /** `typtype`: b base, e enum, d domain, c composite, r range, m multirange, p pseudo. */
  kind: string;
  category: string;
  elem: number;
  base: number;
  delim: string;
}

const BUILTIN: Record<number, string> = {
  16: 'bool',
  17: 'bytea',
  20: 'int8',
  21: 'int2',
  23: 'int4',
  26: 'oid',
  114: 'json',
  700: 'float4',
  701: 'float8',
  1082: 'date',
  1114: 'timestamp',
  1184: 'timestamptz',
  1700: 'numeric',
  2950: 'uuid',
  3802: 'jsonb',
};

/** What the registry knows about the server's types (loaded from pg_type, reloaded on demand). */
export class TypeRegistry {
  private readonly types = new Map<number, TypeInfo>();
  private readonly converters = new Map<number, Converter>();
  private readonly byteConverters = new Map<number, ByteConverter>();

  static async load(client: pg.Client): Promise<TypeRegistry> {
    const registry = new TypeRegistry();
    await registry.reload(client);
    return registry;
  }

  async reload(client: pg.Client): Promise<void> {
    const result = await client.query<{
      oid: string;
      typname: string;
      typtype: string;
      typcategory: string;
      typelem: string;
      typbasetype: string;
      typdelim: string;
    }>(`SELECT oid, typname, typtype, typcategory, typelem, typbasetype, typdelim FROM pg_type WHERE typtype <> 'p'`);
    for (const row of result.rows) {
      const oid = Number(row.oid);
      this.types.set(oid, {
        oid,
        name: row.typname,
        kind: row.typtype,
        category: row.typcategory,
        elem: Number(row.typelem),
        base: Number(row.typbasetype),
        delim: row.typdelim,
      });
    }
    this.converters.clear();
    this.byteConverters.clear();
  }

  has(oid: number): boolean {
    return this.types.has(oid);
  }

  /** The base type of a domain (followed through nested domains), else the type itself. */
  private resolve(oid: number): TypeInfo | undefined {
    let info = this.types.get(oid);
    for (let i = 0; info && info.kind === 'd' && i < 10; i++) info = this.types.get(info.base);
    return info;
  }

  private arrayElement(info: TypeInfo | undefined): TypeInfo | undefined {
    return info && info.category === 'A' && info.elem !== 0 ? info : undefined;
  }

  converter(oid: number): Converter {
    let converter = this.converters.get(oid);
    if (!converter) {
      const info = this.resolve(oid);
      const array = this.arrayElement(info);
      if (array) {
        const element = this.converter(array.elem);
        const delim = this.types.get(array.elem)?.delim ?? ',';
        converter = (text) => mapArray(parseArrayLiteral(text, delim), element);
      } else {
        converter = scalarConverter(BUILTIN[info?.oid ?? oid] ?? 'text');
      }
      this.converters.set(oid, converter);
    }
    return converter;
  }

  /**
   * The inverse of `converter(oid)`: a JSON value back to the text PostgreSQL reads as that
   * type, for positions sent back to the server (keyset and cursor parameters). A value must
   * compare exactly like the row it came from, or a resumed read skips or repeats rows.
   */
  textOf(oid: number): (value: JsonValue) => string | null {
    const info = this.resolve(oid);
    const array = this.arrayElement(info);
    if (array) {
      // Arrays come out as JSON arrays (see `converter`): back to an array literal, each
      // element in its own type's text form (as JSON, '["a"]' is no array literal).
      const element = this.textOf(array.elem);
      const delim = this.types.get(array.elem)?.delim ?? ',';
      const literal = (value: JsonValue): string =>
        Array.isArray(value)
          ? `{${value.map((v) => (Array.isArray(v) ? literal(v) : quoteArrayElement(v === null ? null : element(v)))).join(delim)}}`
          : (jsonText(value) ?? 'NULL');
      return (value) => (value === null ? null : literal(value));
    }
    const name = BUILTIN[info?.oid ?? oid];
    // A JSON value goes out as JSON: the JSON null is 'null' (not SQL NULL, which compares
    // with nothing), and a JSON string keeps its quotes.
    if (name === 'json' || name === 'jsonb') return (value) => JSON.stringify(value);
    if (name !== 'bytea') return jsonText;
    // bytea goes out as base64 (see `converter`); as text the server would take those
    // characters for the bytes themselves.
    return (value) => (typeof value === 'string' ? `\\x${Buffer.from(value, 'base64').toString('hex')}` : jsonText(value));
  }

  /** The converter of `oid` reading COPY text bytes (same results as `converter`). */
  byteConverter(oid: number): ByteConverter {
    let converter = this.byteConverters.get(oid);
    if (!converter) {
      const info = this.resolve(oid);
      const text = this.converter(oid);
      converter = this.arrayElement(info) ? (buf, start, end) => text(utf8(buf, start, end)) : byteConverterOf(BUILTIN[info?.oid ?? oid] ?? 'text', text);
      this.byteConverters.set(oid, converter);
    }
    return converter;
  }

  jsonSchema(oid: number): JsonSchema {
    const info = this.resolve(oid);
    const array = this.arrayElement(info);
    if (array) {
      const items = this.jsonSchema(array.elem);
      // Elements may be NULL, and arrays may nest (several dimensions share one type).
      return { type: ['array', 'null'], items: { anyOf: [withNull(items), { type: 'array' }] } };
    }
    const name = BUILTIN[info?.oid ?? oid];
    const schema = scalarSchema(name ?? 'text');
    if (info?.kind === 'e') return { ...schema, description: `enum ${info.name}` };
    return schema;
  }

  /** The SQL type name of an oid (for casts in generated queries). */
  typeName(oid: number): string | undefined {
    return this.types.get(oid)?.name;
  }
}

/** A JSON value as the text of a scalar parameter (strings as they are, objects as JSON). */
function jsonText(value: JsonValue): string | null {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** One element of an array literal: NULL, or the text double-quoted (quotes and backslashes escaped). */
function quoteArrayElement(text: string | null): string {
  return text === null ? 'NULL' : `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function withNull(schema: JsonSchema): JsonSchema {
  const type = schema.type;
  if (type === undefined) return schema;
  const types = Array.isArray(type) ? type : [type];
  return types.includes('null') ? schema : { ...schema, type: [...types, 'null'] };
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/**
 * The strings an int8 value can be: decimal digits. Declared in its schema (with the union
 * type) so that destinations know the text is an integer (the lake stores a BIGINT).
 */
const DECIMAL_INTEGER_PATTERN = '^-?[0-9]+$';
/**
 * The strings a float4/float8 value can be: the values JSON has no number for. Declared in its
 * schema so that the strings are known to be these three (a JSON Schema `pattern` applies to
 * strings only): without it the union allowed any text, and destinations could only store the
 * column as JSON.
 */
const NON_FINITE_FLOAT_PATTERN = '^(NaN|Infinity|-Infinity)$';
const identity: Converter = (t) => t;

function scalarConverter(name: string): Converter {
  switch (name) {
    case 'bool':
      return (t) => t === 't' || t === 'true';
    case 'int2':
    case 'int4':
    case 'oid':
      return (t) => Number(t);
    case 'int8':
      return (t) => {
        if (t.length < 16) return Number(t);
        const big = BigInt(t);
        return big <= MAX_SAFE && big >= -MAX_SAFE ? Number(big) : t;
      };
    case 'float4':
    case 'float8':
      return (t) => {
        const n = Number(t);
        return Number.isFinite(n) ? n : t;
      };
    case 'json':
    case 'jsonb':
      return (t) => JSON.parse(t) as JsonValue;
    case 'bytea':
      return (t) => (t.startsWith('\\x') ? Buffer.from(t.slice(2), 'hex').toString('base64') : Buffer.from(unescapeBytea(t)).toString('base64'));
    case 'timestamptz':
      return timestamptzToIso;
    case 'timestamp':
      return timestampToIso;
    default:
      return identity;
  }
}

/**
 * Numbers inside json/jsonb values are parsed as doubles: PostgreSQL keeps any number of digits
 * (jsonb stores numeric), but a record is a JS value that destinations write with
 * JSON.stringify, and Node 20 has no way to write a number with more digits than a double
 * holds (no JSON.rawJSON). Turning only such numbers into strings would keep the digits but
 * change the value's type inside the document, silently, for a reader that expects a number.
 * So the limit is kept, and stated in the column's schema.
 */
const JSON_NUMBER_LIMIT =
  "; numbers inside are read as IEEE-754 double precision: digits beyond a double's (about 15-17 significant, e.g. 12345678901234567890 or 0.1000000000000000055511151231257827) are not kept";

function scalarSchema(name: string): JsonSchema {
  switch (name) {
    case 'bool':
      return { type: ['boolean', 'null'] };
    case 'int2':
    case 'int4':
    case 'oid':
      return { type: ['integer', 'null'] };
    case 'int8':
      return { type: ['integer', 'string', 'null'], pattern: DECIMAL_INTEGER_PATTERN, description: 'int8: an integer, or a decimal string beyond ±2^53' };
    case 'float4':
    case 'float8':
      return { type: ['number', 'string', 'null'], pattern: NON_FINITE_FLOAT_PATTERN, description: 'a number, or "NaN", "Infinity", "-Infinity"' };
    case 'numeric':
      return { type: ['string', 'null'], description: 'numeric: the exact decimal as a string' };
    case 'json':
    case 'jsonb':
      return { description: `${name}: the JSON value${JSON_NUMBER_LIMIT}` };
    case 'bytea':
      return { type: ['string', 'null'], contentEncoding: 'base64' };
    case 'timestamptz':
      return { type: ['string', 'null'], airbyte_type: 'timestamp_with_timezone', description: 'ISO-8601 in UTC, microseconds kept; BC values end with " BC"' };
    case 'timestamp':
      return { type: ['string', 'null'], airbyte_type: 'timestamp_without_timezone', description: 'ISO-8601 without zone; BC values end with " BC"' };
    case 'date':
      return { type: ['string', 'null'], description: 'date (YYYY-MM-DD; BC values end with " BC")' };
    case 'uuid':
      return { type: ['string', 'null'], description: 'uuid' };
    default:
      return { type: ['string', 'null'] };
  }
}

/**
 * `2024-05-01 10:00:00.123456+00` → `2024-05-01T10:00:00.123456Z` (sessions run in UTC, so
 * the server prints every value with offset +00). A BC value takes the same form followed by
 * ` BC`, as Airbyte's well-known types write the era (`4713-01-01 00:00:00+00 BC` →
 * `4713-01-01T00:00:00Z BC`); a year beyond 9999 keeps its digits; `infinity` and
 * `-infinity` (no space) pass as they are. An offset other than +00 (not printed in a UTC
 * session) becomes `±hh:mm`.
 */
export function timestamptzToIso(text: string): string {
  const space = text.indexOf(' ');
  if (space < 0) return text;
  const bc = text.endsWith(' BC');
  const end = bc ? text.length - 3 : text.length;
  // The offset starts at the last sign: the time before it has none.
  let sign = end - 1;
  while (sign > space && text[sign] !== '+' && text[sign] !== '-') sign--;
  if (sign === space) return text;
  const offset = text.slice(sign, end);
  const zone = offset === '+00' ? 'Z' : offset.length === 3 ? `${offset}:00` : offset;
  return `${text.slice(0, space)}T${text.slice(space + 1, sign)}${zone}${bc ? ' BC' : ''}`;
}

/**
 * `2024-05-01 10:00:00.123456` → `2024-05-01T10:00:00.123456`; a BC value keeps its trailing
 * ` BC` (`0044-03-15T12:00:00 BC`), a year beyond 9999 its digits; `infinity` and
 * `-infinity` pass as they are.
 */
export function timestampToIso(text: string): string {
  const space = text.indexOf(' ');
  return space < 0 ? text : `${text.slice(0, space)}T${text.slice(space + 1)}`;
}

function unescapeBytea(text: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') {
      if (text[i + 1] === '\\') {
        bytes.push(92);
        i++;
      } else {
        bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
        i += 3;
      }
    } else bytes.push(text.charCodeAt(i));
  }
  return Uint8Array.from(bytes);
}

type RawArray = Array<string | null | RawArray>;

/**
 * Parses an array literal (`{1,2,"a b",NULL,{…}}`, optionally with `[l:u]=` bounds) into text
 * elements. `int2vector` and `oidvector` (array types printed without braces: `1 2 3`) give
 * their space-separated elements. Text that ends inside an element or list is refused: the
 * scan never runs past the end (it looped forever on `1 2`, blocking the process).
 */
export function parseArrayLiteral(text: string, delim = ','): RawArray {
  let i = 0;
  if (text[0] === '[') {
    const eq = text.indexOf('=');
    i = eq + 1;
  }
  if (text[i] !== '{') {
    const vector = text.trim();
    return vector === '' ? [] : vector.split(/\s+/);
  }
  const malformed = (): never => {
    throw new Error(`malformed array literal: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`);
  };
  const parse = (): RawArray => {
    const out: RawArray = [];
    i++; // '{'
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      if (text[i] === '{') out.push(parse());
      else if (text[i] === '"') {
        let value = '';
        i++;
        while (text[i] !== '"') {
          if (text[i] === '\\') i++;
          if (i >= text.length) malformed();
          value += text[i];
          i++;
        }
        i++;
        out.push(value);
      } else {
        let end = i;
        while (text[end] !== delim && text[end] !== '}') if (++end >= text.length) malformed();
        const raw = text.slice(i, end).trim();
        out.push(raw.toUpperCase() === 'NULL' ? null : raw);
        i = end;
      }
      if (text[i] === delim) {
        i++;
        continue;
      }
      i++; // '}'
      return out;
    }
  };
  return parse();
}

function mapArray(values: RawArray, element: Converter): JsonValue[] {
  return values.map((v) => (v === null ? null : Array.isArray(v) ? mapArray(v, element) : element(v)));
}

/**
 * A converter reading a COPY text field straight from the message bytes (`buf[start, end)`),
 * for the snapshot's hot loop: the common types are decoded without an intermediate string.
 * It must return exactly what the text `Converter` of the same type returns for the same
 * field (a snapshot row equals the streamed row). Escaped fields (and NULLs) never reach it:
 * they take the text path. It may overwrite the bytes of its own field: the line is a view
 * into `pg`'s receive buffer that is read once, field by field, and then dropped.
 */
export type ByteConverter = (buf: Buffer, start: number, end: number) => JsonValue;

interface SliceBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

const utf8 = (buf: Buffer, start: number, end: number): string => (buf as SliceBuffer).utf8Slice(start, end);

/** `-?[0-9]+` of at most 15 digits → the number (exact), else undefined. */
function smallInteger(buf: Buffer, start: number, end: number): number | undefined {
  let i = start;
  const negative = buf[i] === 0x2d;
  if (negative) i++;
  if (i === end || end - i > 15) return undefined;
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

/**
 * `buf[start, end)` (ASCII) with a 'T' at offset 10, plus a suffix byte unless 0, as a string.
 * Rewrites the field's bytes in place (allowed: see `ByteConverter`), so one flat string is
 * made and nothing is copied first.
 */
function withT(buf: Buffer, start: number, end: number, suffix: number): string {
  buf[start + 10] = 0x54;
  if (suffix === 0) return (buf as SliceBuffer).latin1Slice(start, end);
  buf[end] = suffix;
  return (buf as SliceBuffer).latin1Slice(start, end + 1);
}

function byteConverterOf(name: string, text: Converter): ByteConverter {
  const slow: ByteConverter = (buf, start, end) => text(utf8(buf, start, end));
  switch (name) {
    case 'bool':
      return (buf, start, end) => (end - start === 1 ? buf[start] === 0x74 : slow(buf, start, end));
    case 'int2':
    case 'int4':
    case 'oid':
    case 'int8':
      return (buf, start, end) => smallInteger(buf, start, end) ?? slow(buf, start, end);
    case 'timestamptz':
      // `YYYY-MM-DD hh:mm:ss[.ffffff]+00` (sessions run in UTC) → `…T…Z`; anything else as text.
      return (buf, start, end) =>
        end - start >= 22 && buf[start + 10] === 0x20 && buf[end - 3] === 0x2b && buf[end - 2] === 0x30 && buf[end - 1] === 0x30
          ? withT(buf, start, end - 3, 0x5a) // 'Z' over the '+'
          : slow(buf, start, end);
    case 'timestamp':
      return (buf, start, end) => (end - start > 10 && buf[start + 10] === 0x20 ? withT(buf, start, end, 0) : slow(buf, start, end));
    case 'json':
    case 'jsonb':
    case 'float4':
    case 'float8':
    case 'bytea':
      return slow;
    default:
      return text === identity ? utf8 : slow;
  }
}
