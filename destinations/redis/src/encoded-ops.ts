import { groupField, TIME_SLOT_WIDTH, writeTimeSlot } from './layout.js';
import type { GroupTarget } from './write-script.js';
import { writeBulk, writeHeader } from './resp-connection.js';
import { copyBytes } from './value-codec.js';

/**
 * A batch's writes, encoded once, as the create path sends them: `HSETNX <key> <field>
 * <value>` per record in RESP, back to back, then `EXISTS <TTL registry>` (see
 * `createGroups` in write-script.ts). Each value is the group's field value of the layout
 * (event time slot, a blank expiry slot, the order segment if any, the body). The script path copies keys
 * and values out of the same bytes (`spans`), patching the expiry slot when the group has a
 * TTL.
 *
 * Why encode once, and into bytes: the writer keeps a batch until Redis acknowledged it (to
 * send it again after a lost connection). Kept as strings (key, JSON) and objects, the
 * batches in flight survived young-generation collections, which copied them each time;
 * kept as these bytes, all the strings die young. It also saves the second encoding pass.
 */
export interface EncodedOps {
  readonly count: number;
  /**
   * Commands to send ahead of the values on the same connection, whichever path sends them:
   * the registration of the shapes the batch's bodies name (`shapePreamble` in shapes.ts),
   * so a value never reaches Redis before its shape.
   */
  readonly preamble: Buffer;
  readonly preambleCount: number;
  /** The create path's payload: the HSETNX commands, then EXISTS. */
  readonly createPayload: Buffer;
  /** Per op i: `[4i]` offset and `[4i+1]` length of its key, `[4i+2]` offset and `[4i+3]` length of its value, in `createPayload`. */
  readonly spans: Int32Array;
  /**
   * The whole buffer `createPayload` is a view of. Once Redis answered every command of the
   * batch, nothing reads it, and the caller may hand it to a later encoder (`spare`).
   */
  readonly buffer: Buffer;
}

export interface OpsEncoder {
  /**
   * Adds one write: its entity key as two parts written side by side (the writer passes the
   * key's head and the encoded entity id, see `entityKeyHeads`; either part may be the whole
   * key), event time (epoch ms, within the layout's range), body (layout.ts; copied at once)
   * and the order segment that goes between the time slots and the body, if any.
   */
  add(keyHead: string, keyTail: string, eventTimeMs: number, body: Buffer, order?: Buffer): void;
  /** Ends the batch; `preamble` (default none) goes ahead of its values. */
  finish(preamble?: { payload: Buffer; count: number }): EncodedOps;
}

const NO_PREAMBLE = { payload: Buffer.alloc(0), count: 0 };
const HSETNX_HEAD = Buffer.from('*4\r\n$6\r\nHSETNX\r\n', 'latin1');
const BLANK_SLOT = 0x20;
/** Most bytes a record adds besides its key and body (RESP headers, CRLFs, slots), the field aside. */
const RECORD_OVERHEAD = HSETNX_HEAD.length + 3 * 16 + 2 * TIME_SLOT_WIDTH;

function digitCount(n: number): number {
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  return digits;
}

/** Writes `text` as UTF-8 at `at`; returns the byte count. ASCII (keys, nearly always) byte by byte: cheaper than a native call for short text. */
function writeUtf8(out: Buffer, at: number, text: string): number {
  const n = text.length;
  if (n > 96) return out.write(text, at, 'utf8');
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return out.write(text, at, 'utf8');
    out[at + i] = c;
  }
  return n;
}

/**
 * Writes `head` + `tail` (a key) as one RESP bulk string at `offset` without joining or
 * measuring them first. Joined, a key would be a new string whose characters V8 copies into
 * a flat one on the first read (~0.1–0.2 µs per record); the head is a remembered string,
 * flat after its first use. The text goes where the header for its UTF-16 length would end
 * — its UTF-8 length when it is ASCII, the common case — and moves when its UTF-8 length
 * needs more digits. The caller reserved room for 3 bytes per UTF-16 unit. Returns the
 * content's start and length; the CRLF after it is written.
 */
