import { constants } from 'node:buffer';
import { TributaryError } from '../errors.js';

/**
 * JSON text of a value, exactly as `JSON.stringify(value)` gives it, also for values nested
 * deeper than JSON.stringify can go.
 *
 * JSON.stringify recurses on the native stack and throws RangeError ("Maximum call stack
 * size exceeded") at ~4,000 levels on Node 20's default stack, while JSON.parse reads any
 * depth: a source can deliver a record (an API answer, a jsonb value) that parses but does
 * not serialize. A destination that failed on it failed the batch, and every retry of it.
 * Only on that error does this walk the value again with an explicit stack (slower, rare).
 *
 * A value whose text would be longer than a string can be (`MAX_STRING_LENGTH`) fails with a
 * `fatal` TributaryError that says so, not V8's bare RangeError "Invalid string length".
 */
export function stringifyJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      try {
        return stringifyJsonIteratively(value);
      } catch (deepError) {
        throw isStringTooLong(deepError) ? jsonTooLongError(deepError) : deepError;
      }
    }
    // A value whose text would not fit in a string (V8's bare "Invalid string length").
    throw isStringTooLong(error) ? jsonTooLongError(error) : error;
  }
}

/**
 * The longest string Node.js can hold, in UTF-16 code units (V8's limit: 536,870,888 on
 * 64-bit Node 20, about 512 MiB of ASCII). No JSON text, and so no record serialized as one
 * (a JSON line, a protocol message, a stored payload), can be longer.
 */
export const MAX_STRING_LENGTH = constants.MAX_STRING_LENGTH;

/** `MAX_STRING_LENGTH` for messages: "536,870,888 characters, about 512 MiB". */
export function describeMaxStringLength(): string {
  return `${MAX_STRING_LENGTH.toLocaleString('en-US')} characters, about ${Math.round(MAX_STRING_LENGTH / 2 ** 20)} MiB`;
}

/**
 * Whether `error`, or an error it wraps (`cause`, as `toTributaryError` and retries wrap),
 * is a string refused for being longer than `MAX_STRING_LENGTH`: V8's RangeError "Invalid
 * string length" (JSON.stringify, concatenation, join) or Node's ERR_STRING_TOO_LONG
 * (decoding a Buffer).
 */
export function isStringTooLong(error: unknown): boolean {
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RangeError && /invalid string length/i.test(e.message)) return true;
    if ((e as { code?: unknown }).code === 'ERR_STRING_TOO_LONG') return true;
  }
  return false;
}

/**
 * A record of stream `stream` whose JSON text is longer than a string can be, as a fatal
 * error naming the stream and the limit; `consequence` says what could not be done ("the
 * destination cannot write it"). `cause` is the error that was thrown (see `isStringTooLong`).
 */
export function recordTooLongError(stream: { name: string; namespace?: string | undefined }, consequence: string, cause: unknown): TributaryError {
  const key = stream.namespace === undefined ? stream.name : `${stream.namespace}.${stream.name}`;
  return new TributaryError('fatal', {
    userMessage:
      `Stream "${key}": a record's JSON text is longer than the longest string Node.js can hold (${describeMaxStringLength()}), ` +
      `so ${consequence}. Leave out or shorten the record's largest fields at the source.`,
    internalMessage: TributaryError.is(cause) ? (cause.internalMessage ?? cause.userMessage) : cause instanceof Error ? cause.message : String(cause),
    stream: stream.namespace === undefined ? { name: stream.name } : { name: stream.name, namespace: stream.namespace },
    cause,
  });
}

/** Whose state a STATE message (or a stored state) holds: one stream's, or the global state (GLOBAL: shared by all streams). */
export type StateScope = { name: string; namespace?: string | undefined } | 'global';

/**
 * A state of `scope` whose JSON text is longer than a string can be, as a fatal error naming
 * the stream (or the global state) and the limit; `consequence` says what could not be done
 * ("it cannot be saved"). `problem` replaces the default "its JSON text is longer than …"
 * for a related limit (PostgreSQL's for a jsonb value). `cause` is the error that was thrown.
 */
