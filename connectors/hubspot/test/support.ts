import { join } from 'node:path';
import { afterEach } from 'vitest';
import { configureCatalog, createFileStateStore, runSync, type Destination, type RecordData, type Source, type SyncResult } from '@tributary/core';
import { freePort } from '@tributary/conformance';
import { localFilesDestination } from '@tributary/destination-local';
import { hubspotWebhookSource, WEBHOOK_STREAM } from '../src/index.js';
import { startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';
import type { ReceiverOptions } from '../src/webhooks/receiver.js';

/**
 * Starts HubSpot simulators for the calling test file: each one the returned function starts
 * is closed after the test that started it.
 */
export function useSimulators(): (options?: Parameters<typeof startHubspotSimulator>[0]) => Promise<HubspotSimulator> {
  const running: HubspotSimulator[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.close()));
  });
  return async (options = {}) => {
    const sim = await startHubspotSimulator(options);
    running.push(sim);
    return sim;
  };
}

export interface WebhookSync<K> {
  url: string;
  /** Keys (`keyOf`) of the records whose commit() resolved. */
  committed: Set<K>;
  /** Keys of the records handed to the destination's write() (committed or not). */
  written: Set<K>;
  /** Resolves the gate: while `gated`, commits that cover records wait for it. */
  openGate(): void;
  stop(): Promise<SyncResult>;
}

export interface WebhookSyncOptions<K> {
  /** Receives the local-files output (`out/`) and the state (`state/`). */
  workDir: string;
  /** What the committed and written sets hold for each record (e.g. its eventId). */
  keyOf: (record: RecordData) => K;
  clientSecret: string;
  publicUrl: string;
  connection?: string;
  maxQueueEvents?: number;
  dedupeWindow?: number;
  /** Holds every commit of records until openGate(). */
  gated?: boolean;
  /** The receiver's port (default: a free one), e.g. to restart on the port of a stopped sync. */
  port?: number;
  /** Wraps the webhook source (`abort` stops the sync as `stop()` does), e.g. to stop at a chosen message. */
  wrapSource?: (source: Source, abort: () => void) => Source;
}

/**
 * A sync of the webhook receiver into the real local-files destination, running until
 * `stop()` (resolved once the receiver listens). The wrapper around the destination only
 * observes writes and commits (and holds commits while `gated`).
 */
export async function startWebhookSync<K>(options: WebhookSyncOptions<K>): Promise<WebhookSync<K>> {
  const port = options.port ?? (await freePort());
  const committed = new Set<K>();
  const seen = new Set<K>();
  let open: () => void = () => {};
  const gate: Promise<void> = options.gated ? new Promise<void>((r) => (open = r)) : Promise.resolve();
  const destination: Destination = {
    ...localFilesDestination,
    async open(ctx, config, streams) {
      const session = await localFilesDestination.open(ctx, config as Parameters<typeof localFilesDestination.open>[1], streams);
      let written: K[] = [];
      return {
        async write(batch) {
          const keys = batch.records.map(options.keyOf);
          written.push(...keys);
          for (const key of keys) seen.add(key);
          return session.write(batch);
        },
        async commit() {
          // Only commits that cover records wait: the runtime also commits on a timer with
          // nothing written, and held, such a commit kept every later batch from being written.
          if (written.length > 0) await gate;
          const covered = written;
          written = [];
          await session.commit();
          for (const key of covered) committed.add(key);
        },
        close: (info) => session.close(info),
      };
    },
  };
  const sourceConfig = {
    client_secret: options.clientSecret,
    public_url: options.publicUrl,
    port,
    path: '/hubspot/webhooks',
    ...(options.maxQueueEvents ? { max_queue_events: options.maxQueueEvents } : {}),
    ...(options.dedupeWindow !== undefined ? { dedupe_window: options.dedupeWindow } : {}),
  };
  const controller = new AbortController();
  const catalog = configureCatalog(
    await hubspotWebhookSource.discover(undefined as never, undefined as never),
    [{ name: WEBHOOK_STREAM, sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
    localFilesDestination.spec.supportedDestinationSyncModes ?? [],
  );
  let listening: () => void = () => {};
  const ready = new Promise<void>((r) => (listening = r));
  const done = runSync({
    connection: options.connection ?? 'hubspot-webhooks',
    source: options.wrapSource ? options.wrapSource(hubspotWebhookSource as unknown as Source, () => controller.abort()) : hubspotWebhookSource,
    sourceConfig,
    destination,
    destinationConfig: { directory: join(options.workDir, 'out') },
    catalog,
    stateStore: createFileStateStore(join(options.workDir, 'state')),
    batching: { maxRecords: 500, maxAgeMs: 10, commitIntervalMs: 10 },
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'log' && event.message.includes('receiving HubSpot webhooks')) listening();
    },
  });
  await Promise.race([ready, done.then((r) => Promise.reject(new Error(`sync ended early: ${r.outcome} ${r.error?.message ?? ''}`)))]);
  return {
    url: `http://127.0.0.1:${port}/hubspot/webhooks`,
    committed,
    written: seen,
    openGate: () => open(),
    stop: () => (controller.abort(), done),
  };
}

/**
 * A webhook receiver's options for tests against its real HTTP server: 127.0.0.1, an
 * ephemeral port, `/hubspot/webhooks`, a queue of 1,000 events, nothing committed yet, no
 * wait for uncommitted deliveries at stop. Spread and override what a test is about.
 */
export function testReceiverOptions(clientSecret: string, publicUrl: string): ReceiverOptions {
  return { clientSecret, host: '127.0.0.1', port: 0, path: '/hubspot/webhooks', publicUrl, maxQueueEvents: 1_000, committed: [], drainMs: 0 };
}