function writeBulkText(out: Buffer, offset: number, head: string, tail: string): { start: number; length: number } {
  const guessDigits = digitCount(head.length + tail.length);
  let start = offset + 3 + guessDigits;
  const headLength = writeUtf8(out, start, head);
  const length = headLength + writeUtf8(out, start + headLength, tail);
  const digits = digitCount(length);
  if (digits !== guessDigits) {
    out.copyWithin(start + digits - guessDigits, start, start + length);
    start += digits - guessDigits;
  }
  writeHeader(out, offset, 36, length);
  out[start + length] = 13;
  out[start + length + 1] = 10;
  return { start, length };
}

/**
 * Writes a RESP bulk string of `before` bytes (left for the caller to fill: the value's time
 * slots) followed by `bytes`. Returns the content's start and length; the CRLF after it is
 * written.
 */
function writeBulkBytes(out: Buffer, offset: number, bytes: Buffer, before: number): { start: number; length: number } {
  const length = before + bytes.length;
  const start = writeHeader(out, offset, 36, length);
  copyBytes(bytes, 0, bytes.length, out, start + before);
  out[start + length] = 13;
  out[start + length + 1] = 10;
  return { start, length };
}

/**
 * Encodes the writes of one batch to `target`'s group (the TTL registry goes in the trailing
 * EXISTS). `spare`, the `buffer` of an answered batch, is written over instead of allocating
 * a new one: a batch buffer is ~0.75 MB, and allocating one per batch churned memory outside
 * V8's heap, which V8 answers with extra collections.
 */
export function createOpsEncoder(target: Pick<GroupTarget, 'group' | 'ttlRegistry'>, expectedCount: number, spare?: Buffer): OpsEncoder {
  const field = groupField(target.group);
  const fieldBytes = Buffer.byteLength(field);
  const fieldScratch = Buffer.allocUnsafe(fieldBytes + 16);
  const encodedField = fieldScratch.subarray(0, writeBulk(fieldScratch, 0, field, fieldBytes));
  // Typical records take well under 768 bytes: one buffer for the batch, grown if not.
  const size = Math.max(4096, expectedCount * 768);
  let out = spare !== undefined && spare.length >= size ? spare : Buffer.allocUnsafe(size);
  let spans = new Int32Array(Math.max(16, expectedCount * 4));
  let offset = 0;
  let count = 0;

  const reserve = (bytes: number): void => {
    if (offset + bytes <= out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, offset + bytes));
    out.copy(bigger, 0, 0, offset);
    out = bigger;
  };

  return {
    add(keyHead, keyTail, eventTimeMs, body, order) {
      const orderLength = order?.length ?? 0;
      // UTF-8 takes at most 3 bytes per UTF-16 unit of the key: reserve that much, write exactly.
      reserve(RECORD_OVERHEAD + encodedField.length + 3 * (keyHead.length + keyTail.length) + orderLength + body.length);
      if (spans.length < (count + 1) * 4) {
        const more = new Int32Array(spans.length * 2);
        more.set(spans);
        spans = more;
      }
      out.set(HSETNX_HEAD, offset);
      offset += HSETNX_HEAD.length;
      const k = writeBulkText(out, offset, keyHead, keyTail);
      spans[count * 4] = k.start;
      spans[count * 4 + 1] = k.length;
      offset = k.start + k.length + 2;
      out.set(encodedField, offset);
      offset += encodedField.length;
      const v = writeBulkBytes(out, offset, body, 2 * TIME_SLOT_WIDTH + orderLength);
      writeTimeSlot(out, v.start, eventTimeMs);
      for (let i = v.start + TIME_SLOT_WIDTH, end = v.start + 2 * TIME_SLOT_WIDTH; i < end; i++) out[i] = BLANK_SLOT;
      if (order !== undefined) copyBytes(order, 0, orderLength, out, v.start + 2 * TIME_SLOT_WIDTH);
      spans[count * 4 + 2] = v.start;
      spans[count * 4 + 3] = v.length;
      offset = v.start + v.length + 2;
      count++;
    },

    finish(preamble = NO_PREAMBLE) {
      reserve(64 + 3 * target.ttlRegistry.length);
      offset = writeHeader(out, offset, 42, 2);
      offset = writeBulk(out, offset, 'EXISTS');
      offset = writeBulk(out, offset, target.ttlRegistry);
      return { count, preamble: preamble.payload, preambleCount: preamble.count, createPayload: out.subarray(0, offset), spans: spans.subarray(0, count * 4), buffer: out };
    },
  };
}
