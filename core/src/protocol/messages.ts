/**
 * Airbyte protocol v0 wire types (the subset Tributary speaks).
 *
 * These mirror `airbyte_protocol_v0.yaml` field for field, which is why they use the
 * protocol's own snake_case / camelCase mix. Everything inside Tributary that is not a
 * protocol boundary uses the camelCase types from `connector/` instead.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };
/** A record's payload. Values are plain JSON; sources must not emit class instances. */
export type RecordData = Record<string, unknown>;
/** Opaque checkpoint data owned by a source. Must be a JSON object. */
export type StateBlob = Record<string, unknown>;

export type SyncMode = 'full_refresh' | 'incremental';
export type DestinationSyncMode = 'append' | 'overwrite' | 'append_dedup' | 'update' | 'soft_delete';

export interface StreamDescriptor {
  name: string;
  namespace?: string;
}

export interface AirbyteRecordMessageMetaChange {
  field: string;
  change: 'NULLED' | 'TRUNCATED';
  reason:
    | 'SOURCE_RECORD_SIZE_LIMITATION'
    | 'DESTINATION_RECORD_SIZE_LIMITATION'
    | 'PLATFORM_RECORD_SIZE_LIMITATION'
    | 'SOURCE_FIELD_SIZE_LIMITATION'
    | 'DESTINATION_FIELD_SIZE_LIMITATION'
    | 'PLATFORM_FIELD_SIZE_LIMITATION'
    | 'SOURCE_SERIALIZATION_ERROR'
    | 'DESTINATION_SERIALIZATION_ERROR'
    | 'PLATFORM_SERIALIZATION_ERROR'
    | 'SOURCE_RETRIEVAL_ERROR'
    | 'DESTINATION_TYPECAST_ERROR';
}

export interface AirbyteRecordMessage {
  stream: string;
  namespace?: string;
  data: RecordData;
  /** Epoch milliseconds, integer. */
  emitted_at: number;
  meta?: { changes?: AirbyteRecordMessageMetaChange[] };
}

export interface AirbyteStateStats {
  recordCount?: number;
  rejectedRecordCount?: number;
}

export interface AirbyteStreamState {
  stream_descriptor: StreamDescriptor;
  stream_state?: StateBlob;
}

export interface AirbyteGlobalState {
  shared_state?: StateBlob;
  stream_states: AirbyteStreamState[];
}

export type AirbyteStateMessage =
  | {
      type: 'STREAM';
      stream: AirbyteStreamState;
      sourceStats?: AirbyteStateStats;
      destinationStats?: AirbyteStateStats;
    }
  | {
      type: 'GLOBAL';
      global: AirbyteGlobalState;
      sourceStats?: AirbyteStateStats;
      destinationStats?: AirbyteStateStats;
    };

export type LogLevel = 'FATAL' | 'ERROR' | 'WARN' | 'INFO' | 'DEBUG' | 'TRACE';

export interface AirbyteLogMessage {
  level: LogLevel;
  message: string;
  stack_trace?: string;
}

export type FailureType = 'system_error' | 'config_error' | 'transient_error';

export interface AirbyteErrorTraceMessage {
  message: string;
  internal_message?: string;
  stack_trace?: string;
  failure_type?: FailureType;
  stream_descriptor?: StreamDescriptor;
}

export interface AirbyteEstimateTraceMessage {
  name: string;
  type: 'STREAM' | 'SYNC';
  namespace?: string;
  row_estimate?: number;
  byte_estimate?: number;
}

export type AirbyteStreamStatus = 'STARTED' | 'RUNNING' | 'COMPLETE' | 'INCOMPLETE';

export interface AirbyteStreamStatusReason {
  type: 'RATE_LIMITED';
  rate_limited?: { quota_reset?: number };
}

export interface AirbyteStreamStatusTraceMessage {
  stream_descriptor: StreamDescriptor;
  status: AirbyteStreamStatus;
  reasons?: AirbyteStreamStatusReason[];
}

export type AirbyteTraceMessage =
  | { type: 'ERROR'; emitted_at: number; error: AirbyteErrorTraceMessage }
  | { type: 'ESTIMATE'; emitted_at: number; estimate: AirbyteEstimateTraceMessage }
  | { type: 'STREAM_STATUS'; emitted_at: number; stream_status: AirbyteStreamStatusTraceMessage };

export interface AirbyteStream {
  name: string;
  namespace?: string;
  json_schema: JsonSchemaObject;
  supported_sync_modes: SyncMode[];
  source_defined_cursor?: boolean;
  default_cursor_field?: string[];
  source_defined_primary_key?: string[][];
  is_resumable?: boolean;
}

export interface AirbyteCatalog {
  streams: AirbyteStream[];
}

export interface ConfiguredAirbyteStream {
  stream: AirbyteStream;
  sync_mode: SyncMode;
  destination_sync_mode: DestinationSyncMode;
  cursor_field?: string[];
  primary_key?: string[][];
  generation_id?: number;
  minimum_generation_id?: number;
  sync_id?: number;
}

export interface ConfiguredAirbyteCatalog {
  streams: ConfiguredAirbyteStream[];
}

/** A JSON Schema document as carried by the protocol (draft-07). */
export type JsonSchemaObject = Record<string, unknown>;

export interface ConnectorSpecification {
  documentationUrl?: string;
  changelogUrl?: string;
  connectionSpecification: JsonSchemaObject;
  supportsIncremental?: boolean;
  supported_destination_sync_modes?: DestinationSyncMode[];
  protocol_version?: string;
}

export interface AirbyteConnectionStatus {
  status: 'SUCCEEDED' | 'FAILED';
  message?: string;
}

export type AirbyteMessage =
  | { type: 'RECORD'; record: AirbyteRecordMessage }
  | { type: 'STATE'; state: AirbyteStateMessage }
  | { type: 'LOG'; log: AirbyteLogMessage }
  | { type: 'TRACE'; trace: AirbyteTraceMessage }
  | { type: 'SPEC'; spec: ConnectorSpecification }
  | { type: 'CATALOG'; catalog: AirbyteCatalog }
  | { type: 'CONNECTION_STATUS'; connectionStatus: AirbyteConnectionStatus };

/** Identifies a stream inside Tributary: `name`, or `namespace.name` when namespaced. */
export function streamKey(name: string, namespace?: string): string {
  return namespace ? `${namespace}.${name}` : name;
}
