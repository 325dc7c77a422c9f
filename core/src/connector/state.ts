import type { AirbyteStateMessage, StateBlob, StreamDescriptor } from '../protocol/messages.js';
import { streamKey } from '../protocol/messages.js';

/**
 * The committed position of a connection. `streams` is keyed by `streamKey(name, namespace)`.
 * When `shared` is set the state is GLOBAL (CDC); otherwise it is per STREAM.
 */
export interface SyncState {
  streams: Record<string, StateBlob>;
  shared?: StateBlob;
  /**
   * The StreamDescriptor of each key of `streams` that its key alone does not give, i.e. that
   * splitting the key at its first dot would misname (a stream `v1.items` without a
   * namespace, a namespace holding a dot). Set by the runtime from the catalog and by
   * `fromStateMessages` from the messages it reads, so that STATE messages written for others
   * (the stored state, `tributary state show`) name every stream as the catalog does. Absent
   * when no key needs it.
   */
  descriptors?: Record<string, StreamDescriptor>;
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

/** Whether `splitKey` would name this stream otherwise than `descriptor` does. */
function keyMisnames(descriptor: StreamDescriptor): boolean {
  const split = splitKey(streamKey(descriptor.name, descriptor.namespace));
  return split.name !== descriptor.name || (split.namespace ?? '') !== (descriptor.namespace ?? '');
}

/**
 * Makes `state.descriptors` name each of `streams` as given (see `SyncState.descriptors`):
 * records the descriptor of a stream its key would misname, and forgets an earlier one for
 * the key of a stream its key names right. Returns `state`.
 */
export function withDescriptors(state: SyncState, streams: Iterable<StreamDescriptor>): SyncState {
  for (const s of streams) {
    const key = streamKey(s.name, s.namespace);
    if (keyMisnames(s)) {
      state.descriptors ??= {};
      state.descriptors[key] = s.namespace ? { name: s.name, namespace: s.namespace } : { name: s.name };
    } else if (state.descriptors) {
      delete state.descriptors[key];
    }
  }
  if (state.descriptors && Object.keys(state.descriptors).length === 0) delete state.descriptors;
  return state;
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
 * Airbyte STATE messages for a state (one GLOBAL, or one STREAM per stream). A stream is
 * named by `state.descriptors`, else by `describe` (default: the key split at its first dot);
 * pass `describeStreams(catalog streams)` for a state that may lack descriptors, or a stream
 * whose name holds a dot is misnamed.
 */
export function toStateMessages(state: SyncState, describe: (key: string) => StreamDescriptor = splitKey): AirbyteStateMessage[] {
  const streamStates = Object.entries(state.streams).map(([key, blob]) => ({
    stream_descriptor: state.descriptors?.[key] ?? describe(key),
    stream_state: blob,
  }));
  if (state.shared !== undefined) {
    return [{ type: 'GLOBAL', global: { shared_state: state.shared, stream_states: streamStates } }];
  }
  return streamStates.map((s) => ({ type: 'STREAM' as const, stream: s }));
}

/**
 * Folds Airbyte STATE messages (later ones win) into a SyncState. LEGACY state is refused.
 * The descriptors the messages give are kept where the key would misname the stream (see
 * `SyncState.descriptors`). A state written before descriptors were kept names a stream
 * `v1.items` as `items` in namespace `v1`: it reads as the same key, so it resumes as before,
 * and the runtime names the stream from the catalog when it saves the state again.
 */
export function fromStateMessages(messages: readonly AirbyteStateMessage[]): SyncState {
  const state = emptyState();
  const named = new Map<string, StreamDescriptor>();
  const put = (d: StreamDescriptor, blob: StateBlob): void => {
    const key = streamKey(d.name, d.namespace);
    state.streams[key] = blob;
    named.set(key, d);
  };
  for (const message of messages) {
    if (message.type === 'GLOBAL') {
      if (message.global.shared_state !== undefined) state.shared = message.global.shared_state;
      for (const s of message.global.stream_states) put(s.stream_descriptor, s.stream_state ?? {});
    } else if (message.type === 'STREAM') {
      const d = message.stream.stream_descriptor;
      if (message.stream.stream_state === undefined) delete state.streams[streamKey(d.name, d.namespace)];
      else put(d, message.stream.stream_state);
    } else {
      throw new Error(`unsupported state type ${(message as { type?: unknown }).type as string}`);
    }
  }
  return withDescriptors(state, [...named].filter(([key]) => Object.hasOwn(state.streams, key)).map(([, d]) => d));
}
