import type { PostgresConfig } from '../config.js';
import type { ReplicationConnection } from './replication-connection.js';

/**
 * Streams open in this process, by server and slot: `ack()` (called by the runtime after a
 * checkpoint was committed) confirms its position on the live stream when there is one.
 */
const live = new Map<string, ReplicationConnection>();

function keyOf(config: PostgresConfig, slot: string): string {
  return `${config.host}:${config.port ?? 5432}/${config.database}#${slot}`;
}

export function registerStream(config: PostgresConfig, slot: string, stream: ReplicationConnection): () => void {
  const key = keyOf(config, slot);
  live.set(key, stream);
  return () => {
    if (live.get(key) === stream) live.delete(key);
  };
}

export function liveStream(config: PostgresConfig, slot: string): ReplicationConnection | undefined {
  return live.get(keyOf(config, slot));
}
