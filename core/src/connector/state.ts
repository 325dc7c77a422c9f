import type { AirbyteStateMessage, StateBlob, StreamDescriptor } from '../protocol/messages.js';
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

/**
 * A stream key read back as a descriptor, without the catalog: the part before the first dot
 * is taken for the namespace. Ambiguous for a stream whose name holds a dot (`v1.items`
 * without a namespace reads as `items` in `v1`); the keys stay the same either way, so a
 * state round-trips, but messages for others to read name streams with `describeStreams`.
 */
function splitKey(key: string): StreamDescriptor {
  const dot = key.indexOf('.');
  return dot < 0 ? { name: key } : { namespace: key.slice(0, dot), name: key.slice(dot + 1) };
}

/**
 * The descriptor of each stream key, as the catalog names the stream (keys of other streams
 * are split at their first dot). For `toStateMessages` when the messages leave Tributary.
 */
export function describeStreams(streams: Iterable<StreamDescriptor>): (key: string) => StreamDescriptor {
  const byKey = new Map<string, StreamDescriptor>();
  for (const s of streams) byKey.set(streamKey(s.name, s.namespace), s.namespace ? { name: s.name, namespace: s.namespace } : { name: s.name });
  return (key) => byKey.get(key) ?? splitKey(key);
}

/**
 * Airbyte STATE messages for a state (one GLOBAL, or one STREAM per stream). `describe`
 * names the stream of each key; pass `describeStreams(catalog streams)` for messages that
 * others match with their streams, or a stream whose name holds a dot is misnamed.
 */
export function toStateMessages(state: SyncState, describe: (key: string) => StreamDescriptor = splitKey): AirbyteStateMessage[] {
  const streamStates = Object.entries(state.streams).map(([key, blob]) => ({
    stream_descriptor: describe(key),
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
