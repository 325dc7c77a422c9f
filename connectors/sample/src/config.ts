import { TributaryError, type ConfigOf } from '@tributary/core';

/** Upper bound for one stream's size: keeps every cursor inside the ISO-8601 year range. */
export const MAX_RECORDS_PER_STREAM = 100_000_000;

/** The Airbyte `connectionSpecification` of the sample source. */
export const sampleConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Sample CRM source',
  type: 'object',
  additionalProperties: false,
  properties: {
    seed: {
      type: 'integer',
      title: 'Seed',
      description: 'Same seed and settings, same records. Change it to get a different dataset.',
      default: 42,
      order: 0,
    },
    tenants: {
      type: 'integer',
      title: 'Tenants',
      description: 'Number of tenants the companies are spread over.',
      minimum: 1,
      maximum: 10_000,
      default: 3,
      order: 1,
    },
    counts: {
      type: 'object',
      title: 'Records per stream',
      additionalProperties: false,
      default: {},
      order: 2,
      properties: {
        companies: { type: 'integer', description: 'Companies to generate.', minimum: 0, maximum: MAX_RECORDS_PER_STREAM, default: 100 },
        contacts: { type: 'integer', description: 'Contacts to generate (each belongs to a company).', minimum: 0, maximum: MAX_RECORDS_PER_STREAM, default: 1000 },
        deals: { type: 'integer', description: 'Deals to generate (each with a company and a contact).', minimum: 0, maximum: MAX_RECORDS_PER_STREAM, default: 300 },
        activities: { type: 'integer', description: 'Activity events to generate (each about a contact).', minimum: 0, maximum: MAX_RECORDS_PER_STREAM, default: 5000 },
      },
    },
    checkpoint_every: {
      type: 'integer',
      title: 'Checkpoint every',
      description: 'Records between two checkpoints of a stream.',
      minimum: 1,
      default: 1000,
      order: 3,
    },
    page_size: {
      type: 'integer',
      title: 'Page size',
      description: 'Records per page (one `records` message), like an API page; 1 yields every record on its own.',
      minimum: 1,
      maximum: 100_000,
      default: 1000,
      order: 3,
    },
    start_date: {
      type: 'string',
      format: 'date-time',
      title: 'Start date',
      description: 'Where the cursor of every stream begins: records are spread forward in time from here, never before it.',
      default: '2024-01-01T00:00:00.000Z',
      order: 4,
    },
    api_key: {
      type: 'string',
      title: 'API key',
      description: 'Stand-in credential. Any value is accepted except "invalid", which the stand-in API refuses (to exercise auth errors).',
      airbyte_secret: true,
      order: 5,
    },
  },
} as const;

export type SampleConfig = ConfigOf<typeof sampleConfigSchema>;

export type SampleStream = 'companies' | 'contacts' | 'deals' | 'activities';
export const SAMPLE_STREAMS: readonly SampleStream[] = ['companies', 'contacts', 'deals', 'activities'];

/** The config with every default applied and `start_date` parsed. */
export interface ResolvedConfig {
  seed: number;
  tenants: number;
  counts: Record<SampleStream, number>;
  checkpointEvery: number;
  pageSize: number;
  startMs: number;
  startDate: string;
}

/** The value of `api_key` the stand-in API refuses (for testing auth failures). */
const REFUSED_API_KEY = 'invalid';

function positiveInt(value: unknown, fallback: number, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TributaryError('config', { userMessage: `config.${field} must be an integer between ${min} and ${max}` });
  }
  return value;
}

/**
 * Applies defaults (callers that skip `parseConfig`, e.g. benchmarks, pass partial configs)
 * and checks the values the generator depends on. Never echoes `api_key`.
 */
export function resolveConfig(config: Partial<SampleConfig> | undefined): ResolvedConfig {
  const raw = config ?? {};
  const counts = (raw.counts ?? {}) as Partial<Record<SampleStream, number>>;
  const startDate = raw.start_date ?? sampleConfigSchema.properties.start_date.default;
  const startMs = Date.parse(startDate);
  if (!Number.isFinite(startMs)) {
    throw new TributaryError('config', { userMessage: 'config.start_date must be an ISO-8601 date-time such as 2024-01-01T00:00:00Z' });
  }
  const countDefaults = sampleConfigSchema.properties.counts.properties;
  return {
    seed: positiveInt(raw.seed, sampleConfigSchema.properties.seed.default, 'seed', Number.MIN_SAFE_INTEGER),
    tenants: positiveInt(raw.tenants, sampleConfigSchema.properties.tenants.default, 'tenants', 1, 10_000),
    counts: {
      companies: positiveInt(counts.companies, countDefaults.companies.default, 'counts.companies', 0, MAX_RECORDS_PER_STREAM),
      contacts: positiveInt(counts.contacts, countDefaults.contacts.default, 'counts.contacts', 0, MAX_RECORDS_PER_STREAM),
      deals: positiveInt(counts.deals, countDefaults.deals.default, 'counts.deals', 0, MAX_RECORDS_PER_STREAM),
      activities: positiveInt(counts.activities, countDefaults.activities.default, 'counts.activities', 0, MAX_RECORDS_PER_STREAM),
    },
    checkpointEvery: positiveInt(raw.checkpoint_every, sampleConfigSchema.properties.checkpoint_every.default, 'checkpoint_every', 1),
    pageSize: positiveInt(raw.page_size, sampleConfigSchema.properties.page_size.default, 'page_size', 1, 100_000),
    startMs,
    startDate,
  };
}

/**
 * The stand-in API's credential check. The error deliberately never contains the key
 * (nor the refused literal), so it is safe to show even without redaction.
 */
export function assertApiKey(config: Partial<SampleConfig> | undefined): void {
  if (config?.api_key === REFUSED_API_KEY) {
    throw new TributaryError('auth', {
      userMessage: 'The sample API refused the configured api_key. Set api_key to another value, or remove it.',
    });
  }
}
