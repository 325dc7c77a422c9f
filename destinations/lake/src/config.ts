import { TributaryError, type ConfigOf, type DestinationStream } from '@tributary/core';

const streamMappingSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    customer_id_field: { type: 'string', minLength: 1, description: 'Record field holding the customer id. Default: `customer_id` when the stream schema has it, else the first primary-key field.' },
    tenant_id_field: { type: 'string', minLength: 1, description: 'Record field holding the tenant id. Default: `tenant_id`.' },
    tenant_id: { type: 'string', minLength: 1, description: 'A constant tenant for every record of the stream (instead of a field).' },
    event_time_field: { type: 'string', minLength: 1, description: 'Record field holding the event time (ISO-8601 or epoch ms). Default: `event_time` when the schema has it, else the cursor field, else the CDC commit time, else the ingest time.' },
    event_id_field: { type: 'string', minLength: 1, description: 'Record field that already is a unique, stable event id. Default: a hash of stream, primary key and source position (or cursor), so replays give the same id.' },
    op: { type: 'string', enum: ['snapshot', 'insert', 'update', 'delete'], description: 'Operation of records without a CDC `_tributary_op`. Default: `snapshot` for full refresh, `update` for incremental.' },
    deleted_field: {
      type: 'string',
      minLength: 1,
      description:
        'Record field that marks a deleted record (Salesforce `IsDeleted`, HubSpot `archived`, Airbyte `_ab_cdc_deleted_at`): a record whose value there is `true` or a non-empty string is stored with op `delete` (point-in-time reads leave its key out; the row keeps its payload); a date-time string there (HubSpot `archivedAt`) is the delete\'s event time. A CDC `_tributary_op` takes precedence. Default: none.',
    },
    source_system: { type: 'string', minLength: 1, description: 'Overrides the lake-wide `source_system` for this stream.' },
  },
} as const;

/** The Airbyte `connectionSpecification` of the lake destination. */
export const lakeConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Event lake destination',
  type: 'object',
  additionalProperties: false,
  properties: {
    target: { type: 'string', enum: ['local', 's3'], default: 'local', title: 'Target', description: '`local`: a directory (the embedded default). `s3`: a bucket through the AWS SDK.', order: 0 },
    path: { type: 'string', minLength: 1, default: './lake', title: 'Local directory', description: 'Root of the lake when `target` is `local` (relative to the working directory). A sync creates it if missing; readers and `tributary lake` commands refuse a directory no sync has written to (no `_tributary/` in it).', order: 1 },
    bucket: { type: 'string', minLength: 1, title: 'S3 bucket', description: 'Bucket of the lake when `target` is `s3`.', order: 2 },
    prefix: { type: 'string', default: '', title: 'S3 key prefix', description: 'Key prefix of the lake inside the bucket, e.g. `lake/` (empty: the bucket root).', order: 3 },
    region: { type: 'string', default: 'us-east-1', title: 'S3 region', order: 4 },
    endpoint: { type: 'string', title: 'S3 endpoint', description: 'Custom endpoint URL (MinIO, moto, a VPC endpoint). Default: AWS.', order: 5 },
    force_path_style: { type: 'boolean', default: false, title: 'Path-style addressing', description: 'Address the bucket as `endpoint/bucket/key` (needed by most S3-compatible servers).', order: 6 },
    access_key_id: { type: 'string', title: 'Access key id', description: 'Default: the AWS SDK credential chain (environment, profile, instance role).', airbyte_secret: true, order: 7 },
    secret_access_key: { type: 'string', title: 'Secret access key', airbyte_secret: true, order: 8 },
    session_token: { type: 'string', title: 'Session token', airbyte_secret: true, order: 9 },
    partitioning: {
      type: 'string',
      enum: ['tenant_day', 'tenant_month', 'tenant'],
      default: 'tenant_day',
      title: 'Partitioning',
      description: 'Hive-style directories under each stream: `tenant_id=…/event_date=YYYY-MM-DD`, `tenant_id=…/event_month=YYYY-MM`, or `tenant_id=…` only.',
      order: 10,
    },
    source_system: { type: 'string', minLength: 1, default: 'tributary', title: 'Source system', description: 'Value of the `source_system` column (e.g. `hubspot`, `postgres-crm`).', order: 11 },
    default_tenant: { type: 'string', minLength: 1, title: 'Default tenant', description: 'Tenant of records that have no tenant field (otherwise they are quarantined).', order: 12 },
    streams: {
      type: 'object',
      title: 'Envelope mapping per stream',
      description: 'Per stream name: which record fields give the customer id, tenant, event time and event id.',
      additionalProperties: streamMappingSchema,
      default: {},
      order: 13,
    },
    validate_records: { type: 'boolean', default: true, title: 'Validate records', description: 'Check each record against its stream schema; failures go to the quarantine area with the reason.', order: 14 },
    compression: { type: 'string', enum: ['zstd', 'snappy'], default: 'zstd', title: 'Parquet compression', order: 15 },
    rows_per_file: { type: 'integer', minimum: 1000, default: 125000, title: 'Rows per write', description: 'A stream stage this large is handed to a background Parquet write before the commit (bounds memory; DuckDB writes while the next rows are staged). The last stage is written at the commit, which waits for it: smaller stages shorten that wait, larger ones make fewer, larger files.', order: 16 },
    row_group_size: { type: 'integer', minimum: 1000, default: 122880, title: 'Rows per row group', order: 17 },
    on_breaking_change: {
      type: 'string',
      enum: ['fail', 'new_column'],
      default: 'fail',
      title: 'On a breaking schema change',
      description: '`fail`: refuse the sync with a message naming the column. `new_column`: write the field to a new versioned column `<field>__v<version>`.',
      order: 18,
    },
  },
} as const;

