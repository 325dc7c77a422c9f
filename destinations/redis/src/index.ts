import { defineDestination, TributaryError, type ConnectorContext, type DestinationSession, type DestinationStream, type RecordData } from '@tributary/core';
import { redisConfigSchema, resolveMapping, type RedisConfig, type StreamMapping } from './config.js';
import { createOpsEncoder, type EncodedOps } from './encoded-ops.js';
import { forEachWrite } from './records.js';
import { connectRedisClient, createRedisClient, toRedisError } from './redis-client.js';
import { createRespConnection, type RespConnection } from './resp-connection.js';
import { entityKeyHeads, TOMBSTONE_BODY, ttlRegistryKey } from './layout.js';
import { createBodyEncoder, createShapeTable, featureShapesKey, registerShapes, shapePreamble, type BodyEncoder } from './shapes.js';
import { fillUnchangedFields, omitsUnchanged } from './unchanged-fields.js';
import { applyOps, loadWriteScript, type GroupTarget, type WriteHint } from './write-script.js';

export { redisConfigSchema, type RedisConfig, type RedisConnectionOptions } from './config.js';
export { entityKey, entityKeyPattern, ttlRegistryKey, groupField, encodeGroupValue, decodeGroupValue, decodeEntityHash, decodeEntityFields, type DecodedGroup } from './layout.js';
export { parseEventTime } from './records.js';
export { featureShapesKey, createShapeTable, loadShapesFor, readAllShapes, type FeatureShape, type ShapeTable } from './shapes.js';
export { WRITE_SCRIPT, WRITE_SCRIPT_SHA } from './write-script.js';
export {
  createFeatureLookup,
  type FeatureLookup,
  type FeatureLookupOptions,
  type EntityFeatures,
  type FeatureGroupValues,
  type LookupQuery,
  type LookupManyQuery,
} from './lookup.js';
export { startLookupServer, type LookupServer, type LookupServerOptions } from './lookup-server.js';
export { compareOnlineOffline, offlineRowFromLake, sameValue, type OfflineRow, type ParityDifference, type ParityDifferenceKind, type ParityEntity, type ParityOptions, type ParityReport } from './parity.js';
export { resolveMapping, type StreamMapping } from './config.js';

/**
 * Batches written but not yet acknowledged beyond which `write` waits for the oldest (bounds
 * memory). Four keep Redis busy; eight measured slower (more records alive across young-
 * generation collections, each copying them).
 */
const MAX_BATCHES_IN_FLIGHT = 4;

interface InFlight {
  readonly target: GroupTarget;
  readonly hint: WriteHint;
  readonly ops: EncodedOps;
  /** Resolves with the error, if any: never rejects, so no rejection goes unhandled. */
  readonly settled: Promise<unknown>;
}

/**
 * Online feature store in Redis: one hash per (tenant, entity type, entity id), holding the
 * entity's feature values and, per feature group, their event time and expiry (layout in
 * layout.ts, write rules in write-script.ts).
 *
 * Delivery `upsert`: a record replaces its feature group only when its event time is newer
 * than the stored one, atomically in a Lua script; replays (the same version again, or one
 * the stored version replaced) and late, older events change nothing, so at-least-once
 * delivery yields exactly-once state. Of two different versions with the same event time
 * the later applied wins (as the later-ingested row does in the event lake), so batches
 * reach Redis in the order they were written, re-sends included (`settleOldest`). A CDC
 * delete (`_tributary_op` `d`) replaces the group with a tombstone, ordered the same way,
 * which lookups treat as absent; so does a CDC update that moved its row to another key, or
 * (its before-image naming the old tenant) to another tenant, for its old key (`forEachWrite`
 * in records.ts).
 *
 * Durability: `commit()` resolves once Redis acknowledged every write sent so far. That is
 * as durable as the Redis server is configured to be — with `appendonly yes` and
 * `appendfsync always` the acknowledged writes survive a crash of Redis; with the defaults
 * (RDB snapshots, or `appendfsync everysec`) Redis may lose up to its last snapshot or
 * second of acknowledged writes, and Tributary cannot tell.
 *
 * Failures: a lost connection is a `transient` error (the session re-sends the failed batch
 * once on a new connection; if that fails too, the runtime retries the write or commit and,
 * since writes are idempotent, unacknowledged batches are simply sent again). So is an error
 * reply Redis gives while it cannot serve (`LOADING`, `BUSY`, …), and a batch refused with
 * any error reply is re-sent the same way, in order (`settleOldest`). Records without entity id, tenant or event time are rejected with the reason.
 */
