import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv6, type AddressInfo } from 'node:net';
import { TributaryError } from '@tributary/core';
import type { FeatureLookup } from './lookup.js';

export interface LookupServerOptions {
  lookup: FeatureLookup;
  /** Default 127.0.0.1: the endpoint has no authentication, so it listens on loopback unless told otherwise. */
  host?: string;
  /** Default 0: a free port chosen by the OS (read it from `port`/`url`). */
  port?: number;
  /** Most entity ids per POST (default 1 000). */
  maxEntities?: number;
}

export interface LookupServer {
  /** `http://<host>:<port>`, an IPv6 host in brackets: a URL clients can use as it is. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1 << 20;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'request body over 1 MiB');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
}

function stringList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.length > 0)) throw new HttpError(400, `${what} must be an array of non-empty strings`);
  return value as string[];
}

function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new HttpError(400, `${what} must be a non-empty string`);
  return value;
}

/** A path segment's text; a malformed percent-escape (`%E0`) is the client's error, not the server's. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `path segment ${JSON.stringify(segment)} is not valid percent-encoded UTF-8`);
  }
}

/**
 * The raw segments of the request's path, not yet percent-decoded. Not `URL#pathname`: URL
 * parsing resolves `.` and `..` segments, `%2E` and `%2E%2E` too, and reads `\` as `/`, so
 * the entity ids `.` and `..` (percent-encoded as a client must) never reached the lookup —
 * the path lost a segment and answered 404 "unknown path" — and `/x/%2E%2E/` named
 * another entity. Ids are data here, not a file system path.
 */
function pathSegments(target: string): string[] {
  // Origin-form (`/features/…`), as clients send; the absolute form of a proxy through URL.
  const path = target.startsWith('/') ? target : new URL(target, 'http://localhost').pathname;
  const query = path.indexOf('?');
  return (query === -1 ? path : path.slice(0, query)).split('/').filter(Boolean);
}

/**
 * A small HTTP front of a `FeatureLookup` (node:http, JSON):
 * - `GET /features/<tenant>/<entity type>/<entity id>[?groups=a,b]` → the entity's
 *   `EntityFeatures`; 404 with the same body (`found: false`) when nothing live is stored.
 * - `POST /features` with `{"tenant", "entity_type", "entity_ids": [...], "groups"?: [...]}`
 *   → `{"entities": [EntityFeatures, ...]}` in the order of `entity_ids`.
 * - `GET /health` → `{"ok": true}`.
 * Errors: 400 bad request, 404 unknown path, 405 wrong method, 413 body too large,
 * 503 Redis unavailable, 500 otherwise; the body is `{"error": message}`.
 */
export async function startLookupServer(options: LookupServerOptions): Promise<LookupServer> {
  const { lookup } = options;
  const maxEntities = options.maxEntities ?? 1_000;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = pathSegments(req.url ?? '/').map(decodeSegment);
    if (parts[0] === 'health' && parts.length === 1) return send(res, 200, { ok: true });
    if (parts[0] !== 'features') throw new HttpError(404, 'unknown path');
    if (parts.length === 4) {
      if (req.method !== 'GET') throw new HttpError(405, 'use GET');
      const groupsParam = url.searchParams.get('groups');
      const groups = groupsParam ? groupsParam.split(',').filter(Boolean) : undefined;
      const result = await lookup.get({ tenant: parts[1]!, entityType: parts[2]!, entityId: parts[3]!, ...(groups ? { groups } : {}) });
      return send(res, result.found ? 200 : 404, result);
    }
    if (parts.length === 1) {
      if (req.method !== 'POST') throw new HttpError(405, 'use POST');
      const body = await readJson(req);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object');
      const b = body as Record<string, unknown>;
      const entityIds = stringList(b.entity_ids, 'entity_ids');
      if (entityIds.length > maxEntities) throw new HttpError(400, `at most ${maxEntities} entity_ids per request`);
      const groups = b.groups === undefined ? undefined : stringList(b.groups, 'groups');
      const entities = await lookup.getMany({ tenant: nonEmpty(b.tenant, 'tenant'), entityType: nonEmpty(b.entity_type, 'entity_type'), entityIds, ...(groups ? { groups } : {}) });
      return send(res, 200, { entities });
    }
    throw new HttpError(404, 'unknown path: use /features/<tenant>/<entity type>/<entity id> or POST /features');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (error instanceof HttpError) return send(res, error.status, { error: error.message });
      if (TributaryError.is(error, 'transient')) return send(res, 503, { error: error.userMessage });
      send(res, 500, { error: TributaryError.is(error) ? error.userMessage : 'internal error' });
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    // An IPv6 address goes in brackets in a URL (`http://[::1]:8080`): bare, `http://::1:8080` is no URL.
    url: `http://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
