import type { ConfigOf } from '@tributary/core';

/** The Airbyte `connectionSpecification` of the Postgres source. */
export const postgresConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'PostgreSQL source',
  type: 'object',
  required: ['host', 'database', 'username'],
  additionalProperties: false,
  properties: {
    host: { type: 'string', minLength: 1, title: 'Host', description: 'Server host name or address.', order: 0 },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 5432, title: 'Port', order: 1 },
    database: { type: 'string', minLength: 1, title: 'Database', order: 2 },
    username: { type: 'string', minLength: 1, title: 'User', description: 'For CDC the role needs the REPLICATION attribute (or superuser).', order: 3 },
    password: { type: 'string', title: 'Password', airbyte_secret: true, order: 4 },
    ssl: { type: 'boolean', default: false, title: 'TLS', description: 'Connect with TLS (server certificate verified).', order: 5 },
    schemas: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      minItems: 1,
      default: ['public'],
      title: 'Schemas',
      description: 'Schemas whose tables are discovered as streams (namespace = schema, name = table).',
      order: 6,
    },
    replication_method: {
      type: 'string',
      enum: ['cdc', 'standard'],
      default: 'cdc',
      title: 'Replication method',
      description:
        '`cdc`: incremental streams are a consistent snapshot followed by logical replication (pgoutput) — inserts, updates, deletes and truncates, positions confirmed only after the destination committed. `standard`: incremental streams read rows whose cursor column grew (no deletes).',
      order: 7,
    },
    slot_name: {
      type: 'string',
      pattern: '^[a-z0-9_]{1,63}$',
      default: 'tributary_slot',
      title: 'Replication slot',
      description: 'CDC only. Logical replication slot owned by this connection; created on the first sync.',
      order: 8,
    },
    publication_name: {
      type: 'string',
      pattern: '^[A-Za-z0-9_]{1,63}$',
      default: 'tributary_publication',
      title: 'Publication',
      description: 'CDC only. Publication naming the tables to stream.',
      order: 9,
    },
    manage_publication: {
      type: 'boolean',
      default: true,
      title: 'Manage the publication',
      description:
        'CDC only. Create the publication if missing and add the selected tables to it (needs table ownership). When false it must exist and contain them.',
      order: 10,
    },
    cdc_until: {
      type: 'string',
      enum: ['caught_up', 'stopped'],
      default: 'caught_up',
      title: 'CDC read ends',
      description:
        'CDC only. `caught_up`: the sync ends once every transaction committed before it started was read (batch syncs). `stopped`: keep streaming until the sync is stopped (SIGTERM/SIGINT).',
      order: 11,
    },
    heartbeat_interval_ms: {
      type: 'integer',
      minimum: 100,
      default: 10_000,
      title: 'Heartbeat interval (ms)',
      description: 'CDC only. How often an idle stream checkpoints the server position, so the slot keeps advancing and WAL does not pile up.',
      order: 12,
    },
    output_format: {
      type: 'string',
      enum: ['tributary', 'debezium'],
      default: 'tributary',
      title: 'Change record format',
      description:
        '`tributary`: flat rows plus `_tributary_op`, `_tributary_position`, `_tributary_txid`, `_tributary_commit_time`, `_tributary_before` (the lake and keyed destinations use it). `debezium`: the Debezium envelope `{before, after, source, op, ts_ms}`.',
      order: 13,
    },
    chunk_size: {
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
      default: 10_000,
      title: 'Chunk size',
      description: 'Rows per snapshot/full-refresh chunk; a checkpoint follows every chunk.',
      order: 14,
    },
    cursor_fields: {
      type: 'object',
      additionalProperties: { type: 'string' },
      default: {},
      title: 'Default cursor columns',
      description:
        'Standard method: cursor column per table (`table` or `schema.table`), overriding the default (`updated_at`, `modified_at`, `last_modified` when present).',
      order: 15,
    },
  },
} as const;

export type PostgresConfig = ConfigOf<typeof postgresConfigSchema>;