export const redisDestination = defineDestination({
  name: 'redis',
  version: '0.1.0',
  delivery: 'upsert',
  spec: {
    connectionSpecification: redisConfigSchema,
    supportedDestinationSyncModes: ['append_dedup', 'append'],
  },
  batching: { maxRecords: 1_000 },
  retry: { maxAttempts: 10, baseDelayMs: 200, maxDelayMs: 5_000 },

  async check(_ctx, config) {
    const client = createRedisClient(config, { maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    client.on('error', () => undefined); // classified by connectRedisClient and the calls below
    try {
      await connectRedisClient(client, 'check');
      await client.ping();
      await loadWriteScript(client);
    } catch (error) {
      const e = toRedisError(error, 'check');
      if (e.kind === 'auth') throw e;
      throw new TributaryError('config', {
        userMessage: `Cannot use Redis at ${config.host}:${config.port} (db ${config.db}): check host, port and that it accepts scripts`,
        internalMessage: e.internalMessage ?? e.userMessage,
        cause: error,
      });
    } finally {
      client.disconnect();
    }
  },

  async open(ctx, config, streams) {
    const connection = createRespConnection(config);
    try {
      await loadWriteScript(connection);
    } catch (error) {
      await connection.close();
      throw toRedisError(error, 'open');
    }
    return openSession(ctx, config, streams, connection);
  },
});

export default redisDestination;

function openSession(ctx: ConnectorContext, config: RedisConfig, streams: readonly DestinationStream[], connection: RespConnection): DestinationSession {
  const prefix = config.key_prefix ?? 'trib';
  const shapeRegistry = featureShapesKey(prefix);
  /** Shapes this session saw stored in the registry (`registerShapes`). */
  const checkedShapes = new Set<string>();
  /** Shapes read back from the registry, to decode stored values (`fillUnchangedFields`). */
  const readShapes = { registry: shapeRegistry, table: createShapeTable() };
  const mappings = new Map<string, { mapping: StreamMapping; keyHead: (tenant: string) => string; bodies: BodyEncoder; target: GroupTarget; hint: WriteHint }>(
    streams.map((s) => {
      const mapping = resolveMapping(config, s);
      const target = { group: mapping.group, ttlMs: mapping.ttlMs, ttlRegistry: ttlRegistryKey(prefix, mapping.entityType) };
      return [s.key, { mapping, keyHead: entityKeyHeads(prefix, mapping.entityType), bodies: createBodyEncoder(mapping.features), target, hint: { createFirst: true } }];
    }),
  );
  let inFlight: InFlight[] = [];
  /** Buffers of answered batches, for the next batches to encode into (`createOpsEncoder`). */
  const spareBuffers: Buffer[] = [];
  const counts = { applied: 0, ignored: 0 };

  const send = (target: GroupTarget, hint: WriteHint, ops: EncodedOps): InFlight => ({
    target,
    hint,
    ops,
    settled: applyOps(connection, target, ops, Date.now(), hint).then(
      (r) => {
        counts.applied += r.applied;
        counts.ignored += r.ignored;
        return undefined;
      },
      (error: unknown) => error ?? new Error('write failed'),
    ),
  });

  /**
   * Waits for the oldest in-flight batch. If it failed, sends it again once — with every
   * batch in flight behind it, in their order, before any new batch: Redis must apply the
   * stream's records in the stream's order, since of two versions at the same place in the
   * order of versions the later applied wins (write-script.ts); the batches behind a failed
   * one (a dropped connection, an error reply) failed too — the connection holds back every
   * batch sent after a lost or refused one (`ORDERED` in write-script.ts) until this re-send,
   * even those sent on a new connection — and a new batch sent ahead of their re-send would
   * be applied before them. The script is loaded first: a restarted Redis (the connection
   * lost) or a flushed script cache (`NOSCRIPT`) lacks it. Re-sending one that was applied
   * changes nothing. Throws if the oldest fails again (it stays first in line), or if loading
   * the script fails (nothing was sent again).
   */
  const settleOldest = async (): Promise<void> => {
    const oldest = inFlight[0]!;
    let error = await oldest.settled;
    if (error !== undefined) {
      ctx.logger.debug(`redis write failed, sending the batch again, and the ${inFlight.length - 1} behind it: ${String(error)}`);
      await Promise.all(inFlight.map((b) => b.settled));
      try {
        await loadWriteScript(connection);
      } catch (loadError) {
        throw toRedisError(loadError, 'write');
      }
      connection.resumeOrdered();
      inFlight = inFlight.map((b) => send(b.target, b.hint, b.ops));
      error = await inFlight[0]!.settled;
      if (error !== undefined) {
        inFlight[0] = { ...oldest, settled: Promise.resolve(error) };
        throw toRedisError(error, 'write');
      }
    }
    inFlight.shift();
    // Redis answered every command of the batch, so its bytes were all sent and read.
    if (spareBuffers.length < MAX_BATCHES_IN_FLIGHT) spareBuffers.push(oldest.ops.buffer);
  };

  return {
    async write(batch) {
      const stream = mappings.get(batch.stream);
      if (!stream) throw new TributaryError('fatal', { userMessage: `Batch for unknown stream "${batch.stream}"` });
      // Bound the memory held for re-sends before taking on more. A failure here throws
      // before this batch is queued, so the runtime's retry of this write queues it once.
      while (inFlight.length >= MAX_BATCHES_IN_FLIGHT) await settleOldest();
      // CDC updates that left TOASTed columns out keep their stored values (unchanged-fields.ts).
      // Per record on the common path: one property read (`_tributary_unchanged`, absent).
      let records: readonly RecordData[] = batch.records;
      let omits = false;
      for (let i = 0; i < records.length && !omits; i++) {
        const record = records[i] as RecordData | null | undefined; // not an object: rejected below
        omits = record?._tributary_unchanged !== undefined && omitsUnchanged(record);
      }
      if (omits) {
        // The values to keep are those of the versions before: every earlier batch must be in Redis first.
        while (inFlight.length > 0) await settleOldest();
        try {
          records = await fillUnchangedFields(connection, stream.mapping, stream.keyHead, records, readShapes);
        } catch (error) {
          throw toRedisError(error, 'write');
        }
      }
      const encoder = createOpsEncoder(stream.target, records.length, spareBuffers.pop());
      const { bodies } = stream;
      const rejected = forEachWrite(records, stream.mapping, stream.keyHead, (head, tail, eventTimeMs, order, deleted, record) =>
        encoder.add(head, tail, eventTimeMs, deleted ? TOMBSTONE_BODY : bodies.encode(record), order),
      );
      const shapes = bodies.takeUsed();
      // A shape is stored before any value naming it (see shapes.ts): checked once per session, then re-asserted ahead of each batch.
      try {
        await registerShapes(connection, shapeRegistry, shapes, checkedShapes);
      } catch (error) {
        throw toRedisError(error, 'write');
      }
      const ops = encoder.finish(shapes.length > 0 ? shapePreamble(shapeRegistry, shapes) : undefined);
      if (ops.count > 0) inFlight.push(send(stream.target, stream.hint, ops));
      return rejected.length > 0 ? { rejected } : undefined;
    },

    /** Resolves once Redis acknowledged every write sent so far (see the durability note above). */
    async commit() {
      while (inFlight.length > 0) await settleOldest();
    },

    async close() {
      if (counts.ignored > 0) ctx.logger.info(`redis: ${counts.applied} record(s) applied, ${counts.ignored} ignored as replays or older than stored values`);
      inFlight = [];
      await connection.close();
    },
  };
}
