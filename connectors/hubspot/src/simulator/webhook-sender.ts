/**
 * HubSpot's side of webhooks, for tests and demos: signs deliveries with the v3 signature
 * and POSTs them as HubSpot does (a JSON array of events), retrying on anything but 2xx.
 */
import { request } from 'node:http';
import { signatureV3 } from '../webhooks/signature.js';

/** An event about one object (creation, deletion, property change, restore…). */
export interface WebhookEvent {
  eventId: number;
  subscriptionId: number;
  portalId: number;
  appId: number;
  occurredAt: number;
  subscriptionType: string;
  attemptNumber: number;
  objectId: number;
  propertyName?: string;
  propertyValue?: string;
  changeSource?: string;
}

/**
 * An `*.associationChange` event: it names no `objectId`, but the two ends of the link
 * (`fromObjectId`, `toObjectId`).
 */
export interface AssociationChangeEvent extends Omit<WebhookEvent, 'objectId' | 'propertyName' | 'propertyValue'> {
  associationType: string;
  fromObjectId: number;
  toObjectId: number;
  associationRemoved: boolean;
  isPrimaryAssociation: boolean;
}

/** A `*.merge` event: the object's fields plus the merge's. */
export interface MergeEvent extends WebhookEvent {
  primaryObjectId: number;
  mergedObjectIds: number[];
  newObjectId: number;
  numberOfPropertiesMoved: number;
}

/** Any event a delivery may hold. */
export type AnyWebhookEvent = WebhookEvent | AssociationChangeEvent | MergeEvent;

export interface Delivery {
  status: number;
  body: string;
}

export interface SignedRequest {
  body: string;
  headers: Record<string, string>;
}

/** Signs `events` for `targetUrl` with `clientSecret` at `timestamp` (ms, default now). */
export function signDelivery(clientSecret: string, targetUrl: string, events: readonly AnyWebhookEvent[], timestamp: number = Date.now()): SignedRequest {
  const body = JSON.stringify(events);
  const ts = String(timestamp);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-hubspot-request-timestamp': ts,
      'x-hubspot-signature-v3': signatureV3(clientSecret, 'POST', targetUrl, body, ts),
      'x-hubspot-signature-version': 'v3',
    },
  };
}

/**
 * POSTs a signed (or forged) request to `url`; resolves with the answer. With `timeoutMs`,
 * an answer not complete by then rejects (the request is aborted), as HubSpot gives up on a
 * delivery after its timeout.
 */
export function postDelivery(url: string, signed: SignedRequest, options: { timeoutMs?: number } = {}): Promise<Delivery> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...signed.headers, 'content-length': Buffer.byteLength(signed.body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: text });
      });
      res.on('error', reject);
    });
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(signed.body);
  });
}

let nextEventId = 1;

/** Events as HubSpot sends them for property changes of contacts. */
export function contactEvents(count: number, options: { portalId?: number; objectIdFrom?: number } = {}): WebhookEvent[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => ({
    eventId: nextEventId++,
    subscriptionId: 12345,
    portalId: options.portalId ?? 62515,
    appId: 54321,
    occurredAt: now,
    subscriptionType: 'contact.propertyChange',
    attemptNumber: 0,
    objectId: (options.objectIdFrom ?? 5000) + i,
    propertyName: 'lifecyclestage',
    propertyValue: 'customer',
    changeSource: 'CRM',
  }));
}

/**
 * Delivers like HubSpot: a new timestamp and signature per attempt, `attemptNumber`
 * counting up, retrying until a 2xx or `maxAttempts`. Resolves with every answer.
 * `signedUrl` is the target URL HubSpot signs when `url` (where it is sent) differs (a proxy).
 */
export async function deliverWithRetries(
  clientSecret: string,
  url: string,
  events: readonly AnyWebhookEvent[],
  options: { maxAttempts?: number; delayMs?: number; signedUrl?: string } = {},
): Promise<Delivery[]> {
  const answers: Delivery[] = [];
  const max = options.maxAttempts ?? 10;
  for (let attempt = 0; attempt < max; attempt++) {
    const body = events.map((e) => ({ ...e, attemptNumber: attempt }));
    let answer: Delivery;
    try {
      answer = await postDelivery(url, signDelivery(clientSecret, options.signedUrl ?? url, body));
    } catch (error) {
      answer = { status: 0, body: String(error) };
    }
    answers.push(answer);
    if (answer.status >= 200 && answer.status < 300) break;
    await new Promise((r) => setTimeout(r, options.delayMs ?? 100));
  }
  return answers;
}
