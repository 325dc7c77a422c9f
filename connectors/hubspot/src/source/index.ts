import {
  TributaryError,
  createRateLimiter,
  defineSource,
  streamStateOf,
  type AirbyteStream,
  type ConnectorContext,
} from '@tributary/core';
import { DailyLimitError, hubspotApi, type HubspotApi } from '../api/client.js';
import { sourceSpec } from '../spec.js';
import { associationJsonSchema, associationStreamName, readAssociations, type AssociationPair } from './associations.js';
import { readFullRefresh, readIncremental } from './objects.js';
import { objectSchema, propertyFields, unflattened } from './schema.js';

/** The property HubSpot bumps on every change: `lastmodifieddate` for contacts (type id `0-1`) only. */
export function modifiedPropertyOf(objectType: string): string {
  return objectType === 'contacts' || objectType === '0-1' ? 'lastmodifieddate' : 'hs_lastmodifieddate';
}

/**
 * Private apps on Professional and Enterprise accounts: 190 requests per rolling 10 s. The
 * limiter paces them evenly — 19 per 1.02 s — instead of bursting 190 and idling: any 10 s
 * holds at most 190 starts (ten 1.02 s windows cover it), 191 consecutive starts span at
 * least 10.2 s, so up to 200 ms of network jitter between start and arrival (HubSpot counts
 * arrivals) never tips a window over, and the budget is used at 98 % all the time.
 * Accounts with a lower limit are detected from `X-HubSpot-RateLimit-Max`, which lowers the
 * cap in proportion (see `limitFromHeaders`).
 */
export const HUBSPOT_RATE_LIMIT = { requests: 19, perMs: 1_020 } as const;

/** The limiter cap matching HubSpot's reported limit (`max` per `intervalMs`), for a policy of `perMs`. */
export function scaledLimit(max: number, intervalMs: number, perMs: number, requestsPerCall = 1): number {
  return Math.max(1, Math.floor((max * perMs) / intervalMs / requestsPerCall));
}

/** Search has its own limit (documented as 4 per second per token in the changelog, 5 in places): 4 to be safe. */
export const SEARCH_RATE_LIMIT = { requests: 4, perMs: 1_000 } as const;

function pairsOf(config: { associations?: readonly string[] }): AssociationPair[] {
  return (config.associations ?? []).map((text) => {
    const [from, to] = text.split(':') as [string, string];
    return { from, to };
  });
}

async function propertyTypes(api: HubspotApi, objectType: string): Promise<Map<string, string>> {
  const properties = await api.properties(objectType);
  return new Map(properties.map((p) => [p.name, p.type]));
}

/**
 * The top-level property fields of a stream when `property_columns` is on (undefined when
 * off), warning about properties a name collision keeps out of them.
 */
function fieldsOf(ctx: ConnectorContext, config: { property_columns: boolean }, stream: string, names: readonly string[]): ReadonlyMap<string, string> | undefined {
  if (!config.property_columns) return undefined;
  const fields = propertyFields(names);
  const left = unflattened(names, fields);
  if (left.length > 0) {
    ctx.logger.warn(`HubSpot ${stream}: properties ${left.join(', ')} get no properties_<name> field (their names collide, ignoring letter case); their values are in properties only`, { stream, properties: left });
  }
  return fields;
}

function checkFailure(error: unknown): TributaryError {
  if (TributaryError.is(error, 'auth')) return error;
  const reason = TributaryError.is(error) ? error.userMessage : String(error);
  return new TributaryError('config', { userMessage: `Cannot read from HubSpot at base_url: ${reason}`, cause: error });
}

/**
 * The HubSpot CRM source: one stream per object type (fields from the properties API), full
 * refresh by listing, incremental by search on the modification date with (timestamp, id)
 * tie-breaking and a look-back for the search index, deletions from the archived listing,
 * and association streams. See objects.ts for the order and state it relies on.
 */