export type LakeConfig = ConfigOf<typeof lakeConfigSchema>;
export type StreamMappingConfig = NonNullable<LakeConfig['streams']>[string];
export type EnvelopeOp = 'snapshot' | 'insert' | 'update' | 'delete';

/** How one stream's records become envelope rows. */
export interface StreamMapping {
  readonly stream: string;
  readonly customerIdField: string;
  readonly tenant: { readonly field: string; readonly fallback?: string } | { readonly constant: string };
  /** Undefined: CDC commit time, else ingest time. */
  readonly eventTimeField?: string;
  readonly eventIdField?: string;
  readonly defaultOp: EnvelopeOp;
  /** Field whose `marksDeleted` value makes a record without `_tributary_op` a delete. */
  readonly deletedField?: string;
  readonly sourceSystem: string;
  readonly primaryKey: readonly (readonly string[])[];
  readonly cursorField?: readonly string[];
}

/**
 * Refuses a `deleted_field` that names a field every record carries as something else (a key,
 * the tenant, the event time): every record with a value there would be a delete.
 */
function checkDeletedField(stream: string, deletedField: string | undefined, others: ReadonlyArray<readonly [string, string | undefined]>): void {
  if (deletedField === undefined) return;
  const clash = others.find(([, field]) => field === deletedField);
  if (clash) {
    throw new TributaryError('config', {
      userMessage: `Stream "${stream}": deleted_field "${deletedField}" is ${clash[0]}, so every record that has it would be stored as a delete; name the field that marks deletions (Salesforce IsDeleted, HubSpot archivedAt)`,
    });
  }
}

export function resolveMapping(config: LakeConfig, stream: DestinationStream): StreamMapping {
  const own = config.streams?.[stream.key] ?? config.streams?.[stream.name] ?? {};
  const properties = (stream.jsonSchema.properties ?? {}) as Record<string, unknown>;
  const customerIdField = own.customer_id_field ?? ('customer_id' in properties ? 'customer_id' : stream.primaryKey[0]?.[0]);
  if (customerIdField === undefined) {
    throw new TributaryError('config', {
      userMessage: `Stream "${stream.key}" has no customer_id field and no primary key: set streams.${stream.name}.customer_id_field in the lake config`,
    });
  }
  const tenant = own.tenant_id !== undefined ? { constant: own.tenant_id } : { field: own.tenant_id_field ?? 'tenant_id', ...(config.default_tenant !== undefined ? { fallback: config.default_tenant } : {}) };
  const cursor = stream.cursorField.length > 0 ? stream.cursorField : undefined;
  // A CDC stream's cursor is its change position (`_tributary_position`), not a time: its
  // event time is the commit time (see envelope.ts).
  const cursorTime = cursor?.length === 1 && !cursor[0]!.startsWith('_tributary_') ? cursor[0] : undefined;
  const eventTimeField = own.event_time_field ?? ('event_time' in properties ? 'event_time' : cursorTime);
  checkDeletedField(stream.key, own.deleted_field, [
    ['the customer id field', customerIdField],
    ['the tenant field', 'field' in tenant ? tenant.field : undefined],
    ['the event time field', eventTimeField],
    ...stream.primaryKey.filter((path) => path.length === 1).map((path) => ['a primary key field', path[0]] as [string, string | undefined]),
  ]);
  return {
    stream: stream.key,
    customerIdField,
    tenant,
    ...(eventTimeField !== undefined ? { eventTimeField } : {}),
    ...(own.event_id_field !== undefined ? { eventIdField: own.event_id_field } : {}),
    defaultOp: own.op ?? (stream.syncMode === 'full_refresh' ? 'snapshot' : 'update'),
    ...(own.deleted_field !== undefined ? { deletedField: own.deleted_field } : {}),
    sourceSystem: own.source_system ?? config.source_system ?? 'tributary',
    primaryKey: stream.primaryKey,
    ...(cursor !== undefined ? { cursorField: cursor } : {}),
  };
}
