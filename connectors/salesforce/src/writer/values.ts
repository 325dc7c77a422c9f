/**
 * Values between records and Salesforce: what to send for a field, and whether a stored
 * value already equals it (the writer's compare-before-write).
 */
import { JsonNumber, canonicalDecimal, fitsDouble } from '../client/json.js';
import type { DescribedField } from '../objects/fields.js';

const NUMERIC = new Set(['int', 'long', 'double', 'currency', 'percent']);

/**
 * The value to send: numeric and boolean strings become numbers and booleans, '' becomes null.
 * A numeric string a double cannot hold digit for digit (`"123456789012345679"` for a
 * Number(18,0) field: sources deliver such integers as decimal strings) is sent as a
 * JsonNumber, written into the request with every digit: as a double it would arrive rounded.
 */
export function toSalesforceValue(field: DescribedField, value: unknown): unknown {
  if (value === undefined || value === '') return null;
  if (typeof value === 'string') {
    if (NUMERIC.has(field.type) && value.trim() !== '' && Number.isFinite(Number(value))) {
      const decimal = canonicalDecimal(value);
      return decimal === undefined || fitsDouble(value) ? Number(value) : new JsonNumber(decimal);
    }
    if (field.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  }
  return value;
}

/**
 * A numeric value (a number, a decimal string, a JsonNumber) as its exact decimal text, so
 * that values are compared digit for digit: as doubles, 123456789012345678 and
 * 123456789012345679 are the same number, and a change between them would never be sent.
 */
function decimalOf(value: unknown): string {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) || !Number.isFinite(value)) return String(value);
    // The shortest decimal of the double: what JSON carries for it both ways (the request
    // writes it so; an answer's decimal parses to a double only when it is that form). Not
    // its exact binary value: "97315873439065650" parses to 97315873439065648, and comparing
    // that would call a stored 97315873439065648 unchanged and never send the change.
    return canonicalDecimal(String(value)) ?? String(value);
  }
  const text = String(value);
  return canonicalDecimal(text) ?? text;
}

function normalized(field: DescribedField, value: unknown): unknown {
  if (value === undefined || value === null || value === '') return field.type === 'boolean' ? false : null;
  switch (field.type) {
    case 'datetime': {
      const ms = Date.parse(String(value).replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
      return Number.isFinite(ms) ? ms : String(value);
    }
    case 'multipicklist':
      return String(value).split(';').sort().join(';');
    case 'boolean':
      return value === true || value === 'true';
    default:
      if (NUMERIC.has(field.type)) return decimalOf(value);
      return typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
}

/** Whether sending `wanted` would change the stored value `stored`. */
export function differs(field: DescribedField, wanted: unknown, stored: unknown): boolean {
  return normalized(field, wanted) !== normalized(field, stored);
}

/**
 * The value as `differs` compares it, as text: two values of `field` have the same text
 * exactly when `differs` finds them equal (a dry run's `comparedValues`). `normalized` gives
 * a primitive (string, finite number, boolean or null), whose JSON keeps its type apart.
 */
export function comparedText(field: DescribedField, value: unknown): string {
  return JSON.stringify(normalized(field, value));
}

/**
 * Why Salesforce would refuse `value` for `field` (its statusCode and message), judged from
 * describe alone — so that a dry run reports the failures the real run will meet. Rules the
 * describe cannot show (validation rules, triggers, locks) still surface from the real run.
 */
export function valueProblem(field: DescribedField, value: unknown): string | undefined {
  if (value === null) return undefined;
  const bad = (code: string, why: string): string => `${code}: ${field.name}: ${why}`;
  switch (field.type) {
    case 'int':
    case 'long':
      if (value instanceof JsonNumber) return value.text.includes('.') ? bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not an integer') : undefined;
      return Number.isInteger(value) ? undefined : bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not an integer');
    case 'double':
    case 'currency':
    case 'percent':
      if (value instanceof JsonNumber) return undefined;
      return typeof value === 'number' && Number.isFinite(value) ? undefined : bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not a number');
    case 'boolean':
      return typeof value === 'boolean' ? undefined : bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not a boolean');
    case 'date':
      return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? undefined : bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not a date (YYYY-MM-DD)');
    case 'datetime':
      return typeof value === 'string' && Number.isFinite(Date.parse(value)) ? undefined : bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not a date-time');
    default: {
      if (typeof value !== 'string') return bad('INVALID_TYPE_ON_FIELD_IN_RECORD', 'not a string');
      if (field.length !== undefined && field.length > 0 && value.length > field.length) return bad('STRING_TOO_LONG', `data value too large (max length=${field.length})`);
      if (field.type === 'email' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value)) return bad('INVALID_EMAIL_ADDRESS', 'invalid email address');
      if (field.type === 'picklist' && field.restrictedPicklist === true && !(field.picklistValues ?? []).some((p) => p.value === value)) {
        return bad('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', `bad value for restricted picklist field: ${value}`);
      }
      return undefined;
    }
  }
}
