// The HubSpot simulator: a local HTTP server for tests, demos and benchmarks.
export { startHubspotSimulator, HUBSPOT_LIMITS, type HubspotSimulator, type SimulatorLimits, type SimulatorOptions, type ServedRequest, type SimulatorStats } from './server.js';
export { modificationProperty, type StoredObject, type PropertyDefinition } from './store.js';
export { signDelivery, postDelivery, contactEvents, deliverWithRetries, type WebhookEvent, type AssociationChangeEvent, type MergeEvent, type AnyWebhookEvent, type Delivery, type SignedRequest } from './webhook-sender.js';
export { webhookObjectName, type WebhookOptions, type WebhookSubscription, type SimulatorWebhooks, type WebhookStats, type ChangeSource } from './webhook-emitter.js';
export { seedHubspot } from './seed.js';
