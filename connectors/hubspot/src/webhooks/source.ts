/**
 * The webhook receiver as a push source: `read()` runs an HTTP endpoint for HubSpot webhook
 * deliveries and yields their events, each batch followed by a checkpoint. HubSpot gets its
 * 2xx only from `ack()`, which the runtime calls after the destination committed the
 * checkpoint — so an answered delivery is durable, and anything else (a crash, a full queue,
 * a stop) leaves HubSpot to retry it.
 *
 * Dedupe survives restarts: the checkpoint state keeps the most recent `dedupe_window` event
 * identities (`eventKey`: a digest of the event without the per-attempt `attemptNumber`, since
 * HubSpot does not guarantee eventIds unique), and records are keyed by `eventKey`, so a keyed
 * destination also drops any repeat older than the window.
 */
import { randomUUID } from 'node:crypto';
import { TributaryError, checkpoint, defineSource, recordPage, streamStateOf, streamStatus, type AirbyteStream, type StateBlob } from '@tributary/core';
import { legacyIdentity, startReceiver, type Receiver } from './receiver.js';

export const WEBHOOK_STREAM = 'webhook_events';

export const webhookSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'HubSpot webhook receiver',
  type: 'object',
  additionalProperties: false,
  required: ['client_secret', 'public_url', 'port'],
  properties: {
    client_secret: {
      type: 'string',
      minLength: 1,
      title: 'Client secret',
      description: "The app's client secret: HubSpot signs every delivery with it (X-HubSpot-Signature-v3).",
      airbyte_secret: true,
      order: 0,
    },
    public_url: {
      type: 'string',
      format: 'uri',
      title: 'Target URL',
      description: 'The webhook target URL configured in HubSpot, exactly (it is part of what HubSpot signs).',
      order: 1,
    },
    port: { type: 'integer', minimum: 0, maximum: 65535, title: 'Port', description: 'Port to listen on.', order: 2 },
    host: { type: 'string', default: '127.0.0.1', title: 'Listen address', description: 'Use 0.0.0.0 behind a reverse proxy on another host.', order: 3 },
    path: { type: 'string', pattern: '^/', title: 'Path', description: "Local path deliveries arrive on (default: the target URL's path).", order: 4 },
    max_queue_events: {
      type: 'integer',
      minimum: 1,
      default: 10_000,
      title: 'Queue size (events)',
      description: 'Events received but not yet committed. Beyond it, deliveries are answered 503 and HubSpot retries them.',
      order: 5,
    },
    dedupe_window: {
      type: 'integer',
      minimum: 0,
      default: 5_000,
      title: 'Dedupe window (events)',
      description: 'How many recent events the checkpoint (and the receiver) remembers to drop repeated deliveries, across restarts.',
      order: 6,
    },
    stop_after_idle_seconds: {
      type: 'number',
      exclusiveMinimum: 0,
      title: 'Stop when idle (seconds)',
      description: 'End the sync after this long without deliveries. Default: run until stopped (SIGTERM).',
      order: 7,
    },
    max_body_mb: {
      type: 'integer',
      minimum: 1,
      maximum: 1024,
      default: 32,
      title: 'Largest delivery (MiB)',
      description: 'Deliveries with a larger body are answered 413 and logged as errors; HubSpot retries, then drops them. The default holds 100 events with 65,536-character property values.',
      order: 8,
    },
  },
} as const;

