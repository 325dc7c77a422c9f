import {
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBInstance,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  DuckDBTypeId,
  JSDuckDBValueConverter,
  type DuckDBConnection,
  type DuckDBResultReader,
  type DuckDBValueConverter,
  type JS,
} from '@duckdb/node-api';
import { createRequire } from 'node:module';
import { setOwnField } from '@tributary/core';

/**
 * @duckdb/node-api decodes every VARCHAR it reads with one shared `new TextDecoder()`, which
 * drops a leading U+FEFF (byte order mark): a stored string starting with one read back
 * without it, in every reader and in the replay window (whose content check then took a
 * replayed record for a new one and stored it twice). Its decoder is swapped for one that
 * keeps the mark, once per process; the Parquet files always held it. The module is the
 * package's own file (it has no exports map); a version that moved it leaves this a no-op,
 * and probe10-value-fidelity.test.ts fails on it.
 */
function keepByteOrderMarks(): void {
  try {
    const accessors = createRequire(import.meta.url)('@duckdb/node-api/lib/vectors/dataAccessors.js') as { textDecoder?: unknown };
    if (accessors.textDecoder instanceof TextDecoder) accessors.textDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
  } catch {
    // Not this layout of the package: see above.
  }
}
keepByteOrderMarks();

/** A private in-process DuckDB (in memory, spilling to `tempDir` when given; `threads` default: one per core). */
export async function openDuckDb(tempDir?: string, threads?: number): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:', { ...(tempDir ? { temp_directory: tempDir } : {}), ...(threads !== undefined ? { threads: String(threads) } : {}) });
  const connection = await instance.connect();
  return {
    instance,
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
/**
 * SQL text of a string value. DuckDB's parser ends a quoted string at a NUL character, so a
 * value holding one ("unterminated quoted string": a tenant id or a key with NUL made reads of
 * it fail) is written as quoted pieces joined by `chr(0)`: an expression, fine wherever a
 * value is expected, not where the grammar wants a literal (an ENUM's members, COPY options).
 */
export const literal = (value: string): string => {
  const quoted = `'${value.replace(/'/g, "''")}'`;
  return value.includes('\u0000') ? `(${quoted.split('\u0000').join("' || chr(0) || '")})` : quoted;
};

/**
 * SQL: the TIMESTAMP (microseconds) of `ms`, an SQL expression of epoch milliseconds as a
 * DOUBLE (a column or a cast literal), exact to the microsecond of that double: its whole
 * milliseconds times 1000 in BIGINT, plus its fraction's microseconds (a double's fraction
 * is exact). `CAST(ms * 1000 AS BIGINT)` multiplied in DOUBLE, which holds whole
 * microseconds only within 2^53 µs of 1970 (years 1685–2255): beyond it the product was
 * rounded to a multiple of 2 to 16 µs, so `5000-01-01T00:00:00.001Z` was stored as
 * `…00.000992`, in the millisecond before its own.
 */
export function epochMsTimestampSql(ms: string): string {
  return `make_timestamp(CAST(floor(${ms}) AS BIGINT) * 1000 + CAST(round((${ms} - floor(${ms})) * 1000) AS BIGINT))`;
}

/** JavaScript's dates: ±8.64e15 ms from 1970. */
const MAX_DATE_MS = 8_640_000_000_000_000n;

type TimeValue = DuckDBDateValue | DuckDBTimestampValue | DuckDBTimestampTZValue | DuckDBTimestampNanosecondsValue | DuckDBTimestampMillisecondsValue | DuckDBTimestampSecondsValue;

/** The instant as a count of `1 / perMs` ms since 1970. */
function unitsOf(value: TimeValue): { units: bigint; perMs: bigint } {
  if (value instanceof DuckDBDateValue) return { units: BigInt(value.days) * 86_400_000n, perMs: 1n };
  if (value instanceof DuckDBTimestampNanosecondsValue) return { units: value.nanos, perMs: 1_000_000n };
  if (value instanceof DuckDBTimestampMillisecondsValue) return { units: value.millis, perMs: 1n };
  if (value instanceof DuckDBTimestampSecondsValue) return { units: value.seconds * 1000n, perMs: 1n };
  return { units: value.micros, perMs: 1000n };
}

/**
 * A DATE or TIMESTAMP as ISO-8601 UTC: `toISOString`'s form when it is a whole millisecond,
 * else with the digits below the millisecond too (`.000600Z`); `infinity`/`-infinity`; and
 * DuckDB's own text for a time a Date cannot hold (a year past 275760). The millisecond is
 * the floor, not the quotient, which moved times before 1970 a millisecond later.
 */
function plainTime(value: TimeValue): string {
  const { units, perMs } = unitsOf(value);
  if (!value.isFinite) return units > 0n ? 'infinity' : '-infinity';
  let ms = units / perMs;
  if (units < 0n && ms * perMs !== units) ms -= 1n;
  if (ms > MAX_DATE_MS || ms < -MAX_DATE_MS) return String(value);
  const iso = new Date(Number(ms)).toISOString();
  const below = units - ms * perMs;
  return below === 0n ? iso : `${iso.slice(0, -1)}${String(below).padStart(String(perMs).length - 1, '0')}Z`;
}

/** Significant digits a double always holds exactly (DBL_DIG): a DECIMAL with no more is a number, a longer one its text. */
const EXACT_DIGITS = 15;

function plainDecimal(value: DuckDBDecimalValue): number | string {
  const text = value.toString();
  const digits = text.replace(/[-.]/g, '').replace(/^0+/, '').replace(/0+$/, '');
  return digits.length <= EXACT_DIGITS ? Number(text) : text;
}

/**
 * DuckDB values as JavaScript values without losing what a Date or a double cannot hold
 * (see `plainRows`); nested values (LIST, STRUCT, MAP…) come through it too. The node API's
 * JS conversion cut TIMESTAMPs to the millisecond (toward 1970, so a time before it moved a
 * millisecond later), read a 38-digit DECIMAL as a double, gave BIT values as their internal
 * bytes, and threw on a time a Date cannot hold (`'infinity'::TIMESTAMP`), failing the query.
 */
const plainConverter: DuckDBValueConverter<JS> = (value, type, converter) => {
  if (value === null) return null;
  if (
    value instanceof DuckDBDateValue ||
    value instanceof DuckDBTimestampValue ||
    value instanceof DuckDBTimestampTZValue ||
    value instanceof DuckDBTimestampNanosecondsValue ||
    value instanceof DuckDBTimestampMillisecondsValue ||
    value instanceof DuckDBTimestampSecondsValue
  ) {
    return plainTime(value);
  }
  if (value instanceof DuckDBDecimalValue) return plainDecimal(value);
  // NaN and ±infinity as their text (`NaN`, `Infinity`, `-Infinity`): JSON has no such number, and JSON.stringify wrote null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  switch (type.typeId) {
    // DuckDB's text: BLOB `\xAA\x00` (JSON.stringify made a Buffer `{"type":"Buffer",…}`), BIT `101`, TIME `12:34:56.789` (not microseconds).
    case DuckDBTypeId.BLOB:
    case DuckDBTypeId.BIT:
    case DuckDBTypeId.TIME:
    case DuckDBTypeId.TIME_NS:
      return String(value);
    default:
      return JSDuckDBValueConverter(value, type, converter);
  }
};

