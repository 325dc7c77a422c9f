// Public API of @tributary/conformance: the shared suites every connector runs with one line.
export { validateAirbyteMessage, validateAirbyteDefinition, airbyteProtocolSchemaPath } from './airbyte-protocol.js';
export { maxStartsWithin, unmarkedSecretFields, type ConfigInput, type RawConfig } from './harness.js';
export {
  sourceConformance,
  sourceCases,
  applicableSourceCases,
  type SourceConformanceOptions,
  type EmptyStreamsOption,
  type SourceCase,
  type SourceCaseName,
} from './source-conformance.js';
export {
  destinationConformance,
  destinationCases,
  applicableDestinationCases,
  defaultDestinationStream,
  defaultSecondDestinationStream,
  defaultDestinationStreams,
  type DestinationConformanceOptions,
  type DestinationConformanceStream,
  type DestinationCase,
  type DestinationCaseName,
} from './destination-conformance.js';
export { writerConformance, writerCases, type WriterConformanceOptions, type WriterCase, type WriterCaseName } from './writer-conformance.js';
export { runtimeCrashConformance, findCli, type RuntimeCrashOptions } from './runtime-crash.js';
export { freePort, parseStraceCalls, runCli, seedList, straceRuns, type CliResult, type TracedCall } from './test-support.js';
export { generateCdcHistory, planCdcDelivery, tableAsOf, modelRandom, cdcModelProperties, CDC_MODEL_TENANTS, CDC_MODEL_CUSTOMERS, CDC_MODEL_IDS, CDC_MODEL_TOAST_THRESHOLD, CDC_MODEL_FIRST_COMMIT_MS, type CdcHistory, type CdcHistoryOptions, type CdcModelRow, type CdcReplicaIdentity, type CdcTableVersion, type CdcEntityChange, type CdcSessionPlan, type ModelRandom } from './cdc-model.js';
