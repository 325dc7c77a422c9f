/**
 * The binary encoding of a shaped group's values (see shapes.ts). One tagged entry per
 * value, in the shape's order, then the text of every string value, concatenated:
 *
 *   entries:  0x00 null                0x03 int32, little-endian (4 bytes)
 *             0x01 false               0x04 float64, little-endian (8 bytes)
 *             0x02 true                0x05 string: uint32 LE length in UTF-16 code units
 *                                      0x06 JSON text: uint32 LE length in UTF-16 code units
 *   then:     the strings and JSON texts, in entry order, as one UTF-8 run
 *
 * Why the strings apart: a reader decodes the run with one call and cuts each string out of
 * it by its UTF-16 length, instead of one native call per string (~0.1–0.15 µs each, about
 * a fifth of a 100-entity lookup when each string was decoded alone).
 *
 * A value decodes to what `JSON.parse(JSON.stringify(value))` gives — the values the
 * lookup API returned when bodies were JSON: numbers that are not finite become null, −0
 * becomes 0, objects and arrays (and anything else with a JSON form, such as a Date) are
 * stored as their JSON text, and a string holding a lone UTF-16 surrogate, which UTF-8
 * cannot carry, is stored as JSON text too (JSON escapes it).
 *
 * Why binary: the writer puts these bytes straight into the batch's buffer (no
 * `JSON.stringify` of the values, 1.1–1.2 µs per benchmark record), and a reader takes
 * numbers from their bytes instead of parsing decimals.
 */

import { hasLoneSurrogate } from '@tributary/core';

const NULL = 0x00;
const FALSE = 0x01;
const TRUE = 0x02;
const INT32 = 0x03;
const FLOAT64 = 0x04;
const STRING = 0x05;
const JSON_TEXT = 0x06;

/** A growable buffer: `bytes` may be replaced by a larger one; `length` bytes are in use. */
export interface ByteSink {
  bytes: Buffer;
  length: number;
}

export function createByteSink(size = 1024): ByteSink {
  return { bytes: Buffer.allocUnsafe(size), length: 0 };
}

function ensure(sink: ByteSink, more: number): Buffer {
  if (sink.length + more > sink.bytes.length) {
    const bigger = Buffer.allocUnsafe(Math.max(sink.bytes.length * 2, sink.length + more));
    sink.bytes.copy(bigger, 0, 0, sink.length);
    sink.bytes = bigger;
  }
  return sink.bytes;
}

/**
 * Writes values: each entry into `entries`, each string's UTF-8 into `strings`. The body
 * is `entries` followed by `strings` (`finishValues`).
 */
export interface ValueWriter {
  readonly entries: ByteSink;
  readonly strings: ByteSink;
}

export function createValueWriter(): ValueWriter {
  return { entries: createByteSink(), strings: createByteSink() };
}

function writeText(w: ValueWriter, tag: number, text: string): void {
  const n = text.length;
  const out = ensure(w.strings, 3 * n);
  const start = w.strings.length;
  // ASCII, the common case, byte by byte: cheaper than a native call for short strings.
  let p = start;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) {
      if (tag === STRING && hasLoneSurrogate(text)) return writeText(w, JSON_TEXT, JSON.stringify(text));
      p = start + out.write(text, start, 'utf8');
      break;
    }
    out[p++] = c;
  }
  w.strings.length = p;
  writeTextEntry(w, tag, n);
}

/** The entry of a string or JSON text of `length` UTF-16 units: the tag, then the length as uint32 LE. */
function writeTextEntry(w: ValueWriter, tag: number, length: number): void {
  const entries = ensure(w.entries, 5);
  const at = w.entries.length;
  // Byte by byte: `writeUInt32LE` validates its arguments first.
  entries[at] = tag;
  entries[at + 1] = length & 0xff;
  entries[at + 2] = (length >>> 8) & 0xff;
  entries[at + 3] = (length >>> 16) & 0xff;
  entries[at + 4] = length >>> 24;
  w.entries.length = at + 5;
}

function writeTag(w: ValueWriter, tag: number): void {
  ensure(w.entries, 1)[w.entries.length++] = tag;
}

/** Adds one value (see the table above). */
export function writeValue(w: ValueWriter, value: unknown): void {
  switch (typeof value) {
    case 'string':
      return writeText(w, STRING, value);
    case 'number': {
      if (!Number.isFinite(value)) return writeTag(w, NULL);
      const out = ensure(w.entries, 9);
      const at = w.entries.length;
      if ((value | 0) === value) {
        // Also −0, written as 0: JSON has no negative zero.
        out[at] = INT32;
        out.writeInt32LE(value | 0, at + 1);
        w.entries.length += 5;
      } else {
        out[at] = FLOAT64;
        out.writeDoubleLE(value, at + 1);
        w.entries.length += 9;
      }
      return;
    }
    case 'boolean':
      return writeTag(w, value ? TRUE : FALSE);
    case 'object': {
      if (value === null) return writeTag(w, NULL);
      if (Array.isArray(value) && writeFlatArray(w, value)) return;
      const json = JSON.stringify(value) as string | undefined;
      return json === undefined ? writeTag(w, NULL) : writeText(w, JSON_TEXT, json);
    }
    case 'bigint':
      // As JSON.stringify: a TypeError (no JSON form).
      return writeText(w, JSON_TEXT, JSON.stringify(value));
    default:
      // Functions, symbols (and undefined, which the callers skip): null, as in a JSON array.
      return writeTag(w, NULL);
  }
}

