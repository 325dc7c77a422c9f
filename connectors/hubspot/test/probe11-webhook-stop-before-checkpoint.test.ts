// A webhook sync stopped (SIGTERM, or any abort) right after the runtime took a page of
// events, before it asked for the page's checkpoint: the runtime's reader stops there
// (`if (stopping) break`), so the checkpoint covering those deliveries is never yielded,
// never committed, and `ack` never answers them. The receiver used to wait its whole drain
// time (30 s) for that ack — answering every delivery 503 "receiver stopping" and keeping its
// port, so a `tributary sync` process lingered 30 s after SIGTERM and a restart could not
// listen. Found by probe11-webhook-model (seed 6: deliveries dropped after their retries,
// every answer "receiver stopping" for ~27 s). Now such deliveries are answered 503 at once
// (HubSpot retries them) and the receiver closes.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { configureCatalog, createFileStateStore, runSync, type Source, type SyncResult } from '@tributary/core';
import { freePort } from '@tributary/conformance';
import { localFilesDestination } from '@tributary/destination-local';
import { hubspotWebhookSource, WEBHOOK_STREAM } from '../src/index.js';
import { contactEvents, deliverWithRetries, postDelivery, signDelivery } from '../src/simulator/index.js';

const SECRET = 'probe11-stop-secret-0123456789';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';

/** The webhook source, with the sync aborted the moment it hands over its first page of events (a SIGTERM landing there). */
function stoppingAtFirstPage(controller: AbortController): Source {
  const source = hubspotWebhookSource as unknown as Source;
  return {
    ...source,
    async *read(ctx, config, catalog, state) {
      for await (const message of source.read(ctx, config, catalog, state)) {
        if (message.kind === 'records') controller.abort();
        yield message;
      }
    },
  };
}

/** Resolves once the receiver listens, with the running sync (wrapped: an async function's returned promise would be awaited). */
async function startSync(source: Source, port: number, workDir: string, controller: AbortController): Promise<{ done: Promise<SyncResult> }> {
  const catalog = configureCatalog(
    await hubspotWebhookSource.discover(undefined as never, undefined as never),
    [{ name: WEBHOOK_STREAM, sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
    localFilesDestination.spec.supportedDestinationSyncModes ?? [],
  );
  let listening: () => void = () => {};
  const ready = new Promise<void>((r) => (listening = r));
  const done = runSync({
    connection: 'hubspot-webhooks-stop',
    source,
    sourceConfig: { client_secret: SECRET, public_url: PUBLIC_URL, port, path: '/hubspot/webhooks' },
    destination: localFilesDestination,
    destinationConfig: { directory: join(workDir, 'out') },
    catalog,
    stateStore: createFileStateStore(join(workDir, 'state')),
    batching: { maxRecords: 500, maxAgeMs: 10, commitIntervalMs: 10 },
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'log' && event.message.includes('receiving HubSpot webhooks')) listening();
    },
  });
  await Promise.race([ready, done.then((r) => Promise.reject(new Error(`sync ended early: ${r.outcome} ${r.error?.message ?? ''}`)))]);
  return { done };
}

it('a sync stopped between a page and its checkpoint answers those deliveries 503 at once and frees its port', async () => {
  const workDir = await mkdtemp(join(tmpdir(), 'hubspot-webhooks-stop-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/hubspot/webhooks`;
  const events = contactEvents(3);
  let second: AbortController | undefined;
  try {
    const first = new AbortController();
    const { done } = await startSync(stoppingAtFirstPage(first), port, workDir, first);
    const answer = await postDelivery(url, signDelivery(SECRET, PUBLIC_URL, events));
    expect((await done).outcome).toBe('interrupted');
    // Answered by the stop itself, not after the drain time ("not stored; retry").
    expect({ status: answer.status, message: (JSON.parse(answer.body) as { message: string }).message }).toEqual({
      status: 503,
      message: 'read stopped before the checkpoint of these events; retry',
    });

    // HubSpot retries into a restarted sync on the same port: the events are stored once.
    second = new AbortController();
    let restarted: { done: Promise<SyncResult> } | undefined;
    for (let tries = 0; !restarted; tries++) {
      // The first receiver closes right after that answer; listening may take a few turns.
      restarted = await startSync(hubspotWebhookSource as unknown as Source, port, workDir, second).catch((error: unknown) => {
        if (tries > 100) throw error;
        return new Promise<undefined>((r) => setTimeout(() => r(undefined), 10));
      });
    }
    const retried = await deliverWithRetries(SECRET, url, events, { signedUrl: PUBLIC_URL, maxAttempts: 50, delayMs: 20 });
    expect(retried.at(-1)?.status).toBe(200);
    second.abort();
    await restarted.done;
    const stored = (await readFile(join(workDir, 'out', 'webhook_events.jsonl'), 'utf8'))
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => (JSON.parse(line) as { eventId: number }).eventId);
    expect(stored.sort((a, b) => a - b)).toEqual(events.map((e) => e.eventId));
  } finally {
    second?.abort();
    await rm(workDir, { recursive: true, force: true });
  }
}, 90_000);
