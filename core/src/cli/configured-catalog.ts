/**
 * A configured catalog read from a file (`tributary write --catalog`), checked as
 * `tributary sync` checks the catalog it builds, before any connector is opened: its shape,
 * then what `runSync` refuses (`checkConfiguredCatalog`), then the fields its primary keys and
 * cursors name (`checkConfiguredFields`). Every refusal is a `config` error.
 */
import { compileSchema, describeSchemaErrors } from '../config/schema.js';
import type { Destination } from '../connector/destination.js';
import { TributaryError } from '../errors.js';
import type { ConfiguredAirbyteCatalog } from '../protocol/messages.js';
import { checkConfiguredCatalog } from '../runtime/sync.js';
import { checkConfiguredFields } from './sync-file.js';

const fieldPath = { type: 'array', items: { type: 'string' } } as const;

/** The parts of Airbyte's ConfiguredAirbyteCatalog the runtime reads; other properties pass. */
const configuredCatalogSchema = {
  type: 'object',
  required: ['streams'],
  properties: {
    streams: {
      type: 'array',
      items: {
        type: 'object',
        required: ['stream', 'sync_mode', 'destination_sync_mode'],
        properties: {
          stream: {
            type: 'object',
            required: ['name', 'json_schema', 'supported_sync_modes'],
            properties: {
              name: { type: 'string' },
              namespace: { type: 'string' },
              json_schema: { type: 'object' },
              supported_sync_modes: { type: 'array', items: { enum: ['full_refresh', 'incremental'] } },
            },
          },
          sync_mode: { enum: ['full_refresh', 'incremental'] },
          destination_sync_mode: { enum: ['append', 'overwrite', 'append_dedup'] },
          cursor_field: fieldPath,
          primary_key: { type: 'array', items: fieldPath },
        },
      },
    },
  },
} as const;

/** `value` (the parsed file at `path`) as a configured catalog `destination` can be run with, or a `config` error. */
export function checkCatalogFile(value: unknown, path: string, destination: Destination): ConfiguredAirbyteCatalog {
  const validate = compileSchema(configuredCatalogSchema);
  if (!validate(value)) {
    const problems = describeSchemaErrors(validate.errors, 'catalog').slice(0, 3).join('; ');
    throw new TributaryError('config', { userMessage: `Catalog ${path} is not a configured catalog: ${problems}` });
  }
  const catalog = value as ConfiguredAirbyteCatalog;
  checkConfiguredCatalog(catalog, destination);
  for (const c of catalog.streams) checkConfiguredFields(c);
  return catalog;
}
