// @tributary/connector-hubspot: a HubSpot CRM source, a reverse-ETL writer and a webhook
// receiver (a push source), on the official @hubspot/api-client.
export { hubspotSource, HUBSPOT_RATE_LIMIT, SEARCH_RATE_LIMIT, modifiedPropertyOf, scaledLimit } from './source/index.js';
export { hubspotWriter } from './writer/index.js';
export { sourceSpec, writerSpec } from './spec.js';
export { DailyLimitError } from './api/client.js';
export { hubspotWebhookSource, webhookSpec, WEBHOOK_STREAM } from './webhooks/source.js';
export { signatureV3, verifySignatureV3 } from './webhooks/signature.js';
