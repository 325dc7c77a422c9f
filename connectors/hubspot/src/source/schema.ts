/**
 * HubSpot property definitions -> JSON Schema, and property values (always strings on the
 * wire) -> typed JSON. Unknown types are kept as strings rather than refused: HubSpot adds
 * property types over time, and a string never loses information.
 */
import type { JsonSchemaObject, RecordData } from '@tributary/core';
import type { ApiObject, ApiProperty } from '../api/client.js';

export function propertySchema(property: ApiProperty): JsonSchemaObject {
  switch (property.type) {
    case 'number':
      return { type: ['number', 'null'] };
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

export function objectSchema(properties: readonly ApiProperty[]): JsonSchemaObject {
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
    case 'number': {
      const n = Number(raw);
      return Number.isFinite(n) ? n : null;
    }
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

export function toRecord(object: ApiObject, types: ReadonlyMap<string, string>): RecordData {
  const properties: Record<string, string | number | boolean | null> = {};
  for (const [name, raw] of Object.entries(object.properties)) properties[name] = convertValue(types.get(name), raw);
  return {
    id: object.id,
    createdAt: object.createdAt,
    updatedAt: object.updatedAt,
    archived: object.archived,
    archivedAt: object.archivedAt ?? null,
    properties,
  };
}
