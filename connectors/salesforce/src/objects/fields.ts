/**
 * Salesforce field types → JSON Schema, and Salesforce values → plain JSON records.
 *
 * Compound fields (addresses, geolocations) are not queried: Bulk API 2.0 refuses them, so
 * both REST and Bulk reads select their components (BillingCity, HQ__Latitude__s, …) and
 * the record carries the components as flat fields *and* the compound value assembled from
 * them, so a record is identical whichever API read it.
 */
import type { JsonSchemaObject, RecordData } from '@tributary/core';
import { canonicalDecimal, exactNumber } from '../client/json.js';

/** The describe attributes of a field the connector uses. */
export interface DescribedField {
  name: string;
  type: string;
  nillable?: boolean;
  filterable?: boolean;
  createable?: boolean;
  updateable?: boolean;
  externalId?: boolean;
  idLookup?: boolean;
  unique?: boolean;
  /** Text comparisons are case-sensitive (only unique case-sensitive text fields). */
  caseSensitive?: boolean;
  compoundFieldName?: string | null;
  length?: number;
  /** Digits in all (double, currency, percent: up to 18). */
  precision?: number;
  /** Digits after the decimal point: 0 for a Number(18,0) field, whose integers can pass 2^53. */
  scale?: number;
  picklistValues?: Array<{ value: string; active?: boolean }>;
  restrictedPicklist?: boolean;
  defaultedOnCreate?: boolean;
}

export interface DescribedObject {
  name: string;
  fields: DescribedField[];
}

const ADDRESS_KEYS = ['street', 'city', 'state', 'stateCode', 'postalCode', 'country', 'countryCode', 'latitude', 'longitude', 'geocodeAccuracy'];

function nullable(schema: JsonSchemaObject): JsonSchemaObject {
  const type = schema.type;
  if (typeof type === 'string') return { ...schema, type: [type, 'null'] };
  return schema;
}

/** The digits a double holds for every integer: a field with more can pass 2^53. */
const DOUBLE_DIGITS = 15;

/**
 * Whether a field holds integers that can pass ±(2^53 − 1): `long` fields, and Number fields
 * (`double`) of scale 0 with more than 15 digits (Number(18,0): numeric ids of other
 * systems). Their values are integers, or decimal strings past ±(2^53 − 1), exact.
 * Currency and percent fields keep `number` even at scale 0 (AnnualRevenue is a
 * Currency(18,0) in most orgs): an amount past 9 × 10^15 is not a realistic value, and the
 * wider schema would be a breaking column change for every existing destination table.
 */
export function isWideInteger(field: DescribedField): boolean {
  if (field.type === 'long') return true;
  return field.type === 'double' && field.scale === 0 && (field.precision ?? 18) > DOUBLE_DIGITS;
}

/**
 * The JSON Schema of one field's values. Every type Salesforce documents for the REST API
 * maps to a schema that keeps the value as-is (no rounding, no truncation): numbers stay
 * numbers (currency and percent included) — except integers past ±(2^53 − 1) of the fields
 * that can hold them (`isWideInteger`), which become exact decimal strings, as a double
 * cannot hold them —, multi-select picklists stay the `a;b` string
 * Salesforce sends, date-times become RFC 3339 strings in UTC.
 */
