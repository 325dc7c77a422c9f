/**
 * Webhook events into the event lake (in-process, through runSync), checked with an
 * independent DuckDB read of the Parquet files. The lake validates each record against the
 * stream schema and quarantines a mismatch: an `*.associationChange` event names no
 * `objectId` (it names `fromObjectId` and `toObjectId`), so a schema requiring `objectId`
 * sent every association change HubSpot delivered to the quarantine.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { configureCatalog, createConnectorContext, parseConfig, runSync } from '@tributary/core';
import { freePort } from '@tributary/conformance';
import { lakeDestination, readLatestAsOf } from '@tributary/destination-lake';
import { hubspotWebhookSource, WEBHOOK_STREAM } from '../src/index.js';
import { deliverWithRetries, type AnyWebhookEvent } from '../src/simulator/index.js';
import { duck, memoryStateStore } from './lake-support.js';

const SECRET = 'client-secret-0123456789';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hubspot-lake-webhooks-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));


const common = { subscriptionId: 12345, portalId: 62515, appId: 54321, attemptNumber: 0, changeSource: 'CRM_UI' };
const at = Date.parse('2024-05-01T12:00:00.123Z');
const EVENTS: AnyWebhookEvent[] = [
  { ...common, eventId: 101, occurredAt: at, subscriptionType: 'contact.propertyChange', objectId: 5001, propertyName: 'lifecyclestage', propertyValue: 'customer' },
  { ...common, eventId: 102, occurredAt: at + 1, subscriptionType: 'contact.associationChange', associationType: 'CONTACT_TO_COMPANY', fromObjectId: 5001, toObjectId: 9001, associationRemoved: false, isPrimaryAssociation: true },
  { ...common, eventId: 103, occurredAt: at + 2, subscriptionType: 'contact.merge', objectId: 5003, primaryObjectId: 5001, mergedObjectIds: [5002], newObjectId: 5003, numberOfPropertiesMoved: 7 },
];

it('webhook events → lake: association changes and merges are stored, not quarantined, with typed columns', async () => {
  const port = await freePort();
  const sourceConfig = { client_secret: SECRET, public_url: `http://127.0.0.1:${port}/hooks`, port };
  const discovered = await hubspotWebhookSource.discover(createConnectorContext({}), parseConfig(hubspotWebhookSource.spec.connectionSpecification, sourceConfig));
  const catalog = configureCatalog(discovered, [{ name: WEBHOOK_STREAM, sync_mode: 'incremental' }], ['append_dedup']);
  // The README's mapping: one tenant per HubSpot account (portalId), event time occurredAt (the cursor).
  const lake = { path: join(dir, 'lake'), source_system: 'hubspot', streams: { [WEBHOOK_STREAM]: { tenant_id_field: 'portalId', customer_id_field: 'portalId' } } };
  const controller = new AbortController();
  let listening: () => void = () => {};
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const sync = runSync({
    connection: 'hubspot-webhooks-lake',
    source: hubspotWebhookSource,
    sourceConfig,
    destination: lakeDestination,
    destinationConfig: lake,
    catalog,
    stateStore: memoryStateStore(),
    batching: { maxAgeMs: 10, commitIntervalMs: 10 },
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'log' && event.message.includes('receiving HubSpot webhooks')) listening();
    },
  });
  await Promise.race([ready, sync.then((r) => Promise.reject(new Error(`sync ended early: ${r.outcome} ${r.error?.userMessage ?? ''}`)))]);
  // A 2xx is answered once the destination committed the delivery's events.
  const answers = await deliverWithRetries(SECRET, sourceConfig.public_url, EVENTS, { maxAttempts: 1 });
  controller.abort();
  const result = await sync;
  expect(answers.map((a) => a.status)).toEqual([200]);
  expect(result.outcome, result.error?.userMessage).toBe('interrupted');

  const quarantined = (await readdir(lake.path, { recursive: true })).filter((f) => f.startsWith('_quarantine') && f.endsWith('.jsonl'));
  const reasons = await Promise.all(quarantined.map((f) => readFile(join(lake.path, f), 'utf8')));
  expect(reasons.join('')).toBe('');
  expect(quarantined).toEqual([]);

  const files = `read_parquet('${join(lake.path, 'data', '**', '*.parquet')}', hive_partitioning = false, union_by_name = true)`;
  const columns = Object.fromEntries((await duck(`DESCRIBE SELECT * FROM ${files}`)).map((c) => [c.column_name, c.column_type]));
  expect(columns).toMatchObject({
    eventId: 'BIGINT',
    occurredAt: 'BIGINT',
    objectId: 'BIGINT',
    fromObjectId: 'BIGINT',
    toObjectId: 'BIGINT',
    associationRemoved: 'BOOLEAN',
    isPrimaryAssociation: 'BOOLEAN',
    newObjectId: 'BIGINT',
    numberOfPropertiesMoved: 'BIGINT',
  });
  const rows = await duck(
    `SELECT eventId::VARCHAR AS eventId, tenant_id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS event_time, subscriptionType, objectId::VARCHAR AS objectId,
            fromObjectId::VARCHAR AS fromObjectId, toObjectId::VARCHAR AS toObjectId, associationRemoved, mergedObjectIds::VARCHAR AS mergedObjectIds
     FROM ${files} ORDER BY eventId`,
  );
  expect(rows).toEqual([
    { eventId: '101', tenant_id: '62515', event_time: '2024-05-01T12:00:00.123Z', subscriptionType: 'contact.propertyChange', objectId: '5001', fromObjectId: null, toObjectId: null, associationRemoved: null, mergedObjectIds: null },
    { eventId: '102', tenant_id: '62515', event_time: '2024-05-01T12:00:00.124Z', subscriptionType: 'contact.associationChange', objectId: null, fromObjectId: '5001', toObjectId: '9001', associationRemoved: false, mergedObjectIds: null },
    { eventId: '103', tenant_id: '62515', event_time: '2024-05-01T12:00:00.125Z', subscriptionType: 'contact.merge', objectId: '5003', fromObjectId: null, toObjectId: null, associationRemoved: null, mergedObjectIds: '[5002]' },
  ]);

  // The lake's own reader gives back what the source emitted.
  const latest = await readLatestAsOf(lake, { stream: WEBHOOK_STREAM });
  const payloads = latest.map((r) => r.payload as Record<string, unknown>).sort((a, b) => Number(a.eventId) - Number(b.eventId));
  expect(payloads.map(({ eventKey: _key, ...event }) => event)).toEqual(EVENTS.map(({ attemptNumber: _attempt, ...event }) => expect.objectContaining(event)));
});
