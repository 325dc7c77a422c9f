/**
 * A configured catalog read from a file (`tributary write --catalog`), checked as
 * `tributary sync` checks the catalog it builds, before any connector is opened: its shape,
 * then what `runSync` refuses (`checkConfiguredCatalog`), then the fields its primary keys and
 * cursors name (`checkConfiguredFields`). `tributary read --catalog` checks its catalog's
 * shape and streams against the source's discovered catalog (`checkReadCatalogFile`).
 * Every refusal is a `config` error.
 */
import { compileSchema, describeSchemaErrors } from '../config/schema.js';
import type { Destination } from '../connector/destination.js';
import { TributaryError } from '../errors.js';
import type { AirbyteCatalog, ConfiguredAirbyteCatalog } from '../protocol/messages.js';
import { checkConfiguredCatalog } from '../runtime/sync.js';
import { checkConfiguredFields } from './sync-file.js';

const fieldPath = { type: 'array', items: { type: 'string' } } as const;

/**
 * The parts of Airbyte's ConfiguredAirbyteCatalog the runtime reads; other properties pass.
 * `destinationSyncModes`: the modes accepted (those the runtime can write, or for `read`,
 * which runs no destination, every mode of the protocol).
 */
const catalogSchema = (destinationSyncModes: readonly string[]) =>
  ({
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
            destination_sync_mode: { enum: destinationSyncModes },
            cursor_field: fieldPath,
            primary_key: { type: 'array', items: fieldPath },
          },
        },
      },
    },
  }) as const;

const configuredCatalogSchema = catalogSchema(['append', 'overwrite', 'append_dedup']);
const readCatalogSchema = catalogSchema(['append', 'overwrite', 'append_dedup', 'update', 'soft_delete']);

/** `value` checked against `schema`, or the `config` error locating its first problems. */
function checkShape(value: unknown, path: string, schema: object): ConfiguredAirbyteCatalog {
  const validate = compileSchema(schema);
  if (!validate(value)) {
    const problems = describeSchemaErrors(validate.errors, 'catalog').slice(0, 3).join('; ');
    throw new TributaryError('config', { userMessage: `Catalog ${path} is not a configured catalog: ${problems}` });
  }
  return value as ConfiguredAirbyteCatalog;
}

/** `value` (the parsed file at `path`) as a configured catalog `destination` can be run with, or a `config` error. */
export function checkCatalogFile(value: unknown, path: string, destination: Destination): ConfiguredAirbyteCatalog {
  const catalog = checkShape(value, path, configuredCatalogSchema);
  checkConfiguredCatalog(catalog, destination);
  for (const c of catalog.streams) checkConfiguredFields(c);
  return catalog;
}

/**
 * `value` (the parsed file at `path`, `tributary read --catalog`) as a configured catalog the
 * source can read, or a `config` error: its shape (any destination_sync_mode of the
 * protocol: no destination runs), at least one stream, and each stream one the source
 * discovered (same name and namespace) in a sync_mode it supports. Without this a malformed
 * catalog failed inside the source as "Unexpected error" (exit 1), and a source that does not
 * check the catalog itself read a stream it does not have as an empty one.
 */
export function checkReadCatalogFile(value: unknown, path: string, discovered: AirbyteCatalog): ConfiguredAirbyteCatalog {
  const catalog = checkShape(value, path, readCatalogSchema);
  if (catalog.streams.length === 0) throw new TributaryError('config', { userMessage: `No streams selected: the catalog ${path} is empty` });
  const offered = discovered.streams.map((s) => (s.namespace ? `${s.namespace}.${s.name}` : s.name)).join(', ');
  for (const c of catalog.streams) {
    const stream = discovered.streams.find((s) => s.name === c.stream.name && (s.namespace ?? undefined) === (c.stream.namespace ?? undefined));
    const named = c.stream.namespace ? `"${c.stream.name}" in namespace "${c.stream.namespace}"` : `"${c.stream.name}"`;
    if (!stream) {
      throw new TributaryError('config', { userMessage: `Catalog ${path} selects stream ${named}, which the source does not offer. The source offers: ${offered}` });
    }
    if (!stream.supported_sync_modes.includes(c.sync_mode)) {
      throw new TributaryError('config', {
        userMessage: `Catalog ${path}: stream ${named} does not support sync_mode ${c.sync_mode} (supported: ${stream.supported_sync_modes.join(', ')})`,
      });
    }
  }
  return catalog;
}
