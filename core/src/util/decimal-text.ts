/**
 * Decimal numbers as text, digit for digit. SaaS APIs send numbers a double cannot hold:
 * Salesforce writes Number(18,0) values into JSON with every digit, HubSpot sends every
 * property value as text (an id from another system in a number property has 17 or more
 * digits). `Number(text)` rounds such a value to the nearest double without a word
 * (`97315873439065651` becomes 97315873439065648); these helpers keep it.
 */

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Exponents past this are not expanded into digits (a text of more than 400 zeros). */
const MAX_EXPONENT = 400;

/**
 * What `canonicalDecimal` gives, as a JSON Schema `pattern`: a decimal in plain notation
 * without redundant zeros (`-12.5`, `0.001`, `97315873439065651`, `0`).
 */
export const CANONICAL_DECIMAL_PATTERN = '^-?(0|[1-9][0-9]*)(\\.[0-9]*[1-9])?$';

/**
 * The decimal `text` (`-12.50`, `1.2345678E7`, `+007`) in plain notation without redundant
 * zeros (`-12.5`, `12345678`, `7`; zero is `0`): two texts of the same number give the same
 * result. `undefined` when `text` is no decimal number (or its exponent is beyond ±400).
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
 * A decimal text as a JSON value:
 * - a number when the double is the decimal sent: a safe integer, or a fraction whose
 *   shortest form (`String(n)`, what JSON writes) is that decimal (`"0.1"`, `"1000.50"`,
 *   `"1.5e3"`);
 * - else its exact decimal text (`canonicalDecimal`): an integer beyond ±(2^53 − 1) always
 *   (also the few a double holds exactly, so that a consumer never meets an integer number
 *   it cannot trust), a fraction with more digits than a double holds
 *   (`"0.12345678901234567891"`, and `"4503599627370497.5"`, whose nearest double is an integer);
 * - for a text that is no plain decimal, `Number(text)` (`NaN` for garbage, 16 for `"0x10"`).
 *
 * Cost: `Number(text)` and a length check; a text of 16 characters or more, or with an
 * exponent, is also put in plain notation (a regular expression and a copy).
 */
export function exactNumber(text: string): number | string {
  const value = Number(text);
  // At most 15 characters and no exponent: at most 15 significant digits, which a double
  // always holds (and so a safe integer or a fraction whose shortest form is the text's).
  if (text.length < 16 && !text.includes('e') && !text.includes('E')) return value;
  const canonical = canonicalDecimal(text);
  if (canonical === undefined) return value;
  if (!canonical.includes('.')) return Number.isSafeInteger(value) ? value : canonical;
  return Number.isFinite(value) && canonicalDecimal(String(value)) === canonical ? value : canonical;
}
