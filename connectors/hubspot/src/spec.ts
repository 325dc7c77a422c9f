/** The Airbyte `connectionSpecification`s of the HubSpot source and writer. */

const accessToken = {
  type: 'string',
  minLength: 1,
  title: 'Access token',
  description: 'A private app access token (pat-…) with the crm.objects.*.read scopes (and .write for the writer).',
  airbyte_secret: true,
  order: 0,
} as const;

const baseUrl = {
  type: 'string',
  format: 'uri',
  default: 'https://api.hubapi.com',
  title: 'API base URL',
  description: 'HubSpot API root. Change it only to reach a proxy or the local simulator.',
  order: 1,
} as const;

const requestTimeout = {
  type: 'integer',
  minimum: 1,
  maximum: 600,
  default: 60,
  title: 'Request timeout (seconds)',
  description:
    'How long a request may go without a byte from HubSpot before it is abandoned and retried (a stalled connection would otherwise hang the sync).',
  order: 9,
} as const;

/**
 * An object type as HubSpot's object endpoints take it: a name (`contacts`, a custom object's
 * `p12345_cars`; letters, digits, underscores) or an object type id (`0-1`, `2-3465`).
 */
const OBJECT_TYPE = '(?:[A-Za-z0-9_]+|[0-9]+-[0-9]+)';

export const sourceSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'HubSpot source',
  type: 'object',
  additionalProperties: false,
  required: ['access_token'],
  properties: {
    access_token: accessToken,
    base_url: baseUrl,
    object_types: {
      type: 'array',
      items: { type: 'string', pattern: `^${OBJECT_TYPE}$` },
      minItems: 1,
      default: ['contacts', 'companies', 'deals'],
      title: 'Object types',
      description: 'CRM object types to offer as streams, by name (contacts, p12345_cars) or object type id (0-1, 2-3465); their fields come from the properties API.',
      order: 2,
    },
    associations: {
      type: 'array',
      items: { type: 'string', pattern: `^${OBJECT_TYPE}:${OBJECT_TYPE}$` },
      default: ['contacts:companies'],
      title: 'Associations',
      description: 'Association streams as "from:to" object types (associations v4), e.g. contacts:companies.',
      order: 3,
    },
    start_date: {
      type: 'string',
      format: 'date-time',
      title: 'Start date',
      description: 'The first incremental sync reads objects modified after this instant (default: all).',
      order: 4,
    },
    search_lag_seconds: {
      type: 'integer',
      minimum: 0,
      maximum: 3600,
      default: 30,
      title: 'Search index look-back (seconds)',
      description:
        'HubSpot search trails writes. An incremental sync reads changes up to this many seconds ago; newer ones are read by the next sync, once indexed.',
      order: 5,
    },
    rate_limit_wait_seconds: {
      type: 'integer',
      minimum: 0,
      maximum: 3600,
      default: 300,
      title: 'Rate-limit wait (seconds)',
      description:
        'How long one request keeps waiting out HubSpot 429s of the rolling (10-second or search per-second) limits before the sync fails with its progress saved. 0: only the usual retries. A DAILY 429 always stops at once.',
      order: 6,
    },
    property_columns: {
      type: 'boolean',
      default: false,
      title: 'Property columns',
      description:
        'Also emit each property as a top-level field named after it with the prefix properties_ (properties_email, properties_amount…), declared in the stream schema with the property\'s type: one typed column per property in the event lake. The properties object stays. Properties whose field names would collide (ignoring letter case) stay in properties only.',
      order: 7,
    },
    request_timeout_seconds: requestTimeout,
  },
} as const;

export const writerSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'HubSpot writer',
  type: 'object',
  additionalProperties: false,
  required: ['access_token'],
  properties: {
    access_token: accessToken,
    base_url: baseUrl,
    request_timeout_seconds: requestTimeout,
  },
} as const;
