/**
 * Config schemas of the source and the writer (Airbyte `connectionSpecification`s). The
 * connection fields are shared; secrets are marked `airbyte_secret` so that the runtime
 * redacts them everywhere.
 */

const connectionProperties = {
  login_url: {
    type: 'string',
    format: 'uri',
    default: 'https://login.salesforce.com',
    title: 'Login URL',
    description: 'OAuth 2.0 server: https://login.salesforce.com, https://test.salesforce.com for sandboxes, or a My Domain URL.',
    order: 0,
  },
  instance_url: {
    type: 'string',
    format: 'uri',
    title: 'Instance URL',
    description: 'The org’s instance (https://mydomain.my.salesforce.com). Optional: the token endpoint reports it. Required with access_token.',
    order: 1,
  },
  api_version: { type: 'string', pattern: '^\\d{2}\\.0$', default: '60.0', title: 'API version', description: 'REST API version, e.g. 60.0.', order: 2 },
  client_id: { type: 'string', title: 'Client ID', description: 'Consumer key of the connected app.', order: 3 },
  client_secret: { type: 'string', title: 'Client secret', description: 'Consumer secret of the connected app.', airbyte_secret: true, order: 4 },
  refresh_token: {
    type: 'string',
    title: 'Refresh token',
    description: 'OAuth 2.0 refresh token; new access tokens are requested with it whenever Salesforce reports the session expired.',
    airbyte_secret: true,
    order: 5,
  },
  username: { type: 'string', title: 'Username', description: 'For the username-password flow (with client_id and client_secret) instead of a refresh token.', order: 6 },
  password: { type: 'string', title: 'Password', description: 'Password followed by the security token, for the username-password flow.', airbyte_secret: true, order: 7 },
  access_token: {
    type: 'string',
    title: 'Access token',
    description: 'A session token to use as is (with instance_url). Without a refresh token or username/password it cannot be renewed when it expires.',
    airbyte_secret: true,
    order: 8,
  },
  response_idle_timeout_ms: {
    type: 'integer',
    minimum: 100,
    // Node's fetch gives up on a body silent for 300 s by itself: a longer setting would not apply.
    maximum: 300_000,
    default: 120_000,
    title: 'Stalled answer timeout (ms)',
    description:
      'A request fails, and is retried, when Salesforce stops sending an answer it started (its headers arrived) for this long. It bounds the wait between two pieces of an answer, not the whole answer: a large query page or Bulk results page may take longer in total.',
    order: 9,
  },
} as const;

export const sourceSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Salesforce source',
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    ...connectionProperties,
    streams: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      uniqueItems: true,
      title: 'Objects',
      description: 'API names of the objects to offer as streams (default: every queryable, replicateable object). Each one costs a describe call in discover.',
      order: 10,
    },
    start_date: { type: 'string', format: 'date-time', title: 'Start date', description: 'The first sync reads records modified at or after this instant (default: all).', order: 11 },
    page_size: {
      type: 'integer',
      minimum: 200,
      maximum: 2000,
      default: 2000,
      title: 'REST page size',
      description: 'Rows per REST query page (Sforce-Query-Options batchSize; Salesforce treats it as a hint).',
      order: 12,
    },
    bulk: {
      type: 'string',
      enum: ['auto', 'always', 'never'],
      default: 'auto',
      title: 'Bulk API 2.0',
      description: '`auto` reads a stream through Bulk API 2.0 when it has at least bulk_threshold rows to read, `always` for every stream, `never` for none.',
      order: 13,
    },
    bulk_threshold: { type: 'integer', minimum: 1, default: 50_000, title: 'Bulk threshold', description: 'Rows to read from which `auto` uses Bulk API 2.0.', order: 14 },
    bulk_page_size: {
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
      default: 50_000,
      title: 'Bulk page size',
      description: 'Rows per Bulk API 2.0 results page (maxRecords): fewer API calls per row; each page is handed on in chunks of page_size rows, each followed by a checkpoint.',
      order: 15,
    },
    bulk_poll_interval_ms: { type: 'integer', minimum: 0, default: 2000, title: 'Bulk poll interval (ms)', description: 'Wait between two status polls of a Bulk query job.', order: 16 },
    lookback_seconds: {
      type: 'integer',
      minimum: 0,
      default: 300,
      title: 'Look-back window (s)',
      description:
        'Salesforce stamps SystemModstamp when a transaction starts, so a long transaction can commit rows behind a position already read. Each sync re-reads rows modified within this window before the previous sync started (repeats are absorbed by keyed destinations).',
      order: 17,
    },
    max_api_usage: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.8,
      title: 'Max share of the daily API limit',
      description: 'The sync stops cleanly, with its state saved, once Sforce-Limit-Info reports this share of the org’s daily API requests used.',
      order: 18,
    },
    hard_deletes: {
      type: 'boolean',
      default: true,
      title: 'Hard deletes',
      description: 'Incremental syncs also ask the getDeleted endpoint for records deleted and purged from the recycle bin, and emit them as IsDeleted tombstones.',
      order: 19,
    },
  },
} as const;

export const writerSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Salesforce writer',
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    ...connectionProperties,
    objects: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      uniqueItems: true,
      title: 'Objects',
      description: 'API names of the objects offered for writing (default: every object with an external id field).',
      order: 10,
    },
    all_or_none: {
      type: 'boolean',
      default: false,
      title: 'All or none',
      description: 'Send each batch with allOrNone: one refused record rolls back the whole batch of up to 200.',
      order: 11,
    },
    max_api_usage: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.9,
      title: 'Max share of the daily API limit',
      description: 'The run halts once Sforce-Limit-Info reports this share of the org’s daily API requests used; the records not yet sent fail as retryable.',
      order: 12,
    },
  },
} as const;
