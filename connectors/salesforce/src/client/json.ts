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
import { canonicalDecimal, fitsDouble } from '@tributary/core';

// The decimal helpers are core's (the HubSpot connector, whose API sends every number as
// text, shares them); re-exported for this package's modules.
export { canonicalDecimal, exactNumber, fitsDouble } from '@tributary/core';

/** A number in JSON text, kept as its decimal text: written bare by `stringifyJson`. */
export class JsonNumber {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
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
