/**
 * HubSpot property definitions -> JSON Schema, and property values (always strings on the
 * wire) -> typed JSON. Unknown types are kept as strings rather than refused: HubSpot adds
 * property types over time, and a string never loses information.
 */
import { CANONICAL_DECIMAL_PATTERN, type JsonSchemaObject, type RecordData } from '@tributary/core';
import type { ApiObject, ApiProperty } from '../api/client.js';
import { numberPropertyValue } from './numbers.js';

/**
 * A property value's schema inside `properties` (and a writable field's). A `number` is a
 * JSON number, or its exact decimal text where a double would change it (see `numberPropertyValue`).
 */
export function propertySchema(property: ApiProperty): JsonSchemaObject {
  switch (property.type) {
    case 'number':
      return {
        type: ['number', 'string', 'null'],
        pattern: CANONICAL_DECIMAL_PATTERN,
        description: 'a number, or its exact decimal text where a double would change it (integers beyond ±2^53, fractions of more digits than a double holds)',
      };
    case 'bool':
      return { type: ['boolean', 'null'] };
    case 'datetime':
      return { type: ['string', 'null'], format: 'date-time' };
    case 'date':
      return { type: ['string', 'null'], format: 'date' };
    default:
      return { type: ['string', 'null'] };
  }
}

/** The top-level fields of an object record (see `toRecord`). */
export const RECORD_FIELDS: readonly string[] = ['id', 'createdAt', 'updatedAt', 'archived', 'archivedAt', 'properties'];

/** The prefix of a property's top-level field with `property_columns` (Airbyte's HubSpot source names them so too). */
export const PROPERTY_FIELD_PREFIX = 'properties_';

/**
 * With `property_columns`: property name -> the top-level field that repeats its value,
 * `properties_<name>`. A field name that equals, ignoring letter case, a record field or the
 * field of another property goes to none of them: those properties stay only in
 * `properties`. Letter case is ignored because destinations match column names without it
 * (DuckDB and the event lake, Snowflake, BigQuery), where `properties_Foo` and
 * `properties_foo` would be one column. The rule does not depend on the order of `names`, so
 * discover and read (each asking the properties API) derive the same fields.
 */
export function propertyFields(names: Iterable<string>): Map<string, string> {
  const fieldOf = (name: string): string => `${PROPERTY_FIELD_PREFIX}${name}`;
  const claimants = new Map<string, string[]>();
  for (const name of new Set(names)) {
    const key = fieldOf(name).toLowerCase();
    claimants.set(key, [...(claimants.get(key) ?? []), name]);
  }
  const recordFields = new Set(RECORD_FIELDS.map((field) => field.toLowerCase()));
  const fields = new Map<string, string>();
  for (const [key, [name, ...others]] of claimants) {
    if (name !== undefined && others.length === 0 && !recordFields.has(key)) fields.set(name, fieldOf(name));
  }
  return fields;
}

/** Property names left out of `fields` (name collisions, see `propertyFields`), for a warning. */
export function unflattened(names: Iterable<string>, fields: ReadonlyMap<string, string>): string[] {
  return [...new Set(names)].filter((name) => !fields.has(name)).sort();
}

/**
 * The schema of a property's top-level field (`property_columns`): the property's, but a
 * `number` is a number only, the nearest double (see `toRecord`). That field is a typed
 * column, and a column holding doubles or decimal text would be JSON in the lake (and,
 * declared so, break the DOUBLE column an existing lake has for it): the exact value stays
 * in `properties`.
 */
export function propertyFieldSchema(property: ApiProperty): JsonSchemaObject {
  return property.type === 'number' ? { type: ['number', 'null'] } : propertySchema(property);
}

/**
 * An object stream's JSON Schema. `fields` (from `propertyFields`, with `property_columns`)
 * adds each property's top-level field with the schema of `propertyFieldSchema` (every
 * record carries them, see `toRecord`; not required, as inside `properties`).
 */
export function objectSchema(properties: readonly ApiProperty[], fields?: ReadonlyMap<string, string>): JsonSchemaObject {
  const propertyFieldSchemas: Record<string, JsonSchemaObject> = {};
  if (fields) for (const p of properties) {
    const field = fields.get(p.name);
    if (field !== undefined) propertyFieldSchemas[field] = propertyFieldSchema(p);
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    required: ['id', 'createdAt', 'updatedAt', 'archived', 'properties'],
    properties: {
      id: { type: 'string' },
      createdAt: { type: 'string', format: 'date-time' },
      updatedAt: { type: 'string', format: 'date-time' },
      archived: { type: 'boolean' },
      archivedAt: { type: ['string', 'null'], format: 'date-time' },
      properties: {
        type: 'object',
        additionalProperties: true,
        properties: Object.fromEntries(properties.map((p) => [p.name, propertySchema(p)])),
      },
      ...propertyFieldSchemas,
    },
  };
}

function toIso(text: string): string | null {
  const ms = /^-?\d+$/.test(text) ? Number(text) : Date.parse(text);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

/** One property value as its schema says; values that do not parse become null (never a wrong type). */
export function convertValue(type: string | undefined, raw: string | null | undefined): string | number | boolean | null {
  if (raw === null || raw === undefined || raw === '') return null;
  switch (type) {
    case 'number':
      return numberPropertyValue(raw);
    case 'bool':
      return raw === 'true' ? true : raw === 'false' ? false : null;
    case 'datetime':
      return toIso(raw);
    case 'date': {
      const iso = toIso(raw);
      return iso === null ? null : iso.slice(0, 10);
    }
    default:
      return raw;
  }
}

/**
 * One object as a record. With `fields` (`property_columns`), every property that has a
 * field there is repeated as that top-level field, with the very value `properties` holds,
 * or null when `properties` lacks it (a merged-away id's deletion has no properties): each
 * record carries every declared field, as a columnar destination reads it back. A number
 * property that `properties` holds as exact decimal text (see `numberPropertyValue`) is the nearest
 * double in its field (see `propertyFieldSchema`). Per record this adds one assignment per
 * flattened property, and one comparison per property.
 */
export function toRecord(object: ApiObject, types: ReadonlyMap<string, string>, fields?: ReadonlyMap<string, string>): RecordData {
  const properties: Record<string, string | number | boolean | null> = {};
  /** Number properties held as decimal text (rare: see numberPropertyValue). */
  let decimalTexts: string[] | undefined;
  for (const [name, raw] of Object.entries(object.properties)) {
    const type = types.get(name);
    const value = convertValue(type, raw);
    properties[name] = value;
    if (type === 'number' && typeof value === 'string') (decimalTexts ??= []).push(name);
  }
  const record: RecordData = {
    id: object.id,
    createdAt: object.createdAt,
    updatedAt: object.updatedAt,
    archived: object.archived,
    archivedAt: object.archivedAt ?? null,
    properties,
  };
  if (fields !== undefined) {
    for (const [name, field] of fields) record[field] = properties[name] ?? null;
    if (decimalTexts !== undefined) for (const name of decimalTexts) {
      const field = fields.get(name);
      if (field !== undefined) record[field] = nearestDouble(properties[name] as string);
    }
  }
  return record;
}

/** A decimal text as the nearest double; null past the range of a double. */
function nearestDouble(text: string): number | null {
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}
