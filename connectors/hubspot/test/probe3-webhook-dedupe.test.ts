// Dedupe identity and window of the webhook receiver, against its real HTTP server.
// - HubSpot documents eventId as "not guaranteed to be unique": two different events that
//   share one must both be stored, while HubSpot's retries of each (same event, attemptNumber
//   counting up) are still stored once.
// - The receiver remembers at most `dedupe_window` committed events: a long-running receiver
//   must not grow without bound.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WEBHOOK_STREAM } from '../src/index.js';
import { startReceiver, type Receiver } from '../src/webhooks/receiver.js';
import { contactEvents, deliverWithRetries, postDelivery, signDelivery, type WebhookEvent } from '../src/simulator/index.js';
import { startWebhookSync, testReceiverOptions, type WebhookSync } from './support.js';

const SECRET = 'client-secret-dedupe';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A sync of the receiver into local files under `workDir` (see startWebhookSync); records are tracked by eventKey. */
function startSync(workDir: string): Promise<WebhookSync<string>> {
  return startWebhookSync({ workDir, keyOf: (r) => (r as { eventKey: string }).eventKey, clientSecret: SECRET, publicUrl: PUBLIC_URL, connection: 'hubspot-webhooks-dedupe' });
}

async function storedEvents(workDir: string): Promise<{ eventId: number; eventKey: string; objectId: number }[]> {
  const text = await readFile(join(workDir, 'out', `${WEBHOOK_STREAM}.jsonl`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as { eventId: number; eventKey: string; objectId: number });
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hubspot-webhook-dedupe-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function receiverFor(options: { dedupeWindow: number; committed?: string[] }): Promise<Receiver> {
  const receiver = await startReceiver({ ...testReceiverOptions(SECRET, PUBLIC_URL), committed: options.committed ?? [], dedupeWindow: options.dedupeWindow });
  cleanups.push(() => receiver.stop());
  return receiver;
}

/** Takes what is queued, as the source does, and commits it: its deliveries are answered. */
async function commitQueued(receiver: Receiver, seq: number): Promise<WebhookEvent[]> {
  const batch = await receiver.next(new AbortController().signal, 10_000);
  if (!batch) return [];
  receiver.markYielded(batch.deliveries, seq);
  receiver.ackUpTo(seq);
  return batch.events as unknown as WebhookEvent[];
}

function send(url: string, events: WebhookEvent[]) {
  return postDelivery(url, signDelivery(SECRET, PUBLIC_URL, events));
}

describe('hubspot webhooks: dedupe identity and window', () => {
  it('two different events sharing an eventId are both stored; retries of each are stored once', async () => {
    const workDir = await tempDir();
    const sync = await startSync(workDir);
    const [first, other] = contactEvents(2);
    // HubSpot: "eventId ... is not guaranteed to be unique". Same eventId, another object.
    const sharing: WebhookEvent = { ...other!, eventId: first!.eventId, occurredAt: first!.occurredAt + 1 };
    try {
      expect((await send(sync.url, [first!])).status).toBe(200);
      const answer = await send(sync.url, [sharing]);
      expect({ status: answer.status, body: answer.body }).toEqual({ status: 200, body: expect.stringContaining('"stored"') });
      const committedBefore = sync.committed.size;
      // HubSpot's retries: each event again, attemptNumber 1 and 2, new signatures.
      for (const attempt of [1, 2]) {
        const retries = await deliverWithRetries(SECRET, sync.url, [first!, sharing].map((e) => ({ ...e, attemptNumber: attempt })), { signedUrl: PUBLIC_URL });
        expect(retries.map((a) => a.status)).toEqual([200]);
      }
      // A retry whose fields come in another order is the same event too.
      const reordered = Object.fromEntries(Object.entries({ ...sharing, attemptNumber: 3 }).reverse()) as unknown as WebhookEvent;
      expect((await send(sync.url, [reordered])).body).toContain('already stored');
      expect(sync.committed.size).toBe(committedBefore);
    } finally {
      await sync.stop();
    }
    const stored = await storedEvents(workDir);
    expect(stored.map((e) => ({ eventId: e.eventId, objectId: e.objectId })).sort((a, b) => a.objectId - b.objectId)).toEqual(
      [first!, sharing].map((e) => ({ eventId: e.eventId, objectId: e.objectId })).sort((a, b) => a.objectId - b.objectId),
    );
    expect(new Set(stored.map((e) => e.eventKey)).size).toBe(2);
  });

  it('remembers at most dedupe_window committed events: older ones are forgotten, newer ones still deduped', async () => {
    const receiver = await receiverFor({ dedupeWindow: 3 });
    const events = contactEvents(5);
    const answer = send(receiver.url, events);
    expect((await commitQueued(receiver, 1)).length).toBe(5);
    expect((await answer).status).toBe(200);

    // The newest three are still known: a retry of the last one is answered at once.
    expect((await send(receiver.url, [{ ...events[4]!, attemptNumber: 1 }])).body).toContain('already stored');
    // The first two left the window: a retry of the first is taken (and stored) again.
    const retry = send(receiver.url, [{ ...events[0]!, attemptNumber: 1 }, { ...events[3]!, attemptNumber: 1 }]);
    expect((await commitQueued(receiver, 2)).map((e) => e.eventId)).toEqual([events[0]!.eventId]);
    expect((await retry).status).toBe(200);
    expect(receiver.stats.remembered).toBe(3);
    expect(receiver.recent()).toHaveLength(3);

    // Many more events: what is remembered stays at the window.
    for (let round = 0; round < 20; round++) {
      const more = send(receiver.url, contactEvents(50));
      await commitQueued(receiver, 3 + round);
      expect((await more).status).toBe(200);
    }
    expect(receiver.stats.remembered).toBe(3);
  });

  it('a saved state of bare eventIds (written before eventKey) still dedupes those events', async () => {
    const [old] = contactEvents(1);
    const receiver = await receiverFor({ dedupeWindow: 10, committed: [`eventId:${old!.eventId}`] });
    // Answered at once, not queued (a queued delivery would wait for a commit that never comes).
    const taking = new AbortController();
    const outcome = await Promise.race([send(receiver.url, [{ ...old!, attemptNumber: 4 }]).then((a) => a.body), receiver.next(taking.signal, undefined).then(() => 'queued')]);
    taking.abort();
    expect(outcome).toContain('already stored');
  });
});
