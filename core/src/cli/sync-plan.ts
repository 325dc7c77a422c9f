import { parseConfig } from '../config/schema.js';
import { createConnectorContext } from '../connector/create-context.js';
import type { Destination, DestinationStream } from '../connector/destination.js';
import type { Source } from '../connector/source.js';
import { TributaryError } from '../errors.js';
import type { ConfiguredAirbyteCatalog } from '../protocol/messages.js';
import { toDestinationStreams } from '../runtime/sync.js';
import { loadConnector } from './connector-registry.js';
import { configureCatalog, type SyncFile } from './sync-file.js';

/** What a source → destination sync file resolves to, without running it. */
export interface SyncPlan {
  source: Source;
  destination: Destination;
  /** The destination's config from the file (`${ENV}` substituted, not yet validated). */
  destinationConfig: Record<string, unknown>;
  catalog: ConfiguredAirbyteCatalog;
  /** The streams exactly as `tributary sync` opens the destination with them. */
  streams: DestinationStream[];
}

/**
 * Resolves a sync file the way `tributary sync` does — loads both connectors, validates the
 * source config, discovers, applies the file's stream selection — so tools that work on a
 * destination's data (e.g. the feature store's parity check) see the same mapping the sync
 * used. Discovery runs against the source (for a SaaS source: its API).
 */
export async function planSync(sync: SyncFile): Promise<SyncPlan> {
  if (!sync.destination) {
    throw new TributaryError('config', { userMessage: `${sync.path} has a writer, not a destination: this command needs a source → destination sync file` });
  }
  const source = await loadConnector(sync.source.connector, 'source');
  const destination = await loadConnector(sync.destination.connector, 'destination');
  const sourceConfig = parseConfig(source.spec.connectionSpecification, sync.source.config, 'source config');
  const discovered = await source.discover(
    createConnectorContext({ ...(source.rateLimit ? { rateLimit: source.rateLimit } : {}), ...(source.retry ? { retry: source.retry } : {}) }),
    sourceConfig,
  );
  const catalog = configureCatalog(discovered, sync.streams, destination.spec.supportedDestinationSyncModes);
  return { source, destination, destinationConfig: sync.destination.config, catalog, streams: toDestinationStreams(catalog) };
}
