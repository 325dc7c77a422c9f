import {
  TributaryError,
  checkpoint,
  defineSource,
  recordPage,
  streamStateOf,
  streamStatus,
  type AirbyteStream,
  type ConnectorContext,
  type HttpClient,
  type HttpQueryValue,
  type SourceMessage,
  type StateBlob,
  type SyncMode,
} from '@tributary/core';
import { crmClient, type Contact, type ContactPage } from './api.js';

/** The Airbyte `connectionSpecification`: one JSON Schema; the config type is inferred from it. */
export const sourceSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'HTTP CRM source',
  type: 'object',
  additionalProperties: false,
  required: ['base_url', 'api_token'],
  properties: {
    base_url: { type: 'string', format: 'uri', title: 'API base URL', description: 'For example https://api.example-crm.com', order: 0 },
    api_token: { type: 'string', minLength: 1, title: 'API token', description: 'Sent as a Bearer token.', airbyte_secret: true, order: 1 },
    start_date: {
      type: 'string',
      format: 'date-time',
      title: 'Start date',
      description: 'The first sync reads contacts updated at or after this instant (default: all).',
      order: 2,
    },
    page_size: { type: 'integer', minimum: 1, maximum: 100, default: 100, title: 'Page size', description: 'Contacts per request.', order: 3 },
  },
} as const;

const CONTACTS = 'contacts';

