/**
 * JSON without losing digits. Salesforce stores Number(18,0) fields (and `long` fields) as
 * decimals of up to 18 digits and writes them into JSON as numbers with every digit
 * (`123456789012345678`, or `1.23456789012345678E17`); `JSON.parse` rounds such a number to
 * the nearest double (`123456789012345680`) without a word, and `JSON.stringify` cannot write
 * one back. Here:
 *
 * - `parseJson` keeps every number a double cannot hold digit for digit as its exact decimal
 *   (plain notation, see `canonicalDecimal`), a string by default;
 * - `stringifyJson` writes a `JsonNumber` as the bare number it holds.
 *
 * Answers without such numbers (nearly all) are parsed by `JSON.parse` alone: a number that
 * loses digits has at least 16 significant digits, and the check for a value starting with a
 * run of 16 digits (or dots) is one regular expression over the text.
 */

/** A number in JSON text, kept as its decimal text: written bare by `stringifyJson`. */
export class JsonNumber {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Exponents past this are not expanded into digits (no Salesforce number comes close). */
const MAX_EXPONENT = 400;

/**
 * The decimal `text` (`-12.50`, `1.2345678E7`, `+007`) in plain notation without redundant
 * zeros (`-12.5`, `12345678`, `7`; zero is `0`): two texts of the same number give the same
 * result. `undefined` when `text` is no decimal number.
 */
export function canonicalDecimal(text: string): string | undefined {
  const match = DECIMAL.exec(text.trim());
  if (!match) return undefined;
  const [, sign, whole = '', fraction = '', exponent = '0'] = match;
  if (whole === '' && fraction === '') return undefined;
  const shift = Number(exponent);
  if (Math.abs(shift) > MAX_EXPONENT) return undefined;
  let digits = whole + fraction;
  // Where the decimal point stands in `digits`.
  let point = whole.length + shift;
  let first = 0;
  while (first < digits.length && digits[first] === '0') first++;
  let last = digits.length;
  while (last > first && digits[last - 1] === '0') last--;
  if (first === last) return '0';
  point -= first;
  digits = digits.slice(first, last);
  let body: string;
  if (point <= 0) body = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) body = digits + '0'.repeat(point - digits.length);
  else body = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return sign === '-' ? `-${body}` : body;
}

/** Whether `Number(text)` holds the decimal `text` digit for digit (its shortest form is the same number). */
export function fitsDouble(text: string): boolean {
  const value = Number(text);
  return Number.isFinite(value) && canonicalDecimal(String(value)) === canonicalDecimal(text);
}

/**
 * A decimal text as a JSON value: a number when the double holds it digit for digit and is a
 * safe integer or a fraction, else its exact decimal text (`canonicalDecimal`). Integers
 * beyond ±(2^53 − 1) are always text, even the few a double holds exactly, so that a
 * consumer never meets an integer number it cannot trust. Texts that are no number come back
 * as `Number(text)` would have them (`NaN` for garbage).
 */
export function exactNumber(text: string): number | string {
  const value = Number(text);
  if (Number.isSafeInteger(value) || (text.length < 16 && !/[eE]/.test(text))) return value;
  const canonical = canonicalDecimal(text);
  if (canonical === undefined) return value;
  if (!canonical.includes('.')) return canonical;
  return canonicalDecimal(String(value)) === canonical ? value : canonical;
}

function nonceMarker(): string {
  return `\u0000${Math.random().toString(36).slice(2)}:`;
}

/**
 * A value starting with a run of 16 digits or dots: every number with 16 significant digits
 * or more starts so (after `:`, `,`, `[` or at the start); digits inside strings rarely do.
 */
const LONG_NUMBER = /(?:^|[:,[])\s*-?\d[\d.]{15}/;

/** A JSON string literal, or a JSON number (outside strings, digits only occur in numbers). */
const STRING_OR_NUMBER = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/**
 * `JSON.parse`, except that a number a double cannot hold digit for digit becomes
 * `exact(canonicalDecimal(number))` — by default that decimal text itself.
 */
export function parseJson(text: string, exact: (decimal: string) => unknown = (decimal) => decimal): unknown {
  if (!LONG_NUMBER.test(text)) return JSON.parse(text);
  // Each such number becomes a string literal starting with a marker (a NUL and a random
  // nonce: no string of an answer starts so), turned into its value by the reviver.
  const marker = nonceMarker();
  const markerJson = JSON.stringify(marker).slice(1, -1);
  let replaced = false;
  const rewritten = text.replace(STRING_OR_NUMBER, (token) => {
    if (token.charCodeAt(0) === 34 /* " */ || token.length < 16 || fitsDouble(token)) return token;
    replaced = true;
    return `"${markerJson}${canonicalDecimal(token) ?? token}"`;
  });
  if (!replaced) return JSON.parse(text);
  return JSON.parse(rewritten, (_key, value: unknown) => (typeof value === 'string' && value.startsWith(marker) ? exact(value.slice(marker.length)) : value));
}

/** `JSON.stringify`, with every `JsonNumber` written as the bare number it holds. */
export function stringifyJson(value: unknown): string {
  let found = false;
  const marker = nonceMarker();
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof JsonNumber) {
      found = true;
      return `${marker}${v.text}`;
    }
    return v;
  });
  if (!found) return text;
  const markerJson = JSON.stringify(marker).slice(1, -1).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  return text.replace(new RegExp(`"${markerJson}([-+0-9.eE]+)"`, 'g'), '$1');
}

/** Compares two decimal texts as numbers: −1, 0 or 1, and NaN when either is no number. */
export function compareDecimals(a: string, b: string): number {
  const x = canonicalDecimal(a);
  const y = canonicalDecimal(b);
  if (x === undefined || y === undefined) return Number.NaN;
  const negX = x.startsWith('-');
  const negY = y.startsWith('-');
  if (negX !== negY) return negX ? -1 : 1;
  const magnitude = compareMagnitudes(negX ? x.slice(1) : x, negY ? y.slice(1) : y);
  return negX ? -magnitude : magnitude;
}

function compareMagnitudes(x: string, y: string): number {
  const [xi = '', xf = ''] = x.split('.');
  const [yi = '', yf = ''] = y.split('.');
  if (xi.length !== yi.length) return xi.length < yi.length ? -1 : 1;
  if (xi !== yi) return xi < yi ? -1 : 1;
  const width = Math.max(xf.length, yf.length);
  const px = xf.padEnd(width, '0');
  const py = yf.padEnd(width, '0');
  return px === py ? 0 : px < py ? -1 : 1;
}
