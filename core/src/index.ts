// Public API of @tributary/core. Connector packages import only from here.
export * from './protocol/messages.js';
export * from './errors.js';
export * from './config/schema.js';
export * from './config/secrets.js';
export * from './logging/logger.js';
export * from './resilience/policy.js';
export * from './resilience/types.js';
export * from './connector/context.js';
export * from './connector/state.js';
export * from './connector/source.js';
export * from './connector/destination.js';
export * from './connector/writer.js';
export * from './state/store.js';
