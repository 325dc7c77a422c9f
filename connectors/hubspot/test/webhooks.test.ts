// The webhook receiver end to end: HubSpot-style signed deliveries -> runSync -> the
// local-files destination. A 2xx must mean "committed"; forged, stale and replayed
// deliveries are refused; a full queue answers so HubSpot retries; dedupe survives a restart.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createFileStateStore } from '@tributary/core';
import { findCli, sourceCases } from '@tributary/conformance';
import { hubspotWebhookSource, WEBHOOK_STREAM } from '../src/index.js';
import { contactEvents, deliverWithRetries, postDelivery, signDelivery, type WebhookEvent } from '../src/simulator/index.js';
import { startWebhookSync, type WebhookSync } from './support.js';

const SECRET = 'client-secret-0123456789';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';


let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'hubspot-webhooks-'));
});
afterEach(() => rm(workDir, { recursive: true, force: true }));

/** Starts a sync of the receiver into local files (see startWebhookSync); records are tracked by eventId. */
function startSync(options: { maxQueueEvents?: number; gated?: boolean; publicUrl?: string; dedupeWindow?: number } = {}): Promise<WebhookSync<number>> {
  return startWebhookSync({ workDir, keyOf: (r) => (r as { eventId: number }).eventId, clientSecret: SECRET, ...options, publicUrl: options.publicUrl ?? PUBLIC_URL });
}

async function storedEventIds(): Promise<number[]> {
  const text = await readFile(join(workDir, 'out', `${WEBHOOK_STREAM}.jsonl`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { eventId: number }).eventId);
}

function send(url: string, events: WebhookEvent[], timestamp?: number) {
  return postDelivery(url, signDelivery(SECRET, PUBLIC_URL, events, timestamp));
}

