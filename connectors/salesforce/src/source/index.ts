import { defineSource, streamStateOf } from '@tributary/core';
import { checkSalesforce, openSalesforce, type SalesforceClient } from '../client/connection.js';
import { sourceSpec } from '../config.js';
import { describeObject, listObjects, streamOf } from '../objects/describe.js';
import { readObject } from './read.js';

/**
 * The Salesforce source: one stream per queryable, replicateable object, read through the
 * REST API (query/queryAll, 2,000 rows per page) or Bulk API 2.0 for large reads, incremental
 * on (SystemModstamp, Id) with a look-back window, deletions included, within a share of the
 * org's daily API budget. See read.ts for the guarantees.
 */
export const salesforceSource = defineSource({
  name: 'salesforce',
  version: '0.1.0',
  spec: { connectionSpecification: sourceSpec, supportsIncremental: true, documentationUrl: 'https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/' },
  // Salesforce does not cap requests per second (the daily budget is what binds, see
  // max_api_usage); a few concurrent requests keep a sync from starving the org's other integrations.
  rateLimit: { requests: 100, perMs: 1000, concurrency: 10 },
  retry: { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000 },

  check: checkSalesforce,

  async discover(ctx, config) {
    const client = await openSalesforce(ctx, config);
    const names = await listObjects(client, config.streams);
    const streams = [];
    for (const name of names) streams.push(streamOf(await describeObject(client, name)));
    return { streams };
  },

  async *read(ctx, config, catalog, state) {
    let client: SalesforceClient;
    try {
      client = await openSalesforce(ctx, config);
    } catch (error) {
      if (ctx.signal.aborted) return;
      throw error;
    }
    const reader = { ctx, client, settings: config };
    for (const configured of catalog.streams) {
      const name = configured.stream.name;
      try {
        yield* readObject(reader, name, configured.sync_mode, streamStateOf(state, name));
      } catch (error) {
        // The sync is stopping (Ctrl-C, SIGTERM) and cancelled a request or a wait: return,
        // the checkpoints already yielded cover every record yielded before them.
        if (ctx.signal.aborted) return;
        throw error;
      }
    }
  },
});
