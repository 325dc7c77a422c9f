/**
 * The on-disk / in-database form of a connection's state, shared by every StateStore so
 * that all of them validate exactly the same way.
 *
 * A stored state is a small versioned envelope around Airbyte STATE messages:
 *   { "version": 1, "connection": "...", "updatedAt": "<ISO 8601>", "state": [<AirbyteStateMessage>...] }
 * `state` is exactly what `toStateMessages()` produces, so it can be handed to Airbyte tools.
 */
import type { SyncState } from '../connector/state.js';
import { fromStateMessages, toStateMessages } from '../connector/state.js';
import { compileSchema, describeSchemaErrors } from '../config/schema.js';
import { TributaryError } from '../errors.js';
import type { AirbyteStateMessage } from '../protocol/messages.js';
import { isStringTooLong, stateTooLongError, type StateScope } from '../util/json-text.js';

export const STATE_FORMAT_VERSION = 1;

export interface StateEnvelope {
  version: typeof STATE_FORMAT_VERSION;
  connection: string;
  updatedAt: string;
  state: AirbyteStateMessage[];
}

const blob = { type: 'object' } as const;
const streamState = {
  type: 'object',
  required: ['stream_descriptor'],
  properties: {
    stream_descriptor: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string' }, namespace: { type: 'string' } },
    },
    stream_state: blob,
  },
} as const;

const stateMessage = {
  type: 'object',
  required: ['type'],
  properties: { type: { enum: ['STREAM', 'GLOBAL'] } },
  // if/then rather than oneOf, so errors point into the branch the message claims to be.
  allOf: [
    {
      if: { properties: { type: { const: 'STREAM' } } },
      then: { required: ['stream'], properties: { stream: streamState } },
    },
    {
      if: { properties: { type: { const: 'GLOBAL' } } },
      then: {
        required: ['global'],
        properties: {
          global: {
            type: 'object',
            required: ['stream_states'],
            properties: { shared_state: blob, stream_states: { type: 'array', items: streamState } },
          },
        },
      },
    },
  ],
} as const;

/** Validates an envelope. LEGACY state and anything else unknown is refused. */
const envelopeSchema = {
  type: 'object',
  required: ['version', 'connection', 'updatedAt', 'state'],
  properties: {
    version: { const: STATE_FORMAT_VERSION },
    connection: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
    state: { type: 'array', items: stateMessage },
  },
} as const;

const stateMessages = { type: 'array', items: stateMessage } as const;

/**
 * `messages` (Airbyte STATE messages a user hands over: `tributary state set`, `read --state`)
 * as the STATE messages they are, or a `config` error locating the first problems. Checked
 * with the schema every store reads a stored state with, so a state accepted here is one
 * the next sync can load (a `stream_state` that is not an object used to be stored, and every
 * later sync of the connection then refused the state as unreadable). `what` names the input.
 */
export function checkStateMessages(messages: readonly unknown[], what: string): AirbyteStateMessage[] {
  const validate = compileSchema(stateMessages);
  if (!validate(messages)) {
    const errors = validate.errors?.filter((e) => e.keyword !== 'if');
    throw new TributaryError('config', {
      userMessage: `${what} must hold Airbyte STATE messages of type STREAM or GLOBAL: ${describeSchemaErrors(errors, 'state').slice(0, 3).join('; ')}`,
    });
  }
  return messages as AirbyteStateMessage[];
}

export function encodeState(connection: string, state: SyncState, now: Date = new Date()): StateEnvelope {
  return { version: STATE_FORMAT_VERSION, connection, updatedAt: now.toISOString(), state: toStateMessages(state) };
}

/**
 * `serialize()`: JSON text of `state` (or of what holds it). A text longer than a string can
 * be (V8's "Invalid string length") is the fatal error of `stateTooLongError`, naming the
 * stream whose state is largest (or the global state) and saying that `consequence`, not a
 * bare RangeError. Every store and the runtime serialize a state to save through this.
 */
export function stateText(state: SyncState, serialize: () => string, consequence: string): string {
  try {
    return serialize();
  } catch (error) {
    throw isStringTooLong(error) ? stateTooLongError(largestPart(state), consequence, error) : error;
  }
}

/**
 * What of `state` to name for a state too long to serialize: the global state when it is
 * one (one GLOBAL message holds it all), else the stream whose state's JSON text is longest
 * (one whose text alone is too long at once). Serializes the streams' states again, one by
 * one: only on that failure.
 */
