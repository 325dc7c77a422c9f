/**
 * The simulator's webhook subscription: every change the simulator applies (API writes and
 * control operations) becomes the events HubSpot documents, delivered to one target URL in
 * signed batches, as HubSpot's webhooks API does:
 *
 * - a delivery is a JSON array of up to 100 events (`maxEventsPerRequest`), signed with the
 *   v3 signature anew on every attempt (`signDelivery`);
 * - a delivery is retried when the connection fails, when no answer comes within the timeout
 *   (HubSpot: 5 seconds) and on any status but 2xx, up to 10 times, the retries spread over
 *   about 24 hours with some randomization; `attemptNumber` counts the attempts from 0;
 * - nothing orders deliveries: batches go out concurrently (up to `maxConcurrentRequests`),
 *   and with `chaos` the events of a flush are shuffled across batches of random sizes and
 *   some batches are delivered twice (HubSpot dedupe guidance: deliveries may repeat).
 *
 * Sources: HubSpot's webhooks API guide (payload fields, batching, retries, timeout, v3
 * signature) and the developer changelog "New subscription types for webhooks" (merge,
 * restore and associationChange events and their payload fields; no new field for restore).
 */
import { postDelivery, signDelivery, type AnyWebhookEvent, type AssociationChangeEvent, type Delivery, type MergeEvent, type WebhookEvent } from './webhook-sender.js';

/** One subscription: `contact.creation`, `company.propertyChange`… */
export interface WebhookSubscription {
  /** `<object>.<event>`: `contact.creation`, `contact.deletion`, `contact.propertyChange`, `contact.restore`, `contact.merge`, `contact.associationChange` (and the same for company, deal). */
  subscriptionType: string;
  /**
   * For `*.propertyChange`: the property watched. HubSpot requires one per subscription; the
   * simulator takes its absence to mean every writable property.
   */
  propertyName?: string;
}

export interface WebhookOptions {
  /** Where deliveries are POSTed, and what is signed (HubSpot signs the target URL). */
  targetUrl: string;
  /**
   * Where deliveries are actually sent when that differs from `targetUrl` (a test receiver
   * on a local port behind a public target URL). Default: `targetUrl`.
   */
  deliverTo?: string;
  clientSecret: string;
  subscriptions: readonly WebhookSubscription[];
  portalId?: number;
  appId?: number;
  /** Events per delivery (default and HubSpot's maximum: 100). */
  maxEventsPerRequest?: number;
  /** Deliveries in flight at once (default 10). */
  maxConcurrentRequests?: number;
  /** How long an attempt waits for its answer before it counts as failed, ms (default 5,000). */
  timeoutMs?: number;
  /**
   * The wait before each retry, ms; its length is the number of retries (default 10 delays
   * adding up to about 24 hours). Each wait is stretched by a random factor in [1, 1.5).
   */
  retryDelaysMs?: readonly number[];
  /** How long changes gather before they are flushed into deliveries, ms (default 0: the next turn of the event loop). */
  flushDelayMs?: number;
  /** Randomness for batch sizes, reordering, duplication and retry jitter (default Math.random); pass core's `seededRandom(seed)` for repeatable runs. */
  random?: () => number;
  /**
   * Delivery disorder beyond HubSpot's concurrency: each flush's events are shuffled and cut
   * into batches of random sizes, and a batch is delivered a second time with probability
   * `duplicateRate` (default 0: off).
   */
  chaos?: { duplicateRate?: number };
}

/** How a change was made: through the API, or in HubSpot's UI (the simulator's control operations). */
export type ChangeSource = 'API' | 'CRM_UI';

export interface WebhookStats {
  /** POST attempts made. */
  attempts: number;
  /** Attempts answered 2xx. */
  delivered: number;
  /** Attempts that failed: a non-2xx status, a timeout or a connection error. */
  failed: number;
  /** Deliveries sent a second time by `chaos`. */
  duplicated: number;
}

export interface SimulatorWebhooks {
  /** Every event emitted so far, in emission order, as first sent (`attemptNumber` 0). */
  readonly emitted: readonly AnyWebhookEvent[];
  /** Events whose every attempt failed: HubSpot drops them. */
  readonly dropped: readonly AnyWebhookEvent[];
  readonly stats: WebhookStats;
  /** Resolves once every emitted event is delivered (2xx) or dropped. */
  settled(): Promise<void>;
}

/** HubSpot: up to 10 retries spread over the next 24 hours (these add up to 23.8 hours). */
const DEFAULT_RETRY_DELAYS_MS = [1, 2, 5, 10, 30, 60, 120, 240, 360, 600].map((minutes) => minutes * 60_000);

