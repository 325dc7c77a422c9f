import type { FlatSourceMessage } from '../connector/source.js';
import type { AirbyteMessage, AirbyteStateMessage, StreamDescriptor } from './messages.js';

function descriptor(stream: string, namespace: string | undefined): StreamDescriptor {
  return namespace === undefined ? { name: stream } : { name: stream, namespace };
}

/**
 * An estimate as the protocol carries it: ESTIMATE's `row_estimate` and `byte_estimate` are
 * integers. A source's estimate is a hint nobody checks (extrapolated, possibly fractional,
 * `NaN` from a division by zero), so it is rounded, and left out when it is no count at all,
 * rather than printed as a message that does not validate (`NaN` would even print `null`).
 */
export function estimateCount(value: number | undefined): number | undefined {
  if (value === undefined || !Number.isFinite(value) || value < 0) return undefined;
  const rounded = Math.round(value);
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}

/**
 * The Airbyte message a source message becomes on the wire (what `tributary read` prints).
 * Checkpoints become STATE (STREAM or GLOBAL), statuses and estimates become TRACE.
 */
export function toAirbyteMessage(message: FlatSourceMessage, emittedAt: number): AirbyteMessage {
  switch (message.kind) {
    case 'record':
      return {
        type: 'RECORD',
        record: {
          stream: message.stream,
          ...(message.namespace !== undefined ? { namespace: message.namespace } : {}),
          data: message.data,
          emitted_at: emittedAt,
          ...(message.changes && message.changes.length > 0 ? { meta: { changes: message.changes } } : {}),
        },
      };
    case 'checkpoint': {
      const state: AirbyteStateMessage = {
        type: 'STREAM',
        stream: { stream_descriptor: descriptor(message.stream, message.namespace), stream_state: message.state },
      };
      return { type: 'STATE', state };
    }
    case 'global-checkpoint':
      return {
        type: 'STATE',
        state: {
          type: 'GLOBAL',
          global: {
            shared_state: message.shared,
            stream_states: message.streams.map((s) => ({ stream_descriptor: descriptor(s.stream, s.namespace), stream_state: s.state })),
          },
        },
      };
    case 'status':
      return {
        type: 'TRACE',
        trace: { type: 'STREAM_STATUS', emitted_at: emittedAt, stream_status: { stream_descriptor: descriptor(message.stream, message.namespace), status: message.status } },
      };
    case 'estimate': {
      const rows = estimateCount(message.rows);
      const bytes = estimateCount(message.bytes);
      return {
        type: 'TRACE',
        trace: {
          type: 'ESTIMATE',
          emitted_at: emittedAt,
          estimate: {
            name: message.stream,
            type: 'STREAM',
            ...(message.namespace !== undefined ? { namespace: message.namespace } : {}),
            ...(rows !== undefined ? { row_estimate: rows } : {}),
            ...(bytes !== undefined ? { byte_estimate: bytes } : {}),
          },
        },
      };
    }
  }
}