const contactsStream: AirbyteStream = {
  name: CONTACTS,
  json_schema: {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    required: ['id', 'email', 'updated_at'],
    properties: {
      id: { type: 'integer' },
      email: { type: 'string' },
      first_name: { type: ['string', 'null'] },
      last_name: { type: ['string', 'null'] },
      company: { type: ['string', 'null'] },
      updated_at: { type: 'string', format: 'date-time' },
    },
  },
  supported_sync_modes: ['full_refresh', 'incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['updated_at'],
  source_defined_primary_key: [['id']],
  is_resumable: true,
};

/**
 * A position in the API's order, (updated_at, id): the last record a checkpoint covers.
 * Without `id` it stands before every record of that `updated_at`.
 */
interface Position {
  cursor: string;
  id?: number;
}

/**
 * The saved position to resume from. A state records which sync mode wrote it: a full
 * refresh tags its checkpoints `full_refresh: true`, an incremental read does not. Each mode
 * resumes only from its own states and starts over, with a warning, from the other's:
 * - a full refresh from an incremental state (the stream was switched to full refresh)
 *   would skip every record before that cursor;
 * - an incremental read from an interrupted refresh's checkpoint would take that position
 *   for a cursor and skip every record before it, although the refresh never completed
 *   (an `overwrite` destination never published what it staged).
 */
function positionOf(ctx: ConnectorContext, blob: StateBlob | undefined, syncMode: SyncMode): Position | undefined {
  if (blob === undefined || blob.cursor === undefined) return undefined;
  if (blob.full_refresh !== undefined && blob.full_refresh !== true) throw invalidState();
  const writtenBy: SyncMode = blob.full_refresh === true ? 'full_refresh' : 'incremental';
  if (writtenBy !== syncMode) {
    ctx.logger.warn(
      writtenBy === 'full_refresh'
        ? `Stream "${CONTACTS}": the saved state is the position of a full refresh that did not complete, not an incremental cursor; this incremental read starts over from the beginning`
        : `Stream "${CONTACTS}": the saved state was written by an incremental read; this full refresh starts over from the beginning`,
      { stream: CONTACTS, stateWrittenBy: writtenBy, syncMode },
    );
  }
  if (syncMode === 'full_refresh' && blob.full_refresh !== true) return undefined;
  if (syncMode === 'incremental' && blob.full_refresh === true) return undefined;
  const { cursor, id } = blob;
  if (typeof cursor !== 'string' || !Number.isFinite(Date.parse(cursor)) || (id !== undefined && !Number.isInteger(id))) throw invalidState();
  return id === undefined ? { cursor } : { cursor, id: id as number };
}

function invalidState(): TributaryError {
  return new TributaryError('config', {
    userMessage: `The saved state of stream "${CONTACTS}" was not written by this source; reset the stream's state`,
    stream: { name: CONTACTS },
  });
}

function stateOf(position: Position | undefined, syncMode: SyncMode): StateBlob {
  if (position === undefined) return {};
  return syncMode === 'full_refresh' ? { ...position, full_refresh: true } : { ...position };
}

/** (updated_at, id) order, the order the API promises. */
function isAfter(contact: Contact, position: Position | undefined): boolean {
  if (position === undefined) return true;
  const delta = Date.parse(contact.updated_at) - Date.parse(position.cursor);
  return delta > 0 || (delta === 0 && (position.id === undefined || contact.id > position.id));
}

/** Rejects a body that is not a page: better to stop than to checkpoint past unseen records. */
function pageOf(body: unknown): ContactPage {
  const page = body as Partial<ContactPage> | undefined;
  const valid =
    Array.isArray(page?.data) &&
    page.data.every((c) => typeof c?.id === 'number' && typeof c.updated_at === 'string') &&
    (typeof page.next === 'string' || page.next === null);
  if (!valid) throw new TributaryError('fatal', { userMessage: 'The CRM API answered GET /v1/contacts with an unexpected body' });
  return page as ContactPage;
}

/**
 * One stream, page by page. The first request filters by the saved position; the following
 * ones pass the API's opaque `next` token. After every page comes a checkpoint covering it:
 * the (updated_at, id) of its last record — derived from the records, never the token,
 * which only the API understands and which may expire. Resuming from that position asks
 * for `updated_since=cursor&after_id=id`, i.e. strictly after it in (updated_at, id) order,
 * so contacts sharing the cursor's `updated_at` on both sides of a page boundary are read
 * exactly once.
 */
async function* readContacts(
  ctx: ConnectorContext,
  client: HttpClient,
  config: { start_date?: string; page_size: number },
  syncMode: SyncMode,
  saved: StateBlob | undefined,
): AsyncGenerator<SourceMessage> {
  let position = positionOf(ctx, saved, syncMode);
  const limit = config.page_size;
  let query: Record<string, HttpQueryValue> = position
    ? { updated_since: position.cursor, after_id: position.id, limit }
    : { updated_since: config.start_date, limit };
  let checkpointed = false;
  const tokens = new Set<string>();
  for (let first = true; ; first = false) {
    let response;
    try {
      // Rate limit, retries and Retry-After are the client's job: no loop of our own here.
      response = await client.request<ContactPage>({ method: 'GET', path: '/v1/contacts', query });
    } catch (error) {
      // The sync is stopping (Ctrl-C, SIGTERM) and cancelled this request or wait. Return,
      // don't throw: the checkpoints already yielded cover every record yielded before them.
      if (ctx.signal.aborted) return;
      throw error;
    }
    const { data, next } = pageOf(response.body);
    if (first) {
      const total = Number(response.headers['x-total-count']);
      if (Number.isSafeInteger(total)) yield { kind: 'estimate', stream: CONTACTS, rows: total };
      yield streamStatus(CONTACTS, 'RUNNING');
    }
    if (data.length > 0) {
      // A checkpoint is only as good as the order it relies on: refuse rather than skip records.
      for (const contact of data) {
        if (!isAfter(contact, position)) {
          throw new TributaryError('fatal', { userMessage: 'The CRM API returned contacts out of (updated_at, id) order' });
        }
        position = { cursor: contact.updated_at, id: contact.id };
      }
      yield recordPage(CONTACTS, data);
      yield checkpoint(CONTACTS, stateOf(position, syncMode));
      checkpointed = true;
    }
    if (next === null) break;
    query = { page_token: next, limit };
    // A token handed out twice in one read (an empty page pointing back at itself, a cycle)
    // would page forever: the order check above cannot see it when those pages are empty.
    if (tokens.has(next)) {
      throw new TributaryError('fatal', { userMessage: 'The CRM API returned a page token it had already returned in this read (a paging loop)' });
    }
    tokens.add(next);
  }
  // Every stream checkpoints, even when nothing was new: the next sync needs a start.
  if (!checkpointed) yield checkpoint(CONTACTS, stateOf(position, syncMode));
}

/**
 * A source for the contacts of a REST CRM API (see api.ts): paged, incremental on
 * (updated_at, id), rate limited to the API's documented budget.
 */
export const httpCrmSource = defineSource({
  name: 'http-crm',
  version: '0.0.0',
  spec: { connectionSpecification: sourceSpec, supportsIncremental: true },
  // The API's documented budget: 20 requests per second per token. The runtime shares one
  // limiter between all streams of this source, and createHttpClient lowers it further when
  // the API's X-RateLimit-* headers say so.
  rateLimit: { requests: 20, perMs: 1000 },
  // Enough attempts to ride out a short 429 storm; Retry-After is honoured on top of this.
  retry: { maxAttempts: 6, baseDelayMs: 250, maxDelayMs: 10_000 },

  async check(ctx, config) {
    // Two attempts: check answers quickly. 401/403 arrive as `auth` errors from the client.
    const client = crmClient(ctx, config, { maxAttempts: 2 });
    try {
      await client.request({ method: 'GET', path: '/v1/contacts', query: { limit: 1 } });
    } catch (error) {
      if (TributaryError.is(error, 'auth')) throw error;
      const reason = TributaryError.is(error) ? error.userMessage : String(error);
      throw new TributaryError('config', { userMessage: `Cannot read contacts from base_url: ${reason}`, cause: error });
    } finally {
      await client.close();
    }
  },

  async discover() {
    return { streams: [contactsStream] };
  },

  async *read(ctx, config, catalog, state) {
    const client = crmClient(ctx, config);
    try {
      for (const configured of catalog.streams) {
        if (configured.stream.name !== CONTACTS) {
          throw new TributaryError('config', { userMessage: `The HTTP CRM source has no stream "${configured.stream.name}" (it has: ${CONTACTS})` });
        }
        yield* readContacts(ctx, client, config, configured.sync_mode, streamStateOf(state, CONTACTS));
      }
    } finally {
      // Runs also when the runtime stops iterating early (it calls return()).
      await client.close();
    }
  },
});
