// @tributary/connector-salesforce: a Salesforce source and a reverse-ETL writer on jsforce,
// and the local Salesforce simulator they are tested (and benchmarked) against.
export { salesforceSource } from './source/index.js';
export { salesforceWriter } from './writer/index.js';
export { sourceSpec, writerSpec } from './config.js';
export { jsonSchemaOf, streamSchemaOf, type DescribedField, type DescribedObject } from './objects/fields.js';
export {
  startSalesforceSimulator,
  SALESFORCE_LIMITS,
  type SalesforceSimulator,
  type SalesforceSimulatorOptions,
  type ServedRequest,
  type SimulatorStats,
  type SimTransaction,
  type WriteOptions,
} from './simulator/server.js';