/** The webhook name of a CRM object type: `contacts` → `contact`. */
export function webhookObjectName(objectType: string): string {
  const known: Record<string, string> = { contacts: 'contact', companies: 'company', deals: 'deal', tickets: 'ticket', products: 'product', line_items: 'line_item' };
  return known[objectType] ?? objectType.replace(/s$/, '');
}

/** The emitter behind `SimulatorWebhooks`: the simulator calls the `on*` methods as it applies changes. */
export class WebhookEmitter implements SimulatorWebhooks {
  readonly emitted: AnyWebhookEvent[] = [];
  readonly dropped: AnyWebhookEvent[] = [];
  readonly stats: WebhookStats = { attempts: 0, delivered: 0, failed: 0, duplicated: 0 };
  private readonly random: () => number;
  private pending: AnyWebhookEvent[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private nextEventId = 1;
  /** Deliveries not yet delivered or dropped (pending events count as one). */
  private open = 0;
  private waiters: Array<() => void> = [];
  private inFlight = 0;
  private readonly slotWaiters: Array<() => void> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: WebhookOptions) {
    this.random = options.random ?? Math.random;
  }

  private subscribed(objectType: string, event: string, propertyName?: string): boolean {
    const type = `${webhookObjectName(objectType)}.${event}`;
    return this.options.subscriptions.some((s) => s.subscriptionType === type && (propertyName === undefined || s.propertyName === undefined || s.propertyName === propertyName));
  }

  /** Whether a `*.propertyChange` subscription names this property explicitly (then even read-only ones are sent). */
  private namesProperty(objectType: string, propertyName: string): boolean {
    const type = `${webhookObjectName(objectType)}.propertyChange`;
    return this.options.subscriptions.some((s) => s.subscriptionType === type && s.propertyName === propertyName);
  }

  private base(objectType: string, event: string, occurredAt: number, source: ChangeSource): Omit<WebhookEvent, 'objectId'> {
    return {
      eventId: this.nextEventId++,
      subscriptionId: this.subscriptionIdOf(`${webhookObjectName(objectType)}.${event}`),
      portalId: this.options.portalId ?? 62515,
      appId: this.options.appId ?? 54321,
      occurredAt,
      subscriptionType: `${webhookObjectName(objectType)}.${event}`,
      attemptNumber: 0,
      changeSource: source,
    };
  }

  /** A stable id per subscription type (HubSpot numbers each subscription). */
  private subscriptionIdOf(type: string): number {
    const index = this.options.subscriptions.findIndex((s) => s.subscriptionType === type);
    return 100_000 + Math.max(0, index);
  }

  onCreate(objectType: string, id: number, properties: Record<string, string | null>, at: number, source: ChangeSource, writable: (name: string) => boolean): void {
    if (this.subscribed(objectType, 'creation')) this.emit({ ...this.base(objectType, 'creation', at, source), objectId: id });
    // A value set at creation is a property change too.
    const set = Object.entries(properties).filter(([, value]) => value !== null && value !== '');
    this.onPropertyChanges(objectType, id, Object.fromEntries(set), at, source, writable);
  }

  /** `changes`: the properties whose value moved, with their new values. */
  onPropertyChanges(objectType: string, id: number, changes: Record<string, string | null>, at: number, source: ChangeSource, writable: (name: string) => boolean): void {
    for (const [name, value] of Object.entries(changes)) {
      if (!this.subscribed(objectType, 'propertyChange', name)) continue;
      if (!writable(name) && !this.namesProperty(objectType, name)) continue;
      this.emit({ ...this.base(objectType, 'propertyChange', at, source), objectId: id, propertyName: name, propertyValue: value ?? '' });
    }
  }

  onDelete(objectType: string, id: number, at: number, source: ChangeSource): void {
    if (this.subscribed(objectType, 'deletion')) this.emit({ ...this.base(objectType, 'deletion', at, source), objectId: id });
  }

  onRestore(objectType: string, id: number, at: number, source: ChangeSource): void {
    if (this.subscribed(objectType, 'restore')) this.emit({ ...this.base(objectType, 'restore', at, source), objectId: id });
  }

  onMerge(objectType: string, primaryId: number, mergedId: number, newId: number, propertiesMoved: number, at: number, source: ChangeSource): void {
    if (!this.subscribed(objectType, 'merge')) return;
    const event: MergeEvent = {
      ...this.base(objectType, 'merge', at, source),
      objectId: primaryId,
      primaryObjectId: primaryId,
      mergedObjectIds: [mergedId],
      newObjectId: newId,
      numberOfPropertiesMoved: propertiesMoved,
    };
    this.emit(event);
  }