export const hubspotSource = defineSource({
  name: 'hubspot',
  version: '0.1.0',
  spec: { connectionSpecification: sourceSpec, supportsIncremental: true, documentationUrl: 'https://developers.hubspot.com/docs/api/crm/understanding-the-crm' },
  rateLimit: HUBSPOT_RATE_LIMIT,
  // A 429 storm outlasts five quick attempts; each retry waits at least the 1 s pause.
  retry: { maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 15_000 },

  async check(ctx, config) {
    const api = hubspotApi(ctx, config);
    try {
      await api.properties(config.object_types[0] ?? 'contacts');
    } catch (error) {
      throw checkFailure(error);
    } finally {
      api.close();
    }
  },

  async discover(ctx, config) {
    const api = hubspotApi(ctx, config);
    try {
      const streams: AirbyteStream[] = [];
      for (const objectType of config.object_types) {
        const properties = await api.properties(objectType);
        const fields = fieldsOf(ctx, config, objectType, properties.map((p) => p.name));
        streams.push({
          name: objectType,
          json_schema: objectSchema(properties, fields),
          supported_sync_modes: ['full_refresh', 'incremental'],
          source_defined_cursor: true,
          default_cursor_field: ['updatedAt'],
          source_defined_primary_key: [['id']],
          is_resumable: true,
        });
      }
      for (const pair of pairsOf(config)) {
        streams.push({
          name: associationStreamName(pair),
          json_schema: { ...associationJsonSchema },
          supported_sync_modes: ['full_refresh'],
          source_defined_primary_key: [['from_id'], ['to_id']],
          is_resumable: true,
        });
      }
      return { streams };
    } finally {
      api.close();
    }
  },

  async *read(ctx: ConnectorContext, config, catalog, state) {
    const api = hubspotApi(ctx, config, {
      searchLimiter: createRateLimiter(SEARCH_RATE_LIMIT),
      limitFromHeaders: (max, intervalMs) => scaledLimit(max, intervalMs, HUBSPOT_RATE_LIMIT.perMs),
      // A 429 storm (another app spending the account's budget) may outlast the retries below.
      rateLimitWaitMs: (config.rate_limit_wait_seconds ?? 300) * 1000,
    });
    const pairs = new Map(pairsOf(config).map((p) => [associationStreamName(p), p]));
    const startMs = config.start_date ? Date.parse(config.start_date) : 0;
    try {
      for (const configured of catalog.streams) {
        const name = configured.stream.name;
        const saved = streamStateOf(state, name);
        const pair = pairs.get(name);
        if (pair) {
          yield* readAssociations(api, pair, saved);
          continue;
        }
        if (!config.object_types.includes(name)) {
          throw new TributaryError('config', {
            userMessage: `The HubSpot source has no stream "${name}" with this config (streams: ${[...config.object_types, ...pairs.keys()].join(', ')})`,
          });
        }
        const types = await propertyTypes(api, name);
        const options = {
          objectType: name,
          types,
          fields: fieldsOf(ctx, config, name, [...types.keys()]),
          modifiedProperty: modifiedPropertyOf(name),
          startMs,
          searchLagMs: config.search_lag_seconds * 1000,
        };
        yield* configured.sync_mode === 'incremental' ? readIncremental(api, options, saved) : readFullRefresh(api, options, saved);
      }
    } catch (error) {
      // Stopping (Ctrl-C, SIGTERM): the checkpoints already yielded cover what was read.
      if (ctx.signal.aborted) return;
      if (error instanceof DailyLimitError) {
        // Not retried: the quota returns at midnight. Ending the read with this error keeps
        // every committed checkpoint, and the next sync resumes from them.
        throw new TributaryError('rate_limited', { userMessage: error.userMessage, internalMessage: error.internalMessage ?? 'DAILY', cause: error });
      }
      throw error;
    } finally {
      api.close();
    }
  },
});
