import { TributaryError, type AirbyteStream } from '@tributary/core';
import type { SalesforceClient } from '../client/connection.js';
import { streamSchemaOf, type DescribedField, type DescribedObject } from './fields.js';

interface GlobalObject {
  name: string;
  queryable?: boolean;
  replicateable?: boolean;
  retrieveable?: boolean;
}

/** The objects a source can offer: queryable and replicateable (the `updated`/`deleted` endpoints work on them). */
export async function listObjects(client: SalesforceClient, names: readonly string[] | undefined): Promise<string[]> {
  const { body } = await client.request<{ sobjects?: GlobalObject[] }>({ method: 'GET', path: '/sobjects' });
  const available = (body.sobjects ?? []).filter((o) => o.queryable !== false && o.replicateable !== false).map((o) => o.name);
  if (names === undefined) return available;
  const byLower = new Map(available.map((name) => [name.toLowerCase(), name]));
  const unknown = names.filter((name) => !byLower.has(name.toLowerCase()));
  if (unknown.length > 0) {
    throw new TributaryError('config', {
      userMessage: `These objects do not exist or cannot be replicated in this org: ${unknown.join(', ')}. Fix the "streams" list of the config.`,
    });
  }
  return names.map((name) => byLower.get(name.toLowerCase())!);
}

export async function describeObject(client: SalesforceClient, name: string): Promise<DescribedObject> {
  const { body } = await client.request<{ name?: string; fields?: DescribedField[] }>({ method: 'GET', path: `/sobjects/${encodeURIComponent(name)}/describe` });
  if (!Array.isArray(body.fields) || !body.fields.some((f) => f.name === 'Id')) {
    throw new TributaryError('fatal', { userMessage: `Salesforce answered the describe of ${name} without its fields` });
  }
  return { name: body.name ?? name, fields: body.fields };
}

/**
 * The incremental cursor of an object: SystemModstamp (indexed, bumped by every change,
 * system ones included), or LastModifiedDate where SystemModstamp is not filterable, or
 * none (the stream is then full refresh only).
 */
export function cursorFieldOf(object: DescribedObject): string | undefined {
  for (const name of ['SystemModstamp', 'LastModifiedDate']) {
    const field = object.fields.find((f) => f.name === name);
    if (field && field.type === 'datetime' && field.filterable !== false) return name;
  }
  return undefined;
}

export function streamOf(object: DescribedObject): AirbyteStream {
  const cursor = cursorFieldOf(object);
  return {
    name: object.name,
    json_schema: streamSchemaOf(object),
    supported_sync_modes: cursor ? ['full_refresh', 'incremental'] : ['full_refresh'],
    source_defined_cursor: true,
    ...(cursor ? { default_cursor_field: [cursor] } : {}),
    source_defined_primary_key: [['Id']],
    is_resumable: true,
  };
}