export function largestPart(state: SyncState): StateScope {
  if (state.shared !== undefined) return 'global';
  let largest: StateScope = 'global';
  let longest = -1;
  for (const message of toStateMessages(state)) {
    if (message.type !== 'STREAM') continue;
    let length: number;
    try {
      length = JSON.stringify(message.stream.stream_state ?? {}).length;
    } catch (error) {
      if (isStringTooLong(error)) return message.stream.stream_descriptor;
      continue;
    }
    if (length > longest) [largest, longest] = [message.stream.stream_descriptor, length];
  }
  return largest;
}

/**
 * Turns a stored envelope back into a SyncState.
 * Throws the `config` error of `unreadableState` when it is not a valid envelope for `connection`.
 * `where` names the place it was read from (a file, a table), for the message.
 */
export function decodeState(raw: unknown, connection: string, where: string): SyncState {
  const fail = (reason: string, cause?: unknown): never => {
    throw unreadableState(connection, where, reason, cause);
  };
  const version = (raw as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version !== STATE_FORMAT_VERSION) {
    fail(`it has format version ${version}, this Tributary reads version ${STATE_FORMAT_VERSION}`);
  }
  const validate = compileSchema(envelopeSchema);
  if (!validate(raw)) {
    // `if` errors only repeat the `then` errors below them; a few problems locate the damage.
    const errors = validate.errors?.filter((e) => e.keyword !== 'if');
    fail(describeSchemaErrors(errors, 'content').slice(0, 3).join('; '));
  }
  const envelope = raw as StateEnvelope;
  if (envelope.connection !== connection) {
    fail(`it belongs to connection ${JSON.stringify(envelope.connection)}`);
  }
  try {
    return fromStateMessages(envelope.state);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error), error);
  }
}

/** Parses JSON text and decodes it (see decodeState); malformed JSON is reported the same way. */
export function parseState(text: string, connection: string, where: string): SyncState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw unreadableState(connection, where, `it is not valid JSON (${error instanceof Error ? error.message : String(error)})`, error);
  }
  return decodeState(raw, connection, where);
}

/** The one error every store throws for stored state it cannot use. Never echoes state values. */
export function unreadableState(connection: string, where: string, reason: string, cause?: unknown): TributaryError {
  return new TributaryError('config', {
    userMessage:
      `State for connection ${JSON.stringify(connection)} in ${where} is unreadable: ${reason}. ` +
      `Fix or reset it with \`tributary state reset ${shellWord(connection)}\` (add --sync <file.yaml> or --store <url> to name this store).`,
    cause,
  });
}

/**
 * The state left after resetting some streams (by stream key), or undefined when nothing is
 * left to keep. `shared` (the GLOBAL/CDC position) is kept while any stream remains: it is
 * meaningless without streams, so resetting the last of them drops it too. Keys that are not
 * in the state are ignored; when none is, the same object is returned (nothing to write).
 */
export function withoutStreams(state: SyncState, streams: readonly string[]): SyncState | undefined {
  const drop = new Set(streams);
  const entries = Object.entries(state.streams);
  const kept = Object.fromEntries(entries.filter(([key]) => !drop.has(key)));
  if (Object.keys(kept).length === entries.length) return state;
  if (Object.keys(kept).length === 0) return undefined;
  const result: SyncState = state.shared === undefined ? { streams: kept } : { streams: kept, shared: state.shared };
  const descriptors = Object.entries(state.descriptors ?? {}).filter(([key]) => Object.hasOwn(kept, key));
  if (descriptors.length > 0) result.descriptors = Object.fromEntries(descriptors);
  return result;
}

/**
 * Connection names are free text (they are keys, not paths), but must be storable the same
 * way everywhere: not empty, no NUL (PostgreSQL text cannot hold it), well-formed Unicode
 * (a lone surrogate would not survive UTF-8 and two names could become one).
 */
export function checkConnectionName(connection: string): void {
  const reason =
    connection.length === 0
      ? 'it is empty'
      : connection.includes('\0')
        ? 'it contains a NUL character'
        : /\p{Cs}/u.test(connection)
          ? 'it is not well-formed Unicode'
          : undefined;
  if (reason) throw new TributaryError('config', { userMessage: `Invalid connection name ${JSON.stringify(connection)}: ${reason}` });
}

/** Quotes a connection name for the suggested shell command, only when it needs it. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