  /** One event per end whose object type is subscribed (`CONTACT_TO_COMPANY` for the contact, `COMPANY_TO_CONTACT` for the company). */
  onAssociation(fromType: string, fromId: number, toType: string, toId: number, removed: boolean, at: number, source: ChangeSource): void {
    for (const [a, aId, b, bId] of [[fromType, fromId, toType, toId], [toType, toId, fromType, fromId]] as const) {
      if (!this.subscribed(a, 'associationChange')) continue;
      const { eventId, subscriptionId, portalId, appId, occurredAt, subscriptionType, attemptNumber, changeSource } = this.base(a, 'associationChange', at, source);
      const event: AssociationChangeEvent = {
        eventId, subscriptionId, portalId, appId, occurredAt, subscriptionType, attemptNumber, changeSource,
        associationType: `${webhookObjectName(a)}_TO_${webhookObjectName(b)}`.toUpperCase(),
        fromObjectId: aId,
        toObjectId: bId,
        associationRemoved: removed,
        isPrimaryAssociation: false,
      };
      this.emit(event);
    }
  }

  settled(): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops every delivery and retry: what is not delivered yet is dropped. */
  close(): void {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const wake of this.slotWaiters.splice(0)) wake();
    this.open = 0;
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  private emit(event: AnyWebhookEvent): void {
    if (this.closed) return;
    this.emitted.push(event);
    this.pending.push(event);
    if (this.flushTimer) return;
    this.open++;
    this.flushTimer = setTimeout(() => this.flush(), this.options.flushDelayMs ?? 0);
  }

  /** Cuts the pending events into deliveries and starts them all. */
  private flush(): void {
    this.flushTimer = undefined;
    const events = this.pending;
    this.pending = [];
    const max = this.options.maxEventsPerRequest ?? 100;
    const chaos = this.options.chaos;
    if (chaos) shuffle(events, this.random);
    const batches: AnyWebhookEvent[][] = [];
    for (let i = 0; i < events.length; ) {
      const size = chaos ? 1 + Math.floor(this.random() * max) : max;
      batches.push(events.slice(i, i + size));
      i += size;
    }
    for (const batch of batches) {
      this.startDelivery(batch);
      if (chaos && this.random() < (chaos.duplicateRate ?? 0)) {
        this.stats.duplicated++;
        this.startDelivery(batch);
      }
    }
    this.done();
  }

  private startDelivery(batch: AnyWebhookEvent[]): void {
    this.open++;
    void this.deliver(batch).finally(() => this.done());
  }

  private done(): void {
    if (this.open > 0) this.open--;
    if (this.open === 0) for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** Attempts a delivery until a 2xx or the retries run out (then its events are dropped). */
  private async deliver(batch: AnyWebhookEvent[]): Promise<void> {
    const delays = this.options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    for (let attempt = 0; attempt <= delays.length; attempt++) {
      if (this.closed) return;
      const answer = await this.attempt(batch, attempt);
      if (answer.status >= 200 && answer.status < 300) return;
      if (attempt < delays.length) await this.sleep(delays[attempt]! * (1 + this.random() / 2));
    }
    if (!this.closed) this.dropped.push(...batch);
  }

  private async attempt(batch: AnyWebhookEvent[], attempt: number): Promise<Delivery> {
    await this.slot();
    if (this.closed) return { status: 0, body: 'closed' };
    this.inFlight++;
    this.stats.attempts++;
    try {
      const body = batch.map((event) => ({ ...event, attemptNumber: attempt }));
      const signed = signDelivery(this.options.clientSecret, this.options.targetUrl, body);
      const answer = await postDelivery(this.options.deliverTo ?? this.options.targetUrl, signed, { timeoutMs: this.options.timeoutMs ?? 5_000 }).catch(
        (error: unknown): Delivery => ({ status: 0, body: String(error) }),
      );
      if (answer.status >= 200 && answer.status < 300) this.stats.delivered++;
      else this.stats.failed++;
      return answer;
    } finally {
      this.inFlight--;
      this.slotWaiters.shift()?.();
    }
  }

  /** Waits for one of `maxConcurrentRequests` slots. */
  private async slot(): Promise<void> {
    const max = this.options.maxConcurrentRequests ?? 10;
    while (!this.closed && this.inFlight >= max) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }
}

/** Fisher–Yates with the given randomness. */
function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
