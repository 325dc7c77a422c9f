// The receiver's replay window against a sender whose clock runs ahead: HubSpot's timestamp
// may be up to 5 minutes in the future and still verify, so a signature must be remembered
// for as long as its timestamp verifies — not for 5 minutes after it arrived.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startReceiver, type Receiver } from '../src/webhooks/receiver.js';
import { SIGNATURE_MAX_AGE_MS } from '../src/webhooks/signature.js';
import { contactEvents, postDelivery, signDelivery } from '../src/simulator/index.js';

const SECRET = 'client-secret-probe';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';

let receiver: Receiver | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await receiver?.stop();
  receiver = undefined;
});

describe('hubspot webhooks: replay window', () => {
  it('a delivery signed 4 minutes ahead is refused as a replay 5.5 minutes after it was stored', async () => {
    // Only Date is faked: sockets and timers run for real.
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.now();
    vi.setSystemTime(start);
    receiver = await startReceiver({
      clientSecret: SECRET,
      host: '127.0.0.1',
      port: 0,
      path: '/hubspot/webhooks',
      publicUrl: PUBLIC_URL,
      maxQueueEvents: 100,
      committed: [],
      drainMs: 0,
    });
    const signed = signDelivery(SECRET, PUBLIC_URL, contactEvents(2), start + 4 * 60_000);
    const answer = postDelivery(receiver.url, signed);
    const batch = await receiver.next(new AbortController().signal, 5_000);
    expect(batch?.events.length).toBe(2);
    receiver.markYielded(batch!.deliveries, 1);
    receiver.ackUpTo(1);
    expect((await answer).status).toBe(200);

    // 5.5 minutes later the timestamp is 1.5 minutes old: it still verifies.
    vi.setSystemTime(start + SIGNATURE_MAX_AGE_MS + 30_000);
    const replay = await postDelivery(receiver.url, signed);
    expect({ status: replay.status, body: replay.body }).toEqual({ status: 401, body: expect.stringContaining('replayed') });
  });
});
