/**
 * Test helpers shared by the Redis test files: a redis-server with an ioredis client for
 * the whole file, and the keyed stream most tests write.
 */
import { afterAll, beforeAll } from 'vitest';
import { Redis } from 'ioredis';
import type { DestinationStream } from '@tributary/core';
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

/** 2025-01-01T00:<minute>:00.000Z. */
export const at = (minute: number): string => new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString();
