import { TributaryError, type ConfigOf, type DestinationStream } from '@tributary/core';

/** The Airbyte `connectionSpecification` of the Redis feature-store destination. */
export const redisConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Redis online feature store destination',
  type: 'object',
  additionalProperties: false,
  properties: {
    host: { type: 'string', minLength: 1, title: 'Host', description: 'Redis host name or IP address.', default: '127.0.0.1', order: 0 },
    port: { type: 'integer', minimum: 1, maximum: 65535, title: 'Port', description: 'Redis port.', default: 6379, order: 1 },
    username: { type: 'string', minLength: 1, title: 'Username', description: 'ACL user (Redis 6+). Leave out for the default user.', order: 2 },
    password: { type: 'string', title: 'Password', description: 'Password of the user (`AUTH`). Leave out when Redis has none.', airbyte_secret: true, order: 3 },
    db: { type: 'integer', minimum: 0, title: 'Database', description: 'Logical database number (`SELECT`).', default: 0, order: 4 },
    key_prefix: {
      type: 'string',
      minLength: 1,
      pattern: '^[^\\s]+$',
      title: 'Key prefix',
      description: 'First part of every key: `<prefix>:<tenant>:<entity type>:<entity id>`.',
      default: 'trib',
      order: 5,
    },
    default_tenant: {
      type: 'string',
      minLength: 1,
      title: 'Default tenant',
      description: 'Tenant of records that have no tenant field. Without it such records are rejected (quarantined).',
      order: 6,
    },
    default_ttl_seconds: {
      type: 'integer',
      minimum: 0,
      title: 'Default TTL (seconds)',
      description: 'Time to live of a feature group after it was written, for streams without their own `ttl_seconds`. 0 = never expires.',
      default: 0,
      order: 7,
    },
    streams: {
      type: 'array',
      title: 'Stream mappings',
      description: 'How records of a stream become features. Streams not listed use every default.',
      default: [],
      order: 8,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['stream'],
        properties: {
          stream: { type: 'string', minLength: 1, title: 'Stream', description: 'Stream name (`namespace.name` for a namespaced stream).' },
          entity_type: { type: 'string', minLength: 1, title: 'Entity type', description: 'Entity type in the key. Default: the stream name.' },
          entity_id_field: {
            type: 'string',
            minLength: 1,
            title: 'Entity id field',
            description: "Field holding the entity id. Default: the stream's primary key (one field), else `id`.",
          },
          tenant_field: { type: 'string', minLength: 1, title: 'Tenant field', description: 'Field holding the tenant. Default: `tenant_id`.' },
          event_time_field: {
            type: 'string',
            minLength: 1,
            title: 'Event time field',
            description:
              "Field holding the event time (ISO-8601 date-time, or epoch milliseconds). Default: `event_time` or `updated_at`, whichever the stream's schema has, else its cursor field.",
          },
          feature_group: {
            type: 'string',
            minLength: 1,
            pattern: '^[^:\\s]+$',
            title: 'Feature group',
            description: 'Group the features belong to; each group keeps its own event time and TTL. No `:`. Default: the stream name.',
          },
          deleted_field: {
            type: 'string',
            minLength: 1,
            title: 'Deleted field',
            description:
              'Field that marks a deleted record (Salesforce `IsDeleted`, HubSpot `archived`, Airbyte `_ab_cdc_deleted_at`): a record whose value there is `true` or a non-empty string deletes its entity\'s group (a tombstone, as a CDC delete writes); a date-time string there (HubSpot `archivedAt`) is the delete\'s event time. A CDC `_tributary_op` takes precedence. Default: none.',
          },
          ttl_seconds: { type: 'integer', minimum: 0, title: 'TTL (seconds)', description: 'Time to live of the group after it was written. 0 = never. Default: `default_ttl_seconds`.' },
          features: {
            type: 'array',
            items: { type: 'string', minLength: 1 },
            title: 'Features',
            description: 'Top-level fields stored as features. Default: every field of the record.',
          },
        },
      },
    },
  },
} as const;

