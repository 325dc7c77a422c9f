// The webhook receiver's body limit, against its real HTTP server.
// - HubSpot batches up to 100 events per delivery, and a text property value entered in the
//   CRM holds up to 65,536 characters: such a delivery (~20 MB in UTF-8) must be taken. The
//   former 4 MiB limit refused it on every retry, until HubSpot dropped its events.
// - A delivery over the configured limit gets a 413 the sender can read (not a reset
//   connection), and the source logs it as an error naming `max_body_mb`.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WEBHOOK_STREAM } from '../src/index.js';
import { startReceiver } from '../src/webhooks/receiver.js';
import { contactEvents, postDelivery, signDelivery, type WebhookEvent } from '../src/simulator/index.js';
import { startWebhookSync, testReceiverOptions } from './support.js';

const SECRET = 'client-secret-body-limit';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** 100 property changes whose values are 65,536 characters of 3-byte UTF-8 (distinct per event). */
function largestCrmDelivery(): WebhookEvent[] {
  return contactEvents(100).map((event, i) => ({ ...event, propertyName: 'notes', propertyValue: `${i}`.padEnd(65_536, '€') }));
}

describe('hubspot webhooks: body limit', () => {
  it('takes a delivery of 100 events with 65,536-character property values', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'hubspot-webhook-body-'));
    cleanups.push(() => rm(workDir, { recursive: true, force: true }));
    const sync = await startWebhookSync({ workDir, keyOf: (r) => (r as { eventKey: string }).eventKey, clientSecret: SECRET, publicUrl: PUBLIC_URL, connection: 'hubspot-webhooks-body' });
    const events = largestCrmDelivery();
    const signed = signDelivery(SECRET, PUBLIC_URL, events);
    expect(Buffer.byteLength(signed.body)).toBeGreaterThan(19_000_000);
    let answer;
    try {
      answer = await postDelivery(sync.url, signed);
    } finally {
      await sync.stop();
    }
    expect(answer.status).toBe(200);
    const stored = (await readFile(join(workDir, 'out', `${WEBHOOK_STREAM}.jsonl`), 'utf8'))
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as { eventId: number; propertyValue: string });
    expect(stored.map((e) => e.eventId).sort((a, b) => a - b)).toEqual(events.map((e) => e.eventId));
    expect(stored.every((e, i) => e.propertyValue.length === 65_536 && e.propertyValue === events.find((x) => x.eventId === e.eventId)!.propertyValue)).toBe(true);
  });

  it('answers a delivery over the limit 413 (readable by the sender), reports it, and keeps serving', async () => {
    const oversized: Array<{ bytes: number; limit: number }> = [];
    const receiver = await startReceiver({
      ...testReceiverOptions(SECRET, PUBLIC_URL),
      maxBodyBytes: 1024 * 1024,
      onOversized: (bytes, limit) => oversized.push({ bytes, limit }),
    });
    cleanups.push(() => receiver.stop());
    const big = contactEvents(3).map((event) => ({ ...event, propertyValue: 'x'.repeat(600_000) }));
    const refused = await postDelivery(receiver.url, signDelivery(SECRET, PUBLIC_URL, big));
    expect({ status: refused.status, body: refused.body }).toEqual({ status: 413, body: expect.stringContaining('body too large') });
    expect(oversized).toHaveLength(1);
    expect(oversized[0]!.limit).toBe(1024 * 1024);
    expect(oversized[0]!.bytes).toBeGreaterThan(1024 * 1024);
    expect(receiver.stats.rejected['body too large']).toBe(1);

    // A delivery within the limit is still queued afterwards.
    const small = contactEvents(2);
    const answer = postDelivery(receiver.url, signDelivery(SECRET, PUBLIC_URL, small));
    const batch = await receiver.next(new AbortController().signal, 10_000);
    expect(batch?.events.map((e) => e.eventId)).toEqual(small.map((e) => e.eventId));
    receiver.markYielded(batch!.deliveries, 1);
    receiver.ackUpTo(1);
    expect((await answer).status).toBe(200);
  });
});
