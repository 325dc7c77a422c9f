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
import type { RecordData, Source } from '@tributary/core';
import { freePort } from '@tributary/conformance';
import { contactEvents, deliverWithRetries, postDelivery, signDelivery } from '../src/simulator/index.js';
import { startWebhookSync, type WebhookSync } from './support.js';

const SECRET = 'probe11-stop-secret-0123456789';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';

/** The webhook source, stopping the sync (`abort`) the moment it hands over its first page of events (a SIGTERM landing there). */
function stoppingAtFirstPage(source: Source, abort: () => void): Source {
  return {
    ...source,
    async *read(ctx, config, catalog, state) {
      for await (const message of source.read(ctx, config, catalog, state)) {
        if (message.kind === 'records') abort();
        yield message;
      }
    },
  };
}

it('a sync stopped between a page and its checkpoint answers those deliveries 503 at once and frees its port', async () => {
  const workDir = await mkdtemp(join(tmpdir(), 'hubspot-webhooks-stop-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/hubspot/webhooks`;
  const events = contactEvents(3);
  const options = { workDir, port, keyOf: (record: RecordData) => record.eventId, clientSecret: SECRET, publicUrl: PUBLIC_URL, connection: 'hubspot-webhooks-stop' };
  let restarted: WebhookSync<unknown> | undefined;
  try {
    const first = await startWebhookSync({ ...options, wrapSource: stoppingAtFirstPage });
    const answer = await postDelivery(url, signDelivery(SECRET, PUBLIC_URL, events));
    // The source stopped the sync already: stop() only waits for its end.
    expect((await first.stop()).outcome).toBe('interrupted');
    // Answered by the stop itself, not after the drain time ("not stored; retry").
    expect({ status: answer.status, message: (JSON.parse(answer.body) as { message: string }).message }).toEqual({
      status: 503,
      message: 'read stopped before the checkpoint of these events; retry',
    });

    // HubSpot retries into a restarted sync on the same port: the events are stored once.
    for (let tries = 0; !restarted; tries++) {
      // The first receiver closes right after that answer; listening may take a few turns.
      restarted = await startWebhookSync(options).catch((error: unknown) => {
        if (tries > 100) throw error;
        return new Promise<undefined>((r) => setTimeout(() => r(undefined), 10));
      });
    }
    const retried = await deliverWithRetries(SECRET, url, events, { signedUrl: PUBLIC_URL, maxAttempts: 50, delayMs: 20 });
    expect(retried.at(-1)?.status).toBe(200);
    await restarted.stop();
    const stored = (await readFile(join(workDir, 'out', 'webhook_events.jsonl'), 'utf8'))
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => (JSON.parse(line) as { eventId: number }).eventId);
    expect(stored.sort((a, b) => a - b)).toEqual(events.map((e) => e.eventId));
  } finally {
    await restarted?.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}, 90_000);
