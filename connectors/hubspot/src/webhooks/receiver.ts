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
 * An event already committed (its `eventKey` is among the recent ones kept in the checkpoint
 * state) is dropped and answered 2xx at once; one still in flight makes the delivery wait
 * for that event's commit.
 *
 * Event identity: HubSpot documents `eventId` as "not guaranteed to be unique", so two
 * different events may share one and keying on it alone would drop one of them. What stays
 * the same across HubSpot's retries of one event is every field but `attemptNumber` (the
 * only per-attempt field HubSpot documents): the identity is a digest of all the other
 * fields (`eventKey`). Taking every field, not a chosen list, also separates event kinds
 * whose distinguishing fields differ (association events carry fromObjectId/toObjectId,
 * merges mergedObjectIds, property changes propertyName/propertyValue, …).
 */
import { createHash } from 'node:crypto';
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
  /**
   * Identities of events already committed (from the saved state), oldest first: `eventKey`s,
   * or `eventId:<n>` for an eventId saved by an earlier version (matched on eventId alone).
   */
  committed: readonly string[];
  /** How many committed identities to remember (the newest); older ones are forgotten. Default 5000, as `dedupe_window`. */
  dedupeWindow?: number;
  /** How long yielded-but-uncommitted deliveries wait for their commit once the read stopped. */
  drainMs?: number;
  /** Largest delivery body accepted, in bytes (default DEFAULT_MAX_BODY_BYTES); a larger one is answered 413. */
  maxBodyBytes?: number;
  /** Told of each delivery refused for its size (HubSpot retries it, then drops it: events lost unless the limit is raised). */
  onOversized?: (bytes: number, limit: number) => void;
}

export interface HubspotEvent extends RecordData {
  eventId: number;
  /** The event's identity, the same on every delivery attempt (see the module comment). */
  eventKey: string;
}

/** The prefix of identities saved by versions that deduped on eventId alone. */
const LEGACY_PREFIX = 'eventId:';

export function legacyIdentity(eventId: number): string {
  return `${LEGACY_PREFIX}${eventId}`;
}

/** JSON with object keys sorted at every level: equal values give equal text whatever the key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The identity of an event as HubSpot sent it, without `attemptNumber`: base64url of the
 * first 16 bytes of SHA-256 over its canonical JSON (22 characters; the checkpoint keeps
 * `dedupe_window` of them).
 */
export function eventKeyOf(event: Readonly<Record<string, unknown>>): string {
  return createHash('sha256').update(canonicalJson(event)).digest().subarray(0, 16).toString('base64url');
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

/**
 * Default body limit: HubSpot sends up to 100 events per delivery, and a text property value
 * entered in the CRM holds up to 65,536 characters (up to 3 bytes each in UTF-8, more where
 * JSON escapes them): 100 such property changes come to ~20 MB. A smaller limit (4 MiB
 * before) refused such a delivery on every retry, until HubSpot dropped its events.
 */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;
const DEFAULT_DEDUPE_WINDOW = 5_000;

/**
 * The body as text, or its size so far once it passes `limit`: reading then stops (the
 * request is paused, so that the 413 can still be sent; the connection is closed after it).
 */
function readBody(req: IncomingMessage, limit: number): Promise<string | { tooLarge: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        chunks.length = 0;
        resolve({ tooLarge: size });
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
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
    // byte-identical, so keyed destinations dedupe it too. A field named eventKey sent by
    // HubSpot is not part of the identity: it is replaced by the one computed here.
    const { attemptNumber: _attempt, eventKey: _sentKey, ...event } = item as Record<string, unknown>;
    void _attempt;
    void _sentKey;
    events.push({ ...event, eventKey: eventKeyOf(event) } as HubspotEvent);
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
  /**
   * The runtime never received the checkpoints after `seq` (the read was stopped between a
   * page and its checkpoint): no ack will ever cover their deliveries, so they are answered
   * 503 now (HubSpot retries them) instead of holding the stop for `drainMs`.
   */
  abandonAfter(seq: number): void;
  /** The recent event identities to keep in the next checkpoint (committed or in it), oldest first; at most `dedupeWindow`. */
  recent(): string[];
  /** Stops accepting; answers 503 to queued deliveries; gives yielded ones `drainMs` to be acked. */
  stop(): Promise<void>;
  readonly stats: { accepted: number; rejected: Record<string, number>; duplicates: number; remembered: number };
}

export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  /** Identities of committed events, the newest `dedupeWindow` of them; `order` is oldest first. */
  const known = new Set<string>();
  const order: string[] = [];
  /** Whether the saved state had eventIds of an earlier version: events are then also matched on eventId. */
  const hasLegacy = options.committed.some((id) => id.startsWith(LEGACY_PREFIX));
  /** eventKey -> delivery that holds it, until committed. */
  const holders = new Map<string, Delivery>();
  const queued: Delivery[] = [];
  const yielded: Delivery[] = [];
  let pendingEvents = 0;
  let stopping = false;
  let wake: (() => void) | undefined;
  /** Verified signatures (their bytes, hex) -> when their timestamp stops verifying; arrival order. */
  const seenSignatures = new Map<string, number>();
  const dedupeWindow = options.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW;
  const stats = { accepted: 0, rejected: {} as Record<string, number>, duplicates: 0, remembered: 0 };
  const publicUrl = new URL(options.publicUrl);

  /** Remembers committed identities, forgetting the oldest beyond `dedupeWindow` (the checkpoint keeps no more either). */
  function remember(ids: Iterable<string>): void {
    for (const id of ids) {
      if (known.has(id)) continue;
      known.add(id);
      order.push(id);
    }
    const excess = order.length - dedupeWindow;
    if (excess > 0) for (const id of order.splice(0, excess)) known.delete(id);
    stats.remembered = known.size;
  }
  remember(options.committed);

  function isCommitted(event: HubspotEvent): boolean {
    return known.has(event.eventKey) || (hasLegacy && known.has(legacyIdentity(event.eventId)));
  }

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
    for (const event of delivery.events) if (holders.get(event.eventKey) === delivery) holders.delete(event.eventKey);
    if (ok) remember(delivery.events.map((event) => event.eventKey));
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
    const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const text = await readBody(req, maxBodyBytes);
    if (typeof text !== 'string') {
      options.onOversized?.(text.tooLarge, maxBodyBytes);
      res.on('finish', () => req.destroy());
      return reject(res, 413, 'body too large', { connection: 'close' });
    }
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
    const inThisDelivery = new Set<string>();
    for (const event of events) {
      if (isCommitted(event) || inThisDelivery.has(event.eventKey)) {
        stats.duplicates++;
        continue;
      }
      const holder = holders.get(event.eventKey);
      if (holder) {
        stats.duplicates++;
        dependsOn.add(holder);
        continue;
      }
      inThisDelivery.add(event.eventKey);
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
    for (const event of fresh) holders.set(event.eventKey, delivery);
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
    abandonAfter(seq) {
      for (let i = yielded.length - 1; i >= 0; i--) {
        if ((yielded[i]!.seq ?? Infinity) <= seq) continue;
        release(yielded.splice(i, 1)[0]!, false, 503, 'read stopped before the checkpoint of these events; retry');
      }
    },
    recent() {
      const limit = dedupeWindow;
      const ids = [...order];
      for (const d of yielded) for (const e of d.events) if (!known.has(e.eventKey)) ids.push(e.eventKey);
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