describe('webhook receiver (runSync -> local-files)', () => {
  it('spec: the receiver\'s connectionSpecification passes the conformance spec case', async () => {
    await sourceCases.spec.run({ source: hubspotWebhookSource, config: {}, badConfig: {}, emptyStreams: false });
  });

  it('the CLI loads each connector of the package by its name', () => {
    const spec = (...args: string[]) => spawnSync(process.execPath, [findCli(), 'spec', ...args], { encoding: 'utf8' }).stdout;
    expect(spec('hubspot-webhooks', '--kind', 'source')).toContain('HubSpot webhook receiver');
    expect(spec('hubspot', '--kind', 'source')).toContain('HubSpot source');
    expect(spec('hubspot', '--kind', 'writer')).toContain('HubSpot writer');
  });

  it('answers 2xx only once the events are committed by the destination', async () => {
    const sync = await startSync();
    try {
      for (let round = 0; round < 3; round++) {
        const events = contactEvents(5);
        const answer = await send(sync.url, events);
        expect(answer.status).toBe(200);
        // At the moment HubSpot gets its 2xx, every event of the delivery is committed.
        expect(events.filter((e) => !sync.committed.has(e.eventId))).toEqual([]);
      }
    } finally {
      const result = await sync.stop();
      expect(result.outcome).toBe('interrupted');
    }
    expect((await storedEventIds()).length).toBe(15);
  });

  it('a replay whose signature is spelled differently (padding, URL-safe base64) is still a replay', async () => {
    // Base64 decoding ignores padding and takes the URL-safe alphabet: these spellings all
    // verify, and must all be recognised as the one signature already seen.
    const sync = await startSync();
    const events = contactEvents(3);
    try {
      const signed = signDelivery(SECRET, PUBLIC_URL, events);
      const signature = signed.headers['x-hubspot-signature-v3']!;
      expect((await postDelivery(sync.url, signed)).status).toBe(200);
      const spellings = [
        signature.replace(/=+$/, ''),
        `${signature.replace(/=+$/, '')}==`,
        signature.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
      ];
      for (const spelling of spellings) {
        expect(spelling).not.toBe(signature);
        const replay = await postDelivery(sync.url, { ...signed, headers: { ...signed.headers, 'x-hubspot-signature-v3': spelling } });
        expect({ spelling, status: replay.status, body: replay.body }).toEqual({ spelling, status: 401, body: expect.stringContaining('replayed') });
      }
      // A forged signature is still forged, however it is spelled.
      const forged = signDelivery('not-the-secret', PUBLIC_URL, events).headers['x-hubspot-signature-v3']!.replace(/=+$/, '');
      expect((await postDelivery(sync.url, { ...signed, headers: { ...signed.headers, 'x-hubspot-signature-v3': forged } })).status).toBe(401);
    } finally {
      await sync.stop();
    }
    expect((await storedEventIds()).sort()).toEqual(events.map((e) => e.eventId).sort());
  });

  it('refuses forged, tampered, stale and replayed deliveries; a HubSpot retry is stored once', async () => {
    const sync = await startSync();
    const events = contactEvents(4);
    try {
      const forged = await postDelivery(sync.url, { ...signDelivery('not-the-secret', PUBLIC_URL, events) });
      expect(forged.status).toBe(401);
      const signed = signDelivery(SECRET, PUBLIC_URL, events);
      const tampered = await postDelivery(sync.url, { ...signed, body: signed.body.replace('customer', 'lead') });
      expect(tampered.status).toBe(401);
      const unsigned = await postDelivery(sync.url, { body: signed.body, headers: { 'content-type': 'application/json' } });
      expect(unsigned.status).toBe(401);
      const stale = await send(sync.url, events, Date.now() - 6 * 60 * 1000);
      expect(stale.status).toBe(401);
      expect(await storedEventIds()).toEqual([]);

      expect((await postDelivery(sync.url, signed)).status).toBe(200);
      // The very same signed request again is a replay, not a HubSpot retry.
      expect((await postDelivery(sync.url, signed)).status).toBe(401);
      // HubSpot's own retry (new timestamp, new signature, attemptNumber 1): accepted, not stored twice.
      const retry = await deliverWithRetries(SECRET, sync.url, events.map((e) => ({ ...e, attemptNumber: 1 })), { signedUrl: PUBLIC_URL });
      expect(retry.map((a) => a.status)).toEqual([200]);
    } finally {
      await sync.stop();
    }
    const stored = await storedEventIds();
    expect(stored.sort()).toEqual(events.map((e) => e.eventId).sort());
  });

  it('a full queue answers 503 so HubSpot retries; nothing is lost or duplicated', async () => {
    const sync = await startSync({ maxQueueEvents: 10, gated: true });
    // One delivery, so that it reaches the destination as one batch: the runtime writes no
    // further batch while a commit is pending (here: held by the gate), so a second delivery
    // would wait in the receiver's queue unobservably (waiting for it to be written could hang).
    const first = contactEvents(8);
    const third = contactEvents(4);
    try {
      const a = send(sync.url, first);
      // It reached the destination (its answer waits for the gated commit): 8 events pending.
      while (!first.every((e) => sync.written.has(e.eventId))) await new Promise((r) => setTimeout(r, 10));
      const refused = await send(sync.url, third);
      expect(refused.status).toBe(503);
      sync.openGate();
      expect((await a).status).toBe(200);
      const retried = await deliverWithRetries(SECRET, sync.url, third, { signedUrl: PUBLIC_URL });
      expect(retried.at(-1)?.status).toBe(200);
    } finally {
      sync.openGate();
      await sync.stop();
    }
    const stored = await storedEventIds();
    const expected = [...first, ...third].map((e) => e.eventId);
    expect(stored.sort((x, y) => x - y)).toEqual(expected.sort((x, y) => x - y));
  });

  it('dedupes on eventId across a restart (the recent eventIds live in the checkpoint)', async () => {
    const events = contactEvents(6);
    const first = await startSync();
    try {
      expect((await send(first.url, events)).status).toBe(200);
    } finally {
      await first.stop();
    }
    const second = await startSync();
    try {
      // HubSpot never saw the 2xx (say) and delivers again after the restart.
      const again = await deliverWithRetries(SECRET, second.url, events.map((e) => ({ ...e, attemptNumber: 2 })), { signedUrl: PUBLIC_URL });
      expect(again.map((a) => a.status)).toEqual([200]);
      // Nothing of it was queued again: no new commit carried these ids.
      expect(events.filter((e) => second.committed.has(e.eventId))).toEqual([]);
      const more = contactEvents(2);
      expect((await send(second.url, more)).status).toBe(200);
    } finally {
      await second.stop();
    }
    expect((await storedEventIds()).length).toBe(8);
  });
  it('keeps exactly the last dedupe_window eventIds in the checkpoint, none for a window of 0', async () => {
    for (const window of [3, 0]) {
      const running = await startSync({ dedupeWindow: window });
      try {
        expect((await send(running.url, contactEvents(5))).status).toBe(200);
      } finally {
        await running.stop();
      }
      const state = await createFileStateStore(join(workDir, 'state')).load('hubspot-webhooks');
      expect((state?.streams[WEBHOOK_STREAM] as { recent?: number[] } | undefined)?.recent).toHaveLength(window);
      await rm(join(workDir, 'state'), { recursive: true, force: true });
    }
  });

  it('verifies the target URL as HubSpot signs it: %3A, %2F, … decoded, the query still covered', async () => {
    // A target URL carrying a URL in its query. HubSpot decodes the listed percent-encoded
    // characters of the URI before signing (computed here by hand, as HubSpot does).
    const query = '?portal=62515&next=https%3A%2F%2Fapp.example.com%2Fdone%3Bv%3D1';
    const sync = await startSync({ publicUrl: `${PUBLIC_URL}${query}` });
    const events = contactEvents(3);
    const hubspotSigned = (uri: string, body: string, ts: string): string =>
      createHmac('sha256', SECRET).update(`POST${uri}${body}${ts}`, 'utf8').digest('base64');
    const deliver = (sentQuery: string, signedUri: string) => {
      const body = JSON.stringify(events);
      const ts = String(Date.now());
      return postDelivery(`${sync.url}${sentQuery}`, {
        body,
        headers: { 'content-type': 'application/json', 'x-hubspot-request-timestamp': ts, 'x-hubspot-signature-v3': hubspotSigned(signedUri, body, ts) },
      });
    };
    try {
      // Another query than the one signed is still refused.
      expect((await deliver('?portal=62515&next=https%3A%2F%2Fevil.example.com', `${PUBLIC_URL}?portal=62515&next=https://app.example.com/done;v%3D1`)).status).toBe(401);
      expect((await deliver(query, `${PUBLIC_URL}?portal=62515&next=https://app.example.com/done;v%3D1`)).status).toBe(200);
    } finally {
      await sync.stop();
    }
    expect((await storedEventIds()).sort((x, y) => x - y)).toEqual(events.map((e) => e.eventId));
  });

  it('a delivery larger than max_queue_events is taken once nothing else is pending, not refused forever', async () => {
    // HubSpot batches up to 100 events per request; a smaller queue must still take them.
    const sync = await startSync({ maxQueueEvents: 10 });
    const events = contactEvents(25);
    try {
      const answers = await deliverWithRetries(SECRET, sync.url, events, { signedUrl: PUBLIC_URL, maxAttempts: 5, delayMs: 50 });
      expect(answers.map((a) => a.status)).toEqual([200]);
      expect(events.filter((e) => !sync.committed.has(e.eventId))).toEqual([]);
    } finally {
      await sync.stop();
    }
    expect((await storedEventIds()).length).toBe(25);
  });
});
