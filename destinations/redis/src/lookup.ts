import type { RedisConnectionOptions } from './config.js';
import { decodeEntityFields, entityKey, type DecodedGroup } from './layout.js';
import { closeRedisClient, createRedisClient, hgetallMany, toRedisError, type Redis } from './redis-client.js';


export interface FeatureLookupOptions extends RedisConnectionOptions {
  /** Must match the destination's `key_prefix` (default `trib`). */
  keyPrefix?: string;
  /** Use this client instead of opening one; `close()` then leaves it open. */
  client?: Redis;
  /** Clock for ages and expiry, epoch ms (default `Date.now`). */
  now?: () => number;
}

/** One feature group of one entity, as stored by the last write that won. */
export interface FeatureGroupValues {
  /** Event time of these values, ISO-8601. */
  eventTime: string;
  eventTimeMs: number;
  /** now − event time, ms: the staleness a caller compares with its freshness bound. Negative for event times in the future. */
  ageMs: number;
  /** When the group expires (ISO-8601), absent when it never does. */
  expiresAt?: string;
  /** Feature name → value, as the record held it (JSON). */
  features: Record<string, unknown>;
}

export interface EntityFeatures {
  tenant: string;
  entityType: string;
  entityId: string;
  /** False when no live group is stored for the entity. */
  found: boolean;
  /** Live groups only: expired ones are left out even before Redis removed them. */
  groups: Record<string, FeatureGroupValues>;
}

export interface LookupQuery {
  tenant: string;
  entityType: string;
  entityId: string;
  /** Only these feature groups (default: all). */
  groups?: readonly string[];
}

export interface LookupManyQuery {
  tenant: string;
  entityType: string;
  entityIds: readonly string[];
  groups?: readonly string[];
}

export interface FeatureLookup {
  /** Features of one entity: one round trip (HGETALL).  */
  get(query: LookupQuery): Promise<EntityFeatures>;
  /** Features of many entities, in the order of `entityIds`: one round trip (an HGETALL per entity, in one pipeline). */
  getMany(query: LookupManyQuery): Promise<EntityFeatures[]>;
  close(): Promise<void>;
}

/**
 * Read side of the feature store. Reads the hashes the destination writes and reports, per
 * group, the values with their event time and age, so the caller can enforce freshness.
 * Redis errors are thrown as `TributaryError` (`transient` when Redis is unreachable).
 */
export function createFeatureLookup(options: FeatureLookupOptions = {}): FeatureLookup {
  const owned = options.client === undefined;
  const client = options.client ?? createRedisClient(options, { lazyConnect: false });
  if (owned) client.on('error', () => undefined); // reconnects on its own; errors reach the calls
  const prefix = options.keyPrefix ?? 'trib';
  const now = options.now ?? Date.now;

  const build = (tenant: string, entityType: string, entityId: string, decoded: Map<string, DecodedGroup>, groups: readonly string[] | undefined, at: number): EntityFeatures => {
    const out: EntityFeatures = { tenant, entityType, entityId, found: false, groups: {} };
    for (const [name, g] of decoded) {
      if (groups && !groups.includes(name)) continue;
      if (g.expiresAtMs !== undefined && g.expiresAtMs <= at) continue;
      out.groups[name] = {
        eventTime: new Date(g.eventTimeMs).toISOString(),
        eventTimeMs: g.eventTimeMs,
        ageMs: at - g.eventTimeMs,
        ...(g.expiresAtMs !== undefined ? { expiresAt: new Date(g.expiresAtMs).toISOString() } : {}),
        features: g.features,
      };
      out.found = true;
    }
    return out;
  };

  return {
    async get({ tenant, entityType, entityId, groups }) {
      let fields: string[];
      try {
        fields = (await client.call('HGETALL', entityKey(prefix, tenant, entityType, entityId))) as string[];
      } catch (error) {
        throw toRedisError(error, 'lookup');
      }
      return build(tenant, entityType, entityId, decodeEntityFields(fields), groups, now());
    },

    async getMany({ tenant, entityType, entityIds, groups }) {
      if (entityIds.length === 0) return [];
      const keys = entityIds.map((id) => entityKey(prefix, tenant, entityType, id));
      let replies: string[][];
      try {
        replies = await hgetallMany(client, keys);
      } catch (error) {
        throw toRedisError(error, 'lookup');
      }
      const at = now();
      return entityIds.map((id, i) => build(tenant, entityType, id, decodeEntityFields(replies[i] ?? []), groups, at));
    },

    async close() {
      if (owned) await closeRedisClient(client);
    },
  };
}
