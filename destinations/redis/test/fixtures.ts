/**
 * Test helpers shared by the Redis test files: a redis-server with an ioredis client for
 * the whole file, and the keyed stream most tests write.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { Redis } from 'ioredis';
import { createConnectorContext, createFileStateStore, defineSource, parseConfig, runSync, type AirbyteStream, type Destination, type DestinationStream, type RecordData } from '@tributary/core';
import { lakeDestination } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, entityKey, redisConfigSchema, redisDestination, resolveMapping, type StreamMapping } from '../src/index.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

/** A redis-server and a client of it, started before the file's tests and stopped after them (read the fields inside tests). */
export function useRedisPeer(): { server: RedisServer; client: Redis } {
  const peer = {} as { server: RedisServer; client: Redis };
  beforeAll(async () => {
    peer.server = await startRedisServer();
    peer.client = new Redis({ port: peer.server.port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    peer.client.disconnect();
    await peer.server.stop();
  });
  return peer;
}

const schema = { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, updated_at: { type: 'string' } } } as const;

/** A stream of records keyed by `id`, with tenant `tenant_id` and event time `updated_at`. */
export function keyedStream(name: string): DestinationStream {
  return { key: name, name, syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: schema, resuming: false };
}

/** An incremental AirbyteStream keyed by `id` with cursor `updated_at`; `properties` are its fields (`id` and `tenant_id` added). */
export function updatedAtStream(name: string, properties: Record<string, unknown>): AirbyteStream {
  return {
    name,
    json_schema: { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, ...properties } },
    supported_sync_modes: ['incremental'],
    source_defined_cursor: true,
    default_cursor_field: ['updated_at'],
    source_defined_primary_key: [['id']],
  };
}

/** The Redis writer's mapping of `stream` under `redisConfig`, as `syncIntoLakeAndRedis` synced it (for the parity check). */
export function syncedMapping(redisConfig: Record<string, unknown>, stream: AirbyteStream): StreamMapping {
  return resolveMapping(parseConfig(redisConfigSchema, redisConfig), {
    key: stream.name,
    name: stream.name,
    syncMode: 'incremental',
    destinationSyncMode: 'append_dedup',
    primaryKey: [['id']],
    cursorField: ['updated_at'],
    jsonSchema: stream.json_schema,
    resuming: false,
  });
}

/** 2025-01-01T00:<minute>:00.000Z. */
export const at = (minute: number): string => new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString();

/**
 * Syncs `records` of `stream` (one batch, then a checkpoint) through the runtime into a
 * fresh lake under `dir/<name>` and into Redis under the key prefix `name`; fails the test
 * unless both syncs complete without rejecting a record. Returns both configs.
 */
export async function syncIntoLakeAndRedis(options: { dir: string; port: number; name: string; stream: AirbyteStream; cursorField: string[]; records: RecordData[]; lake?: Record<string, unknown>; redis?: Record<string, unknown> }) {
  const { stream, records } = options;
  const source = defineSource({
    name: 'lake-and-redis-fixture',
    spec: { connectionSpecification: { type: 'object', properties: {}, additionalProperties: false } as const, supportsIncremental: true },
    async check() {},
    async discover() {
      return { streams: [stream] };
    },
    async *read() {
      yield { kind: 'records', stream: stream.name, records } as const;
      yield { kind: 'checkpoint', stream: stream.name, state: { done: true } } as const;
    },
  });
  const catalog = { streams: [{ stream, sync_mode: 'incremental' as const, destination_sync_mode: 'append_dedup' as const, cursor_field: options.cursorField, primary_key: [['id']] }] };
  const lakeConfig = { path: join(options.dir, options.name), ...options.lake };
  const redisConfig = { port: options.port, key_prefix: options.name, ...options.redis };
  const targets: [Destination, Record<string, unknown>][] = [
    [lakeDestination, lakeConfig],
    [redisDestination, redisConfig],
  ];
  for (const [destination, destinationConfig] of targets) {
    const result = await runSync({ connection: `${options.name}-${destination.name}`, source, sourceConfig: {}, destination, destinationConfig, catalog, stateStore: createFileStateStore(join(options.dir, 'state')) });
    expect(result.outcome, result.error?.userMessage).toBe('completed');
    expect(result.streams.find((s) => s.key === stream.name)?.rejected, `${destination.name} rejected records`).toBe(0);
  }
  return { lakeConfig, redisConfig };
}

/**
 * A writer session on `stream` under key prefix `prefix` (fresh per test): each `write` is one
 * batch, committed, returning the records refused; `get` is the lookup API's answer, `stored`
 * an entity's whole stored hash, `parity` the store checked against `records` as offline rows
 * (mapped as the writer mapped them).
 */
export async function openPrefixedStore(peer: { server: RedisServer; client: Redis }, prefix: string, stream: DestinationStream, extra: Record<string, unknown> = {}) {
  const raw = { port: peer.server.port, key_prefix: prefix, ...extra };
  const session = await redisDestination.open(createConnectorContext({}), parseConfig(redisDestination.spec.connectionSpecification, raw), [stream]);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  return {
    async write(records: RecordData[]) {
      const result = await session.write({ stream: stream.key, records, emittedAt: Date.now() });
      await session.commit();
      return result?.rejected ?? [];
    },
    parity: (records: RecordData[]) =>
      compareOnlineOffline({ client: peer.client, prefix, mapping: resolveMapping(parseConfig(redisConfigSchema, raw), stream), offline: records.map((record) => ({ record })) }),
    get: (tenant: string, id: number | string) => lookup.get({ tenant, entityType: stream.name, entityId: String(id) }),
    stored: (tenant: string, id: number | string) => peer.client.hgetallBuffer(entityKey(prefix, tenant, stream.name, String(id))),
    async close() {
      await session.close({ completed: true });
      await lookup.close();
    },
  };
}
