/**
 * The HTTP side of the webhook receiver: verifies each delivery, dedupes its events, queues
 * them (bounded), and holds the HTTP answer until the runtime committed them.
 *
 * Contract with HubSpot: a 2xx means "stored durably" — it is sent only from `ackUpTo(seq)`,
 * which the source's `ack` calls after the runtime committed the checkpoint `seq` (i.e. after
 * the destination acknowledged the events). Anything else makes HubSpot retry:
 * - 503 + Retry-After when the queue is full (events waiting or not yet committed would
 *   exceed `maxQueueEvents`; a larger delivery is taken alone, when nothing is pending), or
 *   when the receiver stops before the events were committed;
 * - 401 for a missing, forged or stale signature (timestamp outside ±5 minutes) and for a
 *   replay of a signature already seen in that window (HubSpot signs every attempt anew);
 * - 400 for a body that is not a JSON array of events.
 * An event already committed (its eventId is among the recent ones kept in the checkpoint
 * state) is dropped and answered 2xx at once; one still in flight makes the delivery wait
 * for that event's commit.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RecordData } from '@tributary/core';
import { SIGNATURE_MAX_AGE_MS, verifySignatureV3 } from './signature.js';

export interface ReceiverOptions {
  clientSecret: string;
  host: string;
  port: number;
  /** Local path deliveries arrive on. */
  path: string;
  /** The target URL configured in HubSpot: what HubSpot signs. */
  publicUrl: string;
  maxQueueEvents: number;
  /** eventIds already committed (from the saved state), oldest first. */
  committed: readonly number[];
  /** How long yielded-but-uncommitted deliveries wait for their commit once the read stopped. */
  drainMs?: number;
}

export interface HubspotEvent extends RecordData {
  eventId: number;
}

interface Delivery {
  events: HubspotEvent[];
  /** Checkpoint sequence covering these events, once yielded. */
  seq?: number;
  /** Deliveries holding events this one repeats: answered only after them. */
  dependsOn: Delivery[];
  settled: boolean;
  answer(status: number, message: string): void;
  done: Promise<boolean>;
  resolveDone(ok: boolean): void;
}

const MAX_BODY_BYTES = 4 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseEvents(text: string): HubspotEvent[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  const events: HubspotEvent[] = [];
  for (const item of parsed) {
    if (typeof item !== 'object' || item === null || !Number.isSafeInteger((item as { eventId?: unknown }).eventId)) return undefined;
    // attemptNumber describes the delivery, not the event: without it a redelivered event is
    // byte-identical, so keyed destinations dedupe it too.
    const { attemptNumber: _attempt, ...event } = item as Record<string, unknown>;
    void _attempt;
    events.push(JSON.parse(JSON.stringify(event)) as HubspotEvent);
  }
  return events;
}

export interface Receiver {
  readonly url: string;
  /** Resolves with the events of every delivery queued so far (at least one), or undefined when `signal` aborts or `idleMs` passes with nothing queued. */
  next(signal: AbortSignal, idleMs: number | undefined): Promise<{ events: HubspotEvent[]; deliveries: Delivery[] } | undefined>;
  /** The deliveries' events are in the checkpoint `seq`. */
  markYielded(deliveries: Delivery[], seq: number): void;
  /** The runtime committed checkpoint `seq`: answer 2xx to every delivery it covers. */
  ackUpTo(seq: number): void;
  /** The recent eventIds to keep in the next checkpoint (committed or in it), oldest first. */
  recent(limit: number): number[];
  /** Stops accepting; answers 503 to queued deliveries; gives yielded ones `drainMs` to be acked. */
  stop(): Promise<void>;
  readonly stats: { accepted: number; rejected: Record<string, number>; duplicates: number };
}