const eventStream: AirbyteStream = {
  name: WEBHOOK_STREAM,
  json_schema: {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    // Not `objectId`: an `*.associationChange` event names the two ends of the link instead
    // (fromObjectId, toObjectId), and destinations that validate records (the lake) would
    // refuse every one of them.
    required: ['eventId', 'eventKey', 'occurredAt', 'subscriptionType'],
    additionalProperties: true,
    properties: {
      eventId: { type: 'integer' },
      eventKey: { type: 'string' },
      subscriptionId: { type: 'integer' },
      portalId: { type: 'integer' },
      appId: { type: 'integer' },
      occurredAt: { type: 'integer' },
      subscriptionType: { type: 'string' },
      objectId: { type: 'integer' },
      propertyName: { type: 'string' },
      propertyValue: { type: 'string' },
      changeSource: { type: 'string' },
      // *.associationChange
      associationType: { type: 'string' },
      fromObjectId: { type: 'integer' },
      toObjectId: { type: 'integer' },
      associationRemoved: { type: 'boolean' },
      isPrimaryAssociation: { type: 'boolean' },
      // *.merge
      primaryObjectId: { type: 'integer' },
      mergedObjectIds: { type: 'array', items: { type: 'integer' } },
      newObjectId: { type: 'integer' },
      numberOfPropertiesMoved: { type: 'integer' },
    },
  },
  supported_sync_modes: ['incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['occurredAt'],
  // Not eventId: HubSpot documents it as not guaranteed unique.
  source_defined_primary_key: [['eventKey']],
};

/** Receivers of running reads, by the id their checkpoints carry, for `ack`. */
const running = new Map<string, { receiver: Receiver; acked: number }>();

/**
 * The committed event identities of the saved state: eventKeys, and the bare eventIds that
 * versions before eventKey saved (as `eventId:<n>`, matched on eventId until they leave the
 * window).
 */
function recentOf(blob: StateBlob | undefined): string[] {
  const recent = blob?.recent;
  if (recent === undefined) return [];
  if (!Array.isArray(recent) || !recent.every((id) => Number.isSafeInteger(id) || typeof id === 'string')) {
    throw new TributaryError('config', { userMessage: `The saved state of stream "${WEBHOOK_STREAM}" was not written by this source; reset the stream's state` });
  }
  return (recent as (number | string)[]).map((id) => (typeof id === 'number' ? legacyIdentity(id) : id));
}

export const hubspotWebhookSource = defineSource({
  name: 'hubspot-webhooks',
  version: '0.1.0',
  spec: { connectionSpecification: webhookSpec, supportsIncremental: true, documentationUrl: 'https://developers.hubspot.com/docs/api/webhooks' },

  async check(_ctx, config) {
    // Proves the port can be bound; HubSpot's side cannot be checked from here.
    const receiver = await startReceiver({
      clientSecret: config.client_secret,
      host: config.host,
      port: config.port,
      path: config.path ?? new URL(config.public_url).pathname,
      publicUrl: config.public_url,
      maxQueueEvents: 1,
      committed: [],
      dedupeWindow: 0,
      drainMs: 0,
    }).catch((error: unknown) => {
      throw new TributaryError('config', { userMessage: `Cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, cause: error });
    });
    await receiver.stop();
  },

  async discover() {
    return { streams: [eventStream] };
  },

  async *read(ctx, config, catalog, state) {
    if (!catalog.streams.some((c) => c.stream.name === WEBHOOK_STREAM)) return;
    const id = randomUUID();
    const receiver = await startReceiver({
      clientSecret: config.client_secret,
      host: config.host,
      port: config.port,
      path: config.path ?? new URL(config.public_url).pathname,
      publicUrl: config.public_url,
      maxQueueEvents: config.max_queue_events,
      committed: recentOf(streamStateOf(state, WEBHOOK_STREAM)),
      dedupeWindow: config.dedupe_window,
      maxBodyBytes: config.max_body_mb * 1024 * 1024,
      onOversized: (bytes, limit) =>
        ctx.logger.error(`refused a webhook delivery of more than ${bytes} bytes (max_body_mb allows ${limit}): HubSpot retries it, then drops its events; raise max_body_mb`),
    });
    running.set(id, { receiver, acked: 0 });
    ctx.logger.info(`receiving HubSpot webhooks on ${receiver.url}`);
    let seq = 0;
    /** The last checkpoint handed to the runtime: only those can be committed and acked. */
    let checkpointed = 0;
    const idleMs = config.stop_after_idle_seconds === undefined ? undefined : config.stop_after_idle_seconds * 1000;
    try {
      yield streamStatus(WEBHOOK_STREAM, 'RUNNING');
      // A first checkpoint: the stream has a state even before any delivery.
      yield checkpoint(WEBHOOK_STREAM, { receiver: id, seq, recent: receiver.recent() });
      for (;;) {
        const batch = await receiver.next(ctx.signal, idleMs);
        if (!batch) return;
        seq++;
        receiver.markYielded(batch.deliveries, seq);
        yield recordPage(WEBHOOK_STREAM, batch.events);
        // Reached only when the runtime asks for the next message, which is this checkpoint. A
        // runtime that stops reading after the page (on SIGTERM) never gets it: see `finally`.
        checkpointed = seq;
        yield checkpoint(WEBHOOK_STREAM, { receiver: id, seq, recent: receiver.recent() });
      }
    } finally {
      // Deliveries of a page whose checkpoint was never handed over cannot be acked: answered
      // 503 now (they held the stop for drainMs, answering every delivery 503, port held).
      receiver.abandonAfter(checkpointed);
      // Not awaited: deliveries already checkpointed are answered by the ack of the runtime's
      // final commit, which comes after this block; stop() waits for it, then closes.
      void receiver.stop().finally(() => running.delete(id));
    }
  },

  async ack(_ctx, _config, state) {
    const blob = streamStateOf(state, WEBHOOK_STREAM);
    const id = typeof blob?.receiver === 'string' ? blob.receiver : undefined;
    const seq = typeof blob?.seq === 'number' ? blob.seq : undefined;
    const entry = id === undefined ? undefined : running.get(id);
    if (!entry || seq === undefined) return;
    entry.acked = Math.max(entry.acked, seq);
    entry.receiver.ackUpTo(entry.acked);
  },
});