export function stateTooLongError(
  scope: StateScope,
  consequence: string,
  cause: unknown,
  problem = `its JSON text is longer than the longest string Node.js can hold (${describeMaxStringLength()})`,
): TributaryError {
  const stream = scope === 'global' ? undefined : scope.namespace === undefined ? { name: scope.name } : { name: scope.name, namespace: scope.namespace };
  const label = stream === undefined ? 'The global state' : `Stream "${stream.namespace === undefined ? stream.name : `${stream.namespace}.${stream.name}`}": the stream's state`;
  return new TributaryError('fatal', {
    userMessage:
      `${label} is too large: ${problem}, so ${consequence}. ` +
      'The source must keep less in its state (a cursor or position, not the data itself).',
    internalMessage: TributaryError.is(cause) ? (cause.internalMessage ?? cause.userMessage) : cause instanceof Error ? cause.message : String(cause),
    ...(stream === undefined ? {} : { stream }),
    cause,
  });
}

/** The error `stringifyJson` throws for a value whose JSON text is longer than a string can be. */
function jsonTooLongError(cause: unknown): TributaryError {
  return new TributaryError('fatal', {
    userMessage: `A value's JSON text is longer than the longest string Node.js can hold (${describeMaxStringLength()}), so it cannot be serialized`,
    internalMessage: cause instanceof Error ? cause.message : String(cause),
    cause,
  });
}

type Container = readonly unknown[] | Record<string, unknown>;

interface Frame {
  container: Container;
  /** Object keys (own enumerable, in order, as JSON.stringify takes them); undefined for an array. */
  keys: string[] | undefined;
  index: number;
  /** An object member has been written (the next one needs a comma). */
  wrote: boolean;
}

/** The value JSON.stringify serializes for `value` at `key`: after `toJSON`, boxed primitives unboxed. */
function serializable(value: unknown, key: string): unknown {
  let v = value;
  if ((typeof v === 'object' && v !== null) || typeof v === 'bigint') {
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') v = (toJSON as (this: unknown, key: string) => unknown).call(v, key);
  }
  if (v instanceof Number) return Number(v);
  if (v instanceof String) return String(v);
  if (v instanceof Boolean) return v.valueOf();
  return v;
}

/** JSON text of a non-container value; undefined for what JSON omits (undefined, functions, symbols). */
function scalarText(v: unknown): string | undefined {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      // JSON.stringify's own error for a BigInt without toJSON.
      throw new TypeError('Do not know how to serialize a BigInt');
    default:
      return undefined;
  }
}

const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;

/** JSON.stringify's result, computed with an explicit stack (exported for its tests). */
export function stringifyJsonIteratively(root: unknown): string | undefined {
  const first = serializable(root, '');
  if (!isContainer(first)) return scalarText(first);
  const out: string[] = [];
  const stack: Frame[] = [];
  const ancestors = new Set<Container>();
  const open = (container: Container): void => {
    if (ancestors.has(container)) throw new TypeError('Converting circular structure to JSON');
    ancestors.add(container);
    const isArray = Array.isArray(container);
    stack.push({ container, keys: isArray ? undefined : Object.keys(container), index: 0, wrote: false });
    out.push(isArray ? '[' : '{');
  };
  open(first);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.keys === undefined) {
      const items = frame.container as readonly unknown[];
      if (frame.index === items.length) {
        out.push(']');
        ancestors.delete(frame.container);
        stack.pop();
        continue;
      }
      const i = frame.index++;
      if (i > 0) out.push(',');
      const v = serializable(items[i], String(i));
      if (isContainer(v)) open(v);
      else out.push(scalarText(v) ?? 'null');
    } else {
      if (frame.index === frame.keys.length) {
        out.push('}');
        ancestors.delete(frame.container);
        stack.pop();
        continue;
      }
      const key = frame.keys[frame.index++]!;
      const v = serializable((frame.container as Record<string, unknown>)[key], key);
      const text = isContainer(v) ? undefined : scalarText(v);
      if (!isContainer(v) && text === undefined) continue;
      out.push(`${frame.wrote ? ',' : ''}${JSON.stringify(key)}:`);
      frame.wrote = true;
      if (isContainer(v)) open(v);
      else out.push(text!);
    }
  }
  return out.join('');
}
