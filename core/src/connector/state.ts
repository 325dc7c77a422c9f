import type { AirbyteStateMessage, StateBlob } from '../protocol/messages.js';
import { streamKey } from '../protocol/messages.js';

/**
 * The committed position of a connection. `streams` is keyed by `streamKey(name, namespace)`.
 * When `shared` is set the state is GLOBAL (CDC); otherwise it is per STREAM.
 */
export interface SyncState {
  streams: Record<string, StateBlob>;
  shared?: StateBlob;
}

export function emptyState(): SyncState {
  return { streams: {} };
}

export function streamStateOf(state: SyncState, name: string, namespace?: string): StateBlob | undefined {
  return state.streams[streamKey(name, namespace)];
}

function splitKey(key: string): { name: string; namespace?: string } {
  const dot = key.indexOf('.');
  return dot < 0 ? { name: key } : { namespace: key.slice(0, dot), name: key.slice(dot + 1) };
}

/** Airbyte STATE messages for a state (one GLOBAL, or one STREAM per stream). */
export function toStateMessages(state: SyncState): AirbyteStateMessage[] {
  const streamStates = Object.entries(state.streams).map(([key, blob]) => ({
    stream_descriptor: splitKey(key),
    stream_state: blob,
  }));
  if (state.shared !== undefined) {
    return [{ type: 'GLOBAL', global: { shared_state: state.shared, stream_states: streamStates } }];
  }
  return streamStates.map((s) => ({ type: 'STREAM' as const, stream: s }));
}

/** Folds Airbyte STATE messages (later ones win) into a SyncState. LEGACY state is refused. */
export function fromStateMessages(messages: readonly AirbyteStateMessage[]): SyncState {
  const state = emptyState();
  for (const message of messages) {
    if (message.type === 'GLOBAL') {
      if (message.global.shared_state !== undefined) state.shared = message.global.shared_state;
      for (const s of message.global.stream_states) {
        state.streams[streamKey(s.stream_descriptor.name, s.stream_descriptor.namespace)] = s.stream_state ?? {};
      }
    } else if (message.type === 'STREAM') {
      const d = message.stream.stream_descriptor;
      if (message.stream.stream_state === undefined) delete state.streams[streamKey(d.name, d.namespace)];
      else state.streams[streamKey(d.name, d.namespace)] = message.stream.stream_state;
    } else {
      throw new Error(`unsupported state type ${(message as { type?: unknown }).type as string}`);
    }
  }
  return state;
}