/**
 * The JSON text of an array of ASCII strings, numbers, booleans and nulls (tags, lists of
 * ids: a common feature), written straight into the strings: exactly what `JSON.stringify`
 * gives, without building that string first (`JSON.stringify` of a two-tag array was the
 * largest single line of the writer's profile, ~0.3 µs per record). Anything else — a
 * string with a character JSON escapes or one beyond ASCII, a nested value, a hole, a
 * `toJSON` — returns false having written nothing, and the caller stringifies the array.
 */
function writeFlatArray(w: ValueWriter, array: readonly unknown[]): boolean {
  if (typeof (array as { toJSON?: unknown }).toJSON === 'function') return false;
  const start = w.strings.length;
  let p = start;
  let out = ensure(w.strings, 2);
  out[p++] = 0x5b; // [
  for (let i = 0; i < array.length; i++) {
    const v = array[i];
    let text: string;
    let quoted = false;
    if (typeof v === 'string') {
      text = v;
      quoted = true;
    } else if (typeof v === 'number') {
      text = Number.isFinite(v) ? String(v) : 'null';
    } else if (typeof v === 'boolean') {
      text = v ? 'true' : 'false';
    } else if (v === null) {
      text = 'null';
    } else {
      w.strings.length = start;
      return false;
    }
    w.strings.length = p;
    out = ensure(w.strings, text.length + 4);
    if (i > 0) out[p++] = 0x2c; // ,
    if (quoted) out[p++] = 0x22; // "
    for (let k = 0; k < text.length; k++) {
      const c = text.charCodeAt(k);
      // JSON escapes `"`, `\` and controls; beyond ASCII the UTF-16 length would differ from the bytes.
      if (c < 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c) {
        w.strings.length = start;
        return false;
      }
      out[p++] = c;
    }
    if (quoted) out[p++] = 0x22;
  }
  out[p++] = 0x5d; // ]
  w.strings.length = p;
  writeTextEntry(w, JSON_TEXT, p - start); // ASCII: as many UTF-16 units as bytes
  return true;
}

/** Appends the strings after the entries (in `w.entries`) and clears the strings: the values' bytes are `w.entries.bytes[0, length)`. */
export function finishValues(w: ValueWriter): void {
  const n = w.strings.length;
  if (n > 0) {
    const out = ensure(w.entries, n);
    copyBytes(w.strings.bytes, 0, n, out, w.entries.length);
    w.entries.length += n;
  }
  w.strings.length = 0;
}

/**
 * Decodes `count` values from `bytes[start, end)` into `into` (from index 0); false when the
 * bytes are not exactly `count` well-formed values.
 */
export function readValues(bytes: Buffer, start: number, end: number, count: number, into: unknown[]): boolean {
  // Entries: numbers, booleans and nulls now; strings once their run is decoded.
  let p = start;
  let texts = 0;
  for (let i = 0; i < count; i++) {
    if (p >= end) return false;
    switch (bytes[p++]) {
      case NULL:
        into[i] = null;
        break;
      case FALSE:
        into[i] = false;
        break;
      case TRUE:
        into[i] = true;
        break;
      case INT32:
        if (p + 4 > end) return false;
        into[i] = bytes.readInt32LE(p);
        p += 4;
        break;
      case FLOAT64:
        if (p + 8 > end) return false;
        into[i] = bytes.readDoubleLE(p);
        p += 8;
        break;
      case STRING:
      case JSON_TEXT:
        if (p + 4 > end) return false;
        p += 4;
        texts++;
        break;
      default:
        return false;
    }
  }
  if (texts === 0) return p === end;
  const run = bytes.toString('utf8', p, end);
  let at = 0;
  for (let i = 0, q = start; i < count; i++) {
    const tag = bytes[q++];
    if (tag === INT32) q += 4;
    else if (tag === FLOAT64) q += 8;
    else if (tag === STRING || tag === JSON_TEXT) {
      const length = bytes.readUInt32LE(q);
      q += 4;
      if (at + length > run.length) return false;
      const text = run.slice(at, at + length);
      at += length;
      if (tag === STRING) {
        into[i] = text;
      } else {
        try {
          into[i] = JSON.parse(text);
        } catch {
          return false;
        }
      }
    }
  }
  return at === run.length;
}

/**
 * Copies `src[from, to)` to `dst` at `at`; returns the number of bytes. Short runs (keys,
 * values: tens of bytes) byte by byte — `Buffer#copy` costs a native call through a JS
 * wrapper each time, which showed in the writer's profile at three copies per record.
 */
export function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  const n = to - from;
  if (n > 96) {
    // A whole buffer (a body) through `TypedArray#set`, which has no JS wrapper to run.
    if (from === 0 && to === src.length) dst.set(src, at);
    else src.copy(dst, at, from, to);
    return n;
  }
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
  return n;
}