export type RedisConfig = ConfigOf<typeof redisConfigSchema>;

/** Connection settings shared by the destination and the lookup API. */
export interface RedisConnectionOptions {
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  db?: number;
}

/** How one stream's records become writes: fully resolved, so `write` does no lookups in config. */
export interface StreamMapping {
  readonly streamKey: string;
  readonly entityType: string;
  readonly entityIdField: string;
  readonly tenantField: string;
  /**
   * The stream's schema declares the tenant field, so its records carry their tenant: a CDC
   * delete without the field (a key-only delete, PostgreSQL's default replica identity) has
   * an unknown tenant, not `defaultTenant` (`forEachWrite` rejects it).
   */
  readonly tenantFieldDeclared: boolean;
  /**
   * The fields whose values make the record's key, as `movedFromKey` takes them: a CDC update
   * whose before-image holds other values there moved its row to another key, which the
   * writer ends (`forEachWrite`). The entity id field, and the tenant field when the stream's
   * primary key includes it: PostgreSQL's default replica identity sends the old primary
   * key only, so a tenant outside it is not in every before-image (and `movedFromKey` needs
   * each field it is given).
   */
  readonly keyFields: readonly (readonly string[])[];
  readonly eventTimeField: string;
  readonly group: string;
  /** 0 = the group never expires. */
  readonly ttlMs: number;
  /** undefined = every field of the record. */
  readonly features: readonly string[] | undefined;
  readonly defaultTenant: string | undefined;
  /** Field whose `marksDeleted` value makes a record without `_tributary_op` a delete. */
  readonly deletedField: string | undefined;
}

function hasProperty(stream: DestinationStream, field: string): boolean {
  const properties = stream.jsonSchema.properties;
  return typeof properties === 'object' && properties !== null && field in properties;
}

/** Resolves the mapping of a stream from its config entry (if any) and the defaults documented in the schema. */
export function resolveMapping(config: RedisConfig, stream: DestinationStream): StreamMapping {
  const entry = (config.streams ?? []).find((s) => s.stream === stream.key || s.stream === stream.name);
  const singleKey = stream.primaryKey.length === 1 && stream.primaryKey[0]!.length === 1 ? stream.primaryKey[0]![0] : undefined;
  const cursor = stream.cursorField.length === 1 ? stream.cursorField[0] : undefined;
  const eventTimeField =
    entry?.event_time_field ?? (hasProperty(stream, 'event_time') ? 'event_time' : hasProperty(stream, 'updated_at') ? 'updated_at' : (cursor ?? 'event_time'));
  const ttlSeconds = entry?.ttl_seconds ?? config.default_ttl_seconds ?? 0;
  const tenantField = entry?.tenant_field ?? 'tenant_id';
  const entityIdField = entry?.entity_id_field ?? singleKey ?? 'id';
  const deletedField = entry?.deleted_field;
  const clash = ([['the entity id field', entityIdField], ['the tenant field', tenantField], ['the event time field', eventTimeField]] as const).find(([, field]) => field === deletedField);
  if (clash) {
    // Every record that has a value there would be a delete.
    throw new TributaryError('config', {
      userMessage: `Stream "${stream.key}": deleted_field "${deletedField}" is ${clash[0]}, so every record that has it would delete its entity; name the field that marks deletions (Salesforce IsDeleted, HubSpot archivedAt)`,
    });
  }
  return {
    streamKey: stream.key,
    entityType: entry?.entity_type ?? stream.name,
    entityIdField,
    tenantField,
    tenantFieldDeclared: hasProperty(stream, tenantField),
    keyFields: stream.primaryKey.some((path) => path.length === 1 && path[0] === tenantField) ? [[entityIdField], [tenantField]] : [[entityIdField]],
    eventTimeField,
    group: entry?.feature_group ?? stream.name.replace(/[:\s]/g, '_'),
    ttlMs: ttlSeconds * 1000,
    features: entry?.features ? [...entry.features] : undefined,
    defaultTenant: config.default_tenant,
    deletedField,
  };
}
