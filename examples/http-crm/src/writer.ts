import {
  TributaryError,
  defineWriter,
  singleAttempt,
  type WritableObject,
  type WriteRequest,
  type WriteResult,
} from '@tributary/core';
import { crmClient, type ContactPage, type ContactProperties, type UpsertRequest, type UpsertResponse } from './api.js';

export const writerSpec = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'HTTP CRM writer',
  type: 'object',
  additionalProperties: false,
  required: ['base_url', 'api_token'],
  properties: {
    base_url: { type: 'string', format: 'uri', title: 'API base URL', description: 'For example https://api.example-crm.com', order: 0 },
    api_token: { type: 'string', minLength: 1, title: 'API token', description: 'Sent as a Bearer token.', airbyte_secret: true, order: 1 },
  },
} as const;

/** The API's batch limit: `POST /v1/contacts/batch_upsert` takes at most 50 inputs. */
const MAX_BATCH = 50;
/** Contacts per page when listing keys (the API's maximum page size). */
const LIST_PAGE_SIZE = 100;

const contactsObject: WritableObject = {
  name: 'contacts',
  fields: [
    { name: 'email', schema: { type: 'string', format: 'email' }, required: true, unique: true },
    { name: 'first_name', schema: { type: ['string', 'null'] } },
    { name: 'last_name', schema: { type: ['string', 'null'] } },
    { name: 'company', schema: { type: ['string', 'null'] } },
    { name: 'id', schema: { type: 'integer' }, writable: false },
    { name: 'updated_at', schema: { type: 'string', format: 'date-time' }, writable: false },
  ],
  idProperties: ['email'],
  modes: ['upsert'],
};


function assertContacts(request: WriteRequest): void {
  if (request.object !== 'contacts' || request.idProperty !== 'email' || request.mode !== 'upsert') {
    throw new TributaryError('config', {
      userMessage: `The HTTP CRM writer upserts contacts by email; it cannot ${request.mode} ${request.object} by ${request.idProperty}`,
    });
  }
}

/** The record's fields without the key (the API takes the email beside the properties). */
function propertiesOf(fields: Record<string, unknown>): ContactProperties {
  return Object.fromEntries(Object.entries(fields).filter(([name]) => name !== 'email')) as ContactProperties;
}

/**
 * A reverse-ETL writer for the same API: idempotent upserts of contacts by email, 50 per
 * request, one result per record.
 */
export const httpCrmWriter = defineWriter({
  name: 'http-crm',
  version: '0.0.0',
  spec: { connectionSpecification: writerSpec },
  // The API's per-token budget; two batches in flight keep the pipe full while one waits.
  rateLimit: { requests: 20, perMs: 1000, concurrency: 2 },
  retry: { maxAttempts: 6, baseDelayMs: 250, maxDelayMs: 10_000 },
  maxBatchSize: MAX_BATCH,

  async check(ctx, config) {
    const client = crmClient(ctx, config, { maxAttempts: 2 });
    try {
      await client.request({ method: 'GET', path: '/v1/contacts', query: { limit: 1 } });
    } catch (error) {
      if (TributaryError.is(error, 'auth')) throw error;
      const reason = TributaryError.is(error) ? error.userMessage : String(error);
      throw new TributaryError('config', { userMessage: `Cannot reach the CRM API at base_url: ${reason}`, cause: error });
    } finally {
      await client.close();
    }
  },

  async discover() {
    return [contactsObject];
  },

  async open(ctx, config) {
    const client = crmClient(singleAttempt(ctx), config);
    return {
      async write(request): Promise<WriteResult[]> {
        assertContacts(request);
        // The idempotency key travels with each input: a replay of a change the API already
        // applied (a retried request, a sync resumed from an older checkpoint) answers
        // `unchanged` even if the row changed since, instead of applying the old values again.
        const body: UpsertRequest = {
          inputs: request.records.map((r) => ({ email: r.key, properties: propertiesOf(r.fields), idempotency_key: r.idempotencyKey })),
          dry_run: request.dryRun,
        };
        // A whole-request failure throws (auth, rate_limited, transient, skippable): the runtime
        // retries what is retryable and fails the batch's records otherwise. A POST, but
        // `idempotent`: every input carries its idempotency key, so a repeat of a batch the
        // API already applied (its answer lost with a dropped connection) answers `unchanged`
        // instead of applying anything twice. Unmarked, the client would refuse to let such a
        // batch be retried and fail it as possibly applied.
        const response = await client.request<UpsertResponse>({ method: 'POST', path: '/v1/contacts/batch_upsert', body, idempotent: true });
        const results = response.body?.results;
        if (!Array.isArray(results) || results.length !== request.records.length) {
          throw new TributaryError('fatal', { userMessage: 'The CRM API answered batch_upsert with a result count that does not match the request' });
        }
        // Results come back in input order: one per record, matched by its idempotency key.
        return request.records.map((record, index): WriteResult => {
          const result = results[index]!;
          const base = { idempotencyKey: record.idempotencyKey, key: record.key, ...(result.id !== undefined ? { id: String(result.id) } : {}) };
          if (result.status === 'error') {
            return { ...base, status: 'failed', reason: result.error?.message ?? 'refused by the CRM API', retryable: false };
          }
          return { ...base, status: result.status };
        });
      },
      /**
       * Every contact's email, paged from `GET /v1/contacts` in (updated_at, id) order: reads
       * back what writes stored (the conformance suite checks applied records against it).
       * The runtime calls this directly, not through its write pipeline, so it uses a client
       * with the context's retries and rate limit rather than `write`'s single attempts.
       */
      async *listKeys(object, idProperty) {
        if (object !== 'contacts' || idProperty !== 'email') {
          throw new TributaryError('config', { userMessage: `The HTTP CRM writer lists contacts by email, not ${object} by ${idProperty}` });
        }
        const reader = crmClient(ctx, config);
        try {
          let query: Record<string, string | number> = { limit: LIST_PAGE_SIZE };
          for (;;) {
            const page = (await reader.request<ContactPage>({ method: 'GET', path: '/v1/contacts', query })).body;
            for (const contact of page?.data ?? []) yield contact.email;
            if (!page?.next) return;
            query = { page_token: page.next, limit: LIST_PAGE_SIZE };
          }
        } finally {
          await reader.close();
        }
      },
      close: () => client.close(),
    };
  },
});