export function jsonSchemaOf(field: DescribedField): JsonSchemaObject {
  // The pattern says the strings are decimal integers, so destinations can store a BIGINT (the lake does).
  if (isWideInteger(field)) return { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$', description: 'an integer, or a decimal string beyond ±2^53' };
  switch (field.type) {
    case 'boolean':
      return { type: 'boolean' };
    case 'int':
    case 'long':
      return nullable({ type: 'integer' });
    case 'double':
    case 'currency':
    case 'percent':
      return nullable({ type: 'number' });
    case 'date':
      return nullable({ type: 'string', format: 'date' });
    case 'datetime':
      return nullable({ type: 'string', format: 'date-time' });
    case 'time':
      // HH:mm:ss.SSSZ, as Salesforce sends it.
      return nullable({ type: 'string', pattern: '^\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,3})?Z$' });
    case 'base64':
      return nullable({ type: 'string', contentEncoding: 'base64' });
    case 'multipicklist':
      // Values joined by ';', exactly as Salesforce stores and accepts them.
      return nullable({ type: 'string' });
    case 'address':
      return {
        type: ['object', 'null'],
        properties: Object.fromEntries(
          ADDRESS_KEYS.map((key) => [key, key === 'latitude' || key === 'longitude' ? { type: ['number', 'null'] } : { type: ['string', 'null'] }]),
        ),
      };
    case 'location':
      return { type: ['object', 'null'], properties: { latitude: { type: ['number', 'null'] }, longitude: { type: ['number', 'null'] } } };
    case 'anyType':
      // Text, as Bulk API 2.0's CSV carries it (see anyTypeFromJson): a typed value could not
      // be the same on both paths, as the CSV cannot tell the number 42 from the text "42".
      return nullable({ type: 'string' });
    case 'complexvalue':
    case 'json':
      return {};
    default:
      // id, reference, string, picklist, textarea, phone, url, email, combobox, encryptedstring…
      return nullable({ type: 'string' });
  }
}

/** The key of a compound field's component inside the compound value (BillingCity → city). */
export function componentKeyOf(compound: string, component: string): string {
  const prefix = compound.endsWith('__c') ? compound.slice(0, -1) : compound.replace(/(Address|Location)$/, '');
  const rest = component.slice(prefix.length).replace(/__s$/, '');
  return rest.charAt(0).toLowerCase() + rest.slice(1);
}

export function isCompound(field: DescribedField): boolean {
  return field.type === 'address' || field.type === 'location';
}

/**
 * The fields a read selects: every field except compound fields (assembled from their
 * components instead) and base64 fields (Salesforce serves those as separate blob
 * resources, and Bulk API 2.0 refuses them).
 */
export function selectableFields(object: DescribedObject): DescribedField[] {
  return object.fields.filter((f) => !isCompound(f) && f.type !== 'base64');
}

/** The stream's JSON Schema: one property per field (compound fields as objects). */
export function streamSchemaOf(object: DescribedObject): JsonSchemaObject {
  const properties: Record<string, JsonSchemaObject> = {};
  for (const field of object.fields) {
    if (field.type === 'base64') continue;
    properties[field.name] = jsonSchemaOf(field);
  }
  return { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', required: ['Id'], properties, additionalProperties: true };
}

/** `2024-01-01T00:00:00.000+0000` → `2024-01-01T00:00:00.000Z`. */
export function isoDateTime(value: string): string {
  // The shape Salesforce always sends (UTC, milliseconds): rewrite the offset, no parsing.
  if (value.length === 28 && value.endsWith('.000+0000') && value.charCodeAt(10) === 84 /* T */) return `${value.slice(0, 23)}Z`;
  const ms = Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isFinite(ms) ? new Date(ms).toISOString() : value;
}

/** Converts raw values (JSON from REST, strings from CSV) into a record of plain JSON. */
export interface RecordConverter {
  (raw: Record<string, unknown>): RecordData;
}

/**
 * Builds the converter of one object's records. `fromCsv` values are strings, with the
 * empty string for null (Bulk API 2.0's CSV has no other null).
 */
export function recordConverter(object: DescribedObject, fromCsv: boolean): RecordConverter {
  const selected = selectableFields(object);
  const compounds = object.fields.filter(isCompound).map((compound) => ({
    name: compound.name,
    parts: object.fields.filter((f) => f.compoundFieldName === compound.name && !isCompound(f)).map((f) => ({ field: f.name, key: componentKeyOf(compound.name, f.name) })),
  }));
  const convert = selected.map((field) => ({ name: field.name, value: valueConverter(field, fromCsv) }));
  return (raw) => {
    const record: RecordData = {};
    for (const { name, value } of convert) record[name] = value(raw[name]);
    for (const compound of compounds) {
      let any = false;
      const value: Record<string, unknown> = {};
      for (const part of compound.parts) {
        const v = record[part.field] ?? null;
        if (v !== null) any = true;
        value[part.key] = v;
      }
      record[compound.name] = any ? (value as RecordData[string]) : null;
    }
    return record;
  };
}

/**
 * A JSON value of a wide-integer field (`isWideInteger`) as a record carries it. The client
 * parses a number a double cannot hold digit for digit into its exact decimal string (see
 * client/json.ts); a number it kept as a double is one whose shortest form is the decimal
 * Salesforce sent, and past ±(2^53 − 1) becomes that decimal string, as the Bulk CSV's text
 * does. Not the double's exact binary value: Salesforce's 97315873439065650 parses to the
 * double 97315873439065648, whose shortest form is the text sent but whose BigInt is not.
 */
function wideIntegerFromJson(v: unknown): RecordData[string] {
  if (typeof v === 'number' && !Number.isSafeInteger(v) && Number.isInteger(v)) return canonicalDecimal(String(v)) ?? String(v);
  return v === undefined ? null : (v as RecordData[string]);
}

/**
 * A JSON value of an `anyType` field (history objects' OldValue and NewValue: the value of
 * whatever field changed, a string, number, boolean, date or date-time) as the text Bulk API
 * 2.0's CSV holds for it, so the record is the same whichever API read it: strings as they
 * are, numbers and booleans in JavaScript's shortest form (`42`, `1.5`, `true`) — a number
 * the client kept as exact decimal text (past what a double holds) is already a string — and
 * the empty string as null, as the CSV has no other null.
 */
function anyTypeFromJson(v: unknown): string | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function valueConverter(field: DescribedField, fromCsv: boolean): (value: unknown) => RecordData[string] {
  const type = field.type;
  const wideInteger = isWideInteger(field);
  if (!fromCsv) {
    if (type === 'anyType') return anyTypeFromJson;
    if (type === 'datetime') return (v) => (typeof v === 'string' ? isoDateTime(v) : null);
    if (wideInteger) return wideIntegerFromJson;
    // Other numbers keep the schema's `number`: a fraction with more digits than a double
    // holds (which the client parses into a string) is rounded, as Salesforce documents them doubles.
    if (type === 'double' || type === 'currency' || type === 'percent' || type === 'int') return (v) => (typeof v === 'string' ? Number(v) : v === undefined ? null : (v as RecordData[string]));
    return (v) => (v === undefined ? null : (v as RecordData[string]));
  }
  if (wideInteger) return (v) => (v === '' || v === undefined ? null : exactNumber(String(v)));
  switch (type) {
    case 'boolean':
      return (v) => v === 'true';
    case 'int':
    case 'long':
      return (v) => (v === '' || v === undefined ? null : Number.parseInt(String(v), 10));
    case 'double':
    case 'currency':
    case 'percent':
      return (v) => (v === '' || v === undefined ? null : Number(v));
    case 'datetime':
      return (v) => (v === '' || v === undefined ? null : isoDateTime(String(v)));
    default:
      // anyType included: its text is its value (see anyTypeFromJson).
      return (v) => (v === '' || v === undefined ? null : String(v));
  }
}