export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const known = new Set<number>(options.committed);
  const order: number[] = [...options.committed];
  /** eventId -> delivery that holds it, until committed. */
  const holders = new Map<number, Delivery>();
  const queued: Delivery[] = [];
  const yielded: Delivery[] = [];
  let pendingEvents = 0;
  let stopping = false;
  let wake: (() => void) | undefined;
  /** Verified signatures (their bytes, hex) -> when their timestamp stops verifying; arrival order. */
  const seenSignatures = new Map<string, number>();
  const stats = { accepted: 0, rejected: {} as Record<string, number>, duplicates: 0 };
  const publicUrl = new URL(options.publicUrl);

  function reject(res: ServerResponse, status: number, reason: string, headers: Record<string, string> = {}): void {
    stats.rejected[reason] = (stats.rejected[reason] ?? 0) + 1;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ status: 'error', message: reason }));
  }

  function newDelivery(res: ServerResponse, events: HubspotEvent[], dependsOn: Delivery[]): Delivery {
    let resolveDone: (ok: boolean) => void = () => {};
    const done = new Promise<boolean>((r) => (resolveDone = r));
    const delivery: Delivery = {
      events,
      dependsOn,
      settled: false,
      done,
      resolveDone: (ok) => resolveDone(ok),
      answer(status, message) {
        if (delivery.settled) return;
        delivery.settled = true;
        pendingEvents -= delivery.events.length;
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(status, { 'content-type': 'application/json', ...(status === 503 ? { 'retry-after': '1' } : {}) });
          res.end(JSON.stringify(status < 300 ? { status: 'ok', message } : { status: 'error', message }));
        }
      },
    };
    return delivery;
  }

  function release(delivery: Delivery, ok: boolean, status: number, message: string): void {
    for (const event of delivery.events) if (holders.get(event.eventId) === delivery) holders.delete(event.eventId);
    if (ok) {
      for (const event of delivery.events) {
        if (!known.has(event.eventId)) {
          known.add(event.eventId);
          order.push(event.eventId);
        }
      }
    }
    delivery.answer(status, message);
    delivery.resolveDone(ok);
  }

  /** Answers once every delivery it depends on settled: 2xx if all committed, 503 otherwise. */
  function answerAfterDependencies(delivery: Delivery): void {
    void Promise.all(delivery.dependsOn.map((d) => d.done)).then((oks) => {
      if (delivery.events.length > 0) return; // it has events of its own: answered by its ack
      const ok = oks.every(Boolean);
      release(delivery, ok, ok ? 200 : 503, ok ? 'duplicate of events now stored' : 'not stored; retry');
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'POST' || url.pathname !== options.path) return reject(res, 404, 'not found');
    if (stopping) return reject(res, 503, 'receiver stopping', { 'retry-after': '1' });
    const text = await readBody(req);
    if (text === undefined) return reject(res, 413, 'body too large');
    const signature = req.headers['x-hubspot-signature-v3'];
    const timestamp = req.headers['x-hubspot-request-timestamp'];
    // HubSpot signs the URL it called: the configured target URL with this request's query.
    const uri = `${publicUrl.origin}${publicUrl.pathname}${url.search}`;
    const now = Date.now();
    const verdict = verifySignatureV3(options.clientSecret, {
      method: 'POST',
      uri,
      body: text,
      signature: typeof signature === 'string' ? signature : undefined,
      timestamp: typeof timestamp === 'string' ? timestamp : undefined,
    }, now);
    if (!verdict.ok) return reject(res, 401, `signature ${verdict.reason}`);
    // A signature is remembered for as long as its own timestamp verifies (until timestamp +
    // SIGNATURE_MAX_AGE_MS), not for a fixed time after it arrived: a timestamp up to 5
    // minutes ahead (a sender clock running fast) verifies for up to 10 minutes after its
    // arrival, and a replay in that time must still be refused. Entries are in arrival order,
    // not expiry order: pruning stops at the first one still live; an expired entry behind it
    // lingers harmlessly, since its timestamp is refused as stale before this check.
    for (const [sig, expiresAt] of seenSignatures) {
      if (expiresAt >= now) break;
      seenSignatures.delete(sig);
    }
    // By the signature's bytes, not its text: base64 decoding ignores padding, whitespace and
    // the URL-safe alphabet, so one signature has many spellings that all verify.
    const signatureId = Buffer.from(signature as string, 'base64').toString('hex');
    if (seenSignatures.has(signatureId)) return reject(res, 401, 'signature replayed');
    seenSignatures.set(signatureId, Number(timestamp) + SIGNATURE_MAX_AGE_MS);
    const events = parseEvents(text);
    if (!events) return reject(res, 400, 'body is not a JSON array of events');

    const fresh: HubspotEvent[] = [];
    const dependsOn = new Set<Delivery>();
    const inThisDelivery = new Set<number>();
    for (const event of events) {
      if (known.has(event.eventId) || inThisDelivery.has(event.eventId)) {
        stats.duplicates++;
        continue;
      }
      const holder = holders.get(event.eventId);
      if (holder) {
        stats.duplicates++;
        dependsOn.add(holder);
        continue;
      }
      inThisDelivery.add(event.eventId);
      fresh.push(event);
    }
    if (fresh.length === 0 && dependsOn.size === 0) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', message: 'already stored' }));
      return;
    }
    // A delivery larger than the whole queue (HubSpot batches up to 100 events) would be
    // refused on every retry until HubSpot drops it: it is taken when nothing else is pending.
    if (pendingEvents > 0 && pendingEvents + fresh.length > options.maxQueueEvents) return reject(res, 503, 'queue full', { 'retry-after': '1' });
    const delivery = newDelivery(res, fresh, [...dependsOn]);
    pendingEvents += fresh.length;
    stats.accepted++;
    if (fresh.length === 0) {
      answerAfterDependencies(delivery);
      return;
    }
    for (const event of fresh) holders.set(event.eventId, delivery);
    queued.push(delivery);
    wake?.();
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) reject(res, 500, String(error));
    });
  });
  await new Promise<void>((resolve, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;

  return {
    url: `http://${options.host}:${address.port}${options.path}`,
    stats,
    async next(signal, idleMs) {
      while (queued.length === 0) {
        if (signal.aborted || stopping) return undefined;
        const arrived = await new Promise<boolean>((resolve) => {
          const timer = idleMs === undefined ? undefined : setTimeout(() => finish(false), idleMs);
          const onAbort = (): void => finish(false);
          function finish(value: boolean): void {
            if (timer) clearTimeout(timer);
            signal.removeEventListener('abort', onAbort);
            wake = undefined;
            resolve(value);
          }
          wake = () => finish(true);
          signal.addEventListener('abort', onAbort, { once: true });
        });
        if (!arrived && queued.length === 0) return undefined;
      }
      const deliveries = queued.splice(0, queued.length);
      return { events: deliveries.flatMap((d) => d.events), deliveries };
    },
    markYielded(deliveries, seq) {
      for (const d of deliveries) {
        d.seq = seq;
        yielded.push(d);
      }
    },
    ackUpTo(seq) {
      while (yielded.length > 0 && (yielded[0]!.seq ?? Infinity) <= seq) {
        release(yielded.shift()!, true, 200, 'stored');
      }
    },
    recent(limit) {
      const ids = [...order];
      for (const d of yielded) for (const e of d.events) if (!known.has(e.eventId)) ids.push(e.eventId);
      // slice(-0) would be the whole list: a window of 0 keeps none.
      return limit > 0 ? ids.slice(-limit) : [];
    },
    async stop() {
      stopping = true;
      for (const d of queued.splice(0, queued.length)) release(d, false, 503, 'receiver stopped before storing; retry');
      // Yielded deliveries may still be committed by the runtime's final commit: wait for it.
      const deadline = Date.now() + (options.drainMs ?? 30_000);
      while (yielded.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20).unref());
      for (const d of yielded.splice(0, yielded.length)) release(d, false, 503, 'not stored; retry');
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
