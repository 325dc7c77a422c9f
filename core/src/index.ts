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
export * from './state/file-store.js';
export * from './state/postgres-store.js';
export * from './state/open-store.js';
export * from './runtime/pipeline.js';
export * from './runtime/sync.js';
export { main as runCli } from './cli/main.js';
export {
  listInstalledCommands,
  listInstalledConnectors,
  loadCommand,
  loadConnector,
  type ConnectorKind,
  type InstalledCommand,
  type InstalledConnector,
  type PluginCommand,
} from './cli/connector-registry.js';
export { readSyncFile, configureCatalog, type SyncFile, type StreamSelection } from './cli/sync-file.js';
export { planSync, type SyncPlan } from './cli/sync-plan.js';
export * from './resilience/rate-limiter.js';
export * from './resilience/retry.js';
export * from './resilience/circuit-breaker.js';
export * from './resilience/http.js';
export * from './connector/create-context.js';
export * from './runtime/reverse-etl.js';
export { createDryRunLedger, type DryRunLedger } from './runtime/dry-run-ledger.js';
export * from './protocol/wire.js';
export * from './concurrency/keyed-queue.js';
export * from './fs/atomic-file.js';
export * from './runtime/writer-destination.js';
export * from './docs/spec-table.js';
export { seededRandom } from './util/seeded-random.js';
export { setOwnField } from './util/own-field.js';
export { formatIsoMs, nanosBelowMillisecond, parseDateTimeMs } from './util/iso-time.js';
export { hasLoneSurrogate, replaceLoneSurrogates } from './util/unicode.js';
export { stringifyJson } from './util/json-text.js';
export { CANONICAL_DECIMAL_PATTERN, canonicalDecimal, exactNumber, fitsDouble } from './util/decimal-text.js';
export { marksDeleted } from './util/deletion-mark.js';
export { movedFromKey } from './util/key-change.js';
export { createMetricsRegistry, type Metrics, type MetricsRegistry, type MetricSample } from './metrics/metrics.js';
export { singleAttempt } from './connector/single-attempt.js';