/** A BIGINT or HUGEINT as plain JSON: a number, or its decimal text beyond 2^53. */
export function plainBigInt(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : String(v);
}

/**
 * Rows as plain JSON values: BIGINT → number (string beyond 2^53), DOUBLE → number (`NaN`,
 * `Infinity`, `-Infinity` as strings), TIMESTAMP → ISO string
 * (to the microsecond when it has digits below the millisecond), DECIMAL → number (its text
 * beyond 15 significant digits), JSON → parsed; see `plainConverter` for the rest.
 */
export function plainRows(result: DuckDBResultReader, parseJson = true): Record<string, unknown>[] {
  const types = result.columnTypes();
  // Rows as arrays, made objects here: the node API's row objects assign each column, which lost a column named `__proto__` (see setOwnField in core).
  const names = result.columnNames();
  const json = names.map((_, i) => parseJson && types[i]!.alias === 'JSON');
  return result.convertRows(plainConverter).map((row) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) {
      // Of two columns of one name, the first (as the node API's row objects held it).
      if (Object.hasOwn(out, names[i]!)) continue;
      const v = row[i] as unknown;
      setOwnField(out, names[i]!, v === null || v === undefined ? null : typeof v === 'bigint' ? plainBigInt(v) : v instanceof Date ? v.toISOString() : json[i] && typeof v === 'string' ? (JSON.parse(v) as unknown) : v);
    }
    return out;
  });
}
