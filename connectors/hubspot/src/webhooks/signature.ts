import { createHmac, timingSafeEqual } from 'node:crypto';

/** How old (or how far in the future) a delivery's timestamp may be: HubSpot says 5 minutes. */
export const SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000;

/**
 * The URI as HubSpot puts it into a v3 signature: these percent-encoded characters decoded
 * (`%3A` → `:`, `%2F` → `/`, `%3F` → `?`, `%40` → `@`, `%21` `%24` `%27` `%28` `%29` `%2A`
 * `%2C` `%3B`), every other byte as sent. A target URL carrying e.g. a URL in its query is
 * signed decoded: verifying the encoded form would refuse every delivery, on every retry.
 */
export function signedUri(uri: string): string {
  return uri.replace(/%(?:3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)/gi, (escape) => decodeURIComponent(escape));
}

/**
 * HubSpot's v3 request signature: base64(HMAC-SHA256(client secret,
 * method + uri + body + timestamp)), the timestamp being `X-HubSpot-Request-Timestamp` (ms)
 * and the uri taken as HubSpot signs it (`signedUri`).
 */
export function signatureV3(clientSecret: string, method: string, uri: string, body: string, timestamp: string): string {
  return createHmac('sha256', clientSecret).update(`${method}${signedUri(uri)}${body}${timestamp}`, 'utf8').digest('base64');
}

export type SignatureVerdict = { ok: true } | { ok: false; reason: 'missing' | 'stale' | 'forged' };

/**
 * Verifies a delivery. `uri` is the full URL HubSpot called (the subscription's target URL
 * with the request's path and query). The timestamp must be within SIGNATURE_MAX_AGE_MS of
 * `now` either way; the comparison is constant-time.
 */
export function verifySignatureV3(
  clientSecret: string,
  request: { method: string; uri: string; body: string; signature: string | undefined; timestamp: string | undefined },
  now: number = Date.now(),
): SignatureVerdict {
  const { signature, timestamp } = request;
  if (!signature || !timestamp) return { ok: false, reason: 'missing' };
  const sentAt = Number(timestamp);
  if (!Number.isFinite(sentAt) || Math.abs(now - sentAt) > SIGNATURE_MAX_AGE_MS) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(signatureV3(clientSecret, request.method, request.uri, request.body, timestamp), 'base64');
  const given = Buffer.from(signature, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'forged' };
  return { ok: true };
}
