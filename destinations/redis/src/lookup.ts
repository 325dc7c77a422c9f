import { formatIsoMs } from '@tributary/core';
import type { RedisConnectionOptions } from './config.js';
import { decodeEntityFields, entityKey, type DecodedGroup } from './layout.js';
import { createShapeTable, featureShapesKey, loadShapesFor } from './shapes.js';
import { toRedisError } from './redis-client.js';
import { createRespConnection, encodeCommands, RedisReplyError, writeBulk } from './resp-connection.js';


export interface FeatureLookupOptions extends RedisConnectionOptions {
  /** Must match the destination's `key_prefix` (default `trib`). */
  keyPrefix?: string;
  /** A lookup waiting this long for Redis without any reply fails as `transient` and its connection is dropped (default 5 s). */
  replyTimeoutMs?: number;
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
  /** False when no live group is stored for the entity (a deleted group is not live). */
  found: boolean;
  /** Live groups only: expired ones are left out even before Redis removed them, deleted ones (tombstones, after a CDC delete) too. */
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
  /** Features of one entity: one round trip (HGETALL), plus one the first time a feature shape is met (shapes.ts). */
  get(query: LookupQuery): Promise<EntityFeatures>;
  /** Features of many entities, in the order of `entityIds`: one round trip (an HGETALL per entity, in one socket write), plus one for shapes not met before. */
  getMany(query: LookupManyQuery): Promise<EntityFeatures[]>;
  close(): Promise<void>;
}

/**
 * Read side of the feature store. Reads the hashes the destination writes and reports, per
 * group, the values with their event time and age, so the caller can enforce freshness.
 * Redis errors are thrown as `TributaryError` (`transient` when Redis is unreachable).
 */
export function createFeatureLookup(options: FeatureLookupOptions = {}): FeatureLookup {
  // Its own RESP connection rather than ioredis: per 100-entity lookup it measured 0.41 ms
  // of client CPU for the HGETALLs against 0.59–0.65 ms, and half the garbage (14 against
  // 28 young-generation collections per 1,000 lookups), which is what the p99 pays for.
  // Reconnects on the next lookup after a dropped connection; nothing is queued meanwhile.
  const connection = createRespConnection(options, { replyTimeoutMs: options.replyTimeoutMs ?? 5_000 });
  const prefix = options.keyPrefix ?? 'trib';
  const now = options.now ?? Date.now;
  const shapeRegistry = featureShapesKey(prefix);
  // Shapes never change: known ones are kept for the life of the lookup; a new one costs one HMGET.
  const shapes = createShapeTable();
  const readShapes = { hmget: async (key: string, ...ids: string[]) => (await connection.call('HMGET', key, ...ids)) as (string | null)[] };

  /** HGETALL of each key in one write, with the shapes their values name loaded. */
  const fetch = async (keys: readonly string[]): Promise<Buffer[][]> => {
    try {
      // Values as bytes: shaped bodies are binary (value-codec.ts).
      const replies = await connection.send(encodeHgetalls(keys), keys.length, { bytes: true });
      const error = replies.find((r): r is RedisReplyError => r instanceof RedisReplyError);
      if (error) throw error;
      await loadShapesFor(readShapes, shapeRegistry, shapes, replies as Buffer[][]);
      return replies as Buffer[][];
    } catch (error) {
      throw toRedisError(error, 'lookup');
    }
  };

  const build = (tenant: string, entityType: string, entityId: string, decoded: Map<string, DecodedGroup>, groups: readonly string[] | undefined, at: number): EntityFeatures => {
    const out: EntityFeatures = { tenant, entityType, entityId, found: false, groups: {} };
    for (const [name, g] of decoded) {
      if (groups && !groups.includes(name)) continue;
      if (g.deleted || (g.expiresAtMs !== undefined && g.expiresAtMs <= at)) continue;
      out.groups[name] = {
        eventTime: formatIsoMs(g.eventTimeMs),
        eventTimeMs: g.eventTimeMs,
        ageMs: at - g.eventTimeMs,
        ...(g.expiresAtMs !== undefined ? { expiresAt: formatIsoMs(g.expiresAtMs) } : {}),
        features: g.features,
      };
      out.found = true;
    }
    return out;
  };

  return {
    async get({ tenant, entityType, entityId, groups }) {
      const [fields] = await fetch([entityKey(prefix, tenant, entityType, entityId)]);
      return build(tenant, entityType, entityId, decodeEntityFields(fields!, shapes), groups, now());
    },

    async getMany({ tenant, entityType, entityIds, groups }) {
      if (entityIds.length === 0) return [];
      const replies = await fetch(entityIds.map((id) => entityKey(prefix, tenant, entityType, id)));
      const at = now();
      return entityIds.map((id, i) => build(tenant, entityType, id, decodeEntityFields(replies[i]!, shapes), groups, at));
    },

    close: () => connection.close(),
  };
}

const HGETALL_HEAD = Buffer.from('*2\r\n$7\r\nHGETALL\r\n', 'latin1');

/** `HGETALL <key>` per key, as RESP in one Buffer. */
function encodeHgetalls(keys: readonly string[]): Buffer {
  if (keys.length === 1) return encodeCommands([['HGETALL', keys[0]!]]);
  let size = 0;
  for (const key of keys) size += HGETALL_HEAD.length + 16 + 3 * key.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const key of keys) {
    offset += HGETALL_HEAD.copy(out, offset);
    offset = writeBulk(out, offset, key);
  }
  return out.subarray(0, offset);
}
