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
export { freePort, parseStraceCalls, runCli, straceRuns, type CliResult, type TracedCall } from './test-support.js';
