import { describe, expect, it } from 'vitest';
import { seededRandom } from '@tributary/core';
import { createValueWriter, finishValues, readValues, writeValue, type ValueWriter } from '../src/value-codec.js';

/** What the lookup API returned when bodies were JSON: the contract the binary form keeps. */
const viaJson = (values: unknown[]): unknown[] => JSON.parse(JSON.stringify(values)) as unknown[];

/** Writes `values`, starting from 8-byte buffers (so every growth path runs), and reads them back. */
function encode(values: unknown[], w: ValueWriter = { entries: { bytes: Buffer.allocUnsafe(8), length: 0 }, strings: { bytes: Buffer.allocUnsafe(8), length: 0 } }): Buffer {
  for (const v of values) writeValue(w, v);
  finishValues(w);
  return w.entries.bytes.subarray(0, w.entries.length);
}

function roundTrip(values: unknown[]): unknown[] {
  const bytes = encode(values);
  const out: unknown[] = [];
  expect(readValues(bytes, 0, bytes.length, values.length, out)).toBe(true);
  return out;
}

describe('value codec', () => {
  it('decodes every value to what a JSON round trip gives', () => {
    const values: unknown[] = [
      '', 'plain', 'ünïcödé', '日本語', '😀 astral', 'lone \ud800 high', 'lone \udc00 low', 'pair \ud83d\ude00', '\u0000\u001e\u001f\u2028',
      0, -0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, 0.1, -12.333333333333334, 1e-300, 1.7976931348623157e308,
      Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
      true, false, null,
      { a: 1, b: [1, 'x', null], c: { d: 'ü' } }, [], {}, ['crm', 't1'],
      new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6)),
      () => 1, Symbol('s'),
    ];
    const decoded = roundTrip(values);
    expect(decoded).toEqual(viaJson(values));
    expect(Object.is(decoded[10], 0)).toBe(true); // −0 → 0, as JSON
    expect(decoded[5]).toBe('lone \ud800 high'); // a lone surrogate survives (stored as JSON text)
  });

  it('agrees with JSON on random values, growing its buffer from 8 bytes', () => {
    const random = seededRandom(7);
    const pick = (): unknown => {
      const r = random();
      if (r < 0.3) return Math.floor(random() * 2 ** 40) - 2 ** 39;
      if (r < 0.5) return (random() - 0.5) * 10 ** Math.floor(random() * 20);
      if (r < 0.8) return Array.from({ length: Math.floor(random() * 40) }, () => String.fromCharCode(Math.floor(random() * 0x10000))).join('');
      if (r < 0.9) return { n: random(), s: 'x'.repeat(Math.floor(random() * 5000)) };
      return random() < 0.5;
    };
    for (let round = 0; round < 50; round++) {
      const values = Array.from({ length: 60 }, pick);
      expect(roundTrip(values)).toEqual(viaJson(values));
    }
  });

  it('stores arrays as exactly the JSON text JSON.stringify gives (the direct writer for flat arrays, or its fallback)', () => {
    const random = seededRandom(11);
    const chars = ['a', 'Z', '0', ' ', '"', '\\', '/', '\u0000', '\u001f', '\u007f', 'é', '\u2028', '\ud800', '😀'];
    const element = (): unknown => {
      const r = random();
      if (r < 0.4) return Array.from({ length: Math.floor(random() * 6) }, () => (random() < 0.85 ? 'abc' : chars[Math.floor(random() * chars.length)]!)).join('');
      if (r < 0.6) return [0, -0, 1.5, -3, 1e21, 1e-7, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY][Math.floor(random() * 9)];
      if (r < 0.7) return random() < 0.5;
      if (r < 0.8) return null;
      if (r < 0.85) return undefined;
      if (r < 0.9) return ['nested'];
      return { k: 'v' };
    };
    const arrays: unknown[][] = [[], ['crm', 't1'], [1, 'a', true, null], new Array(3), Object.assign(['x'], { toJSON: () => 'custom' })];
    for (let i = 0; i < 300; i++) arrays.push(Array.from({ length: Math.floor(random() * 5) }, element));
    for (const array of arrays) {
      // An object always takes the JSON.stringify path; its toJSON gives a copy of the array's JSON value.
      const viaStringify = encode(['head', { toJSON: () => JSON.parse(JSON.stringify(array)) as unknown }, 7]);
      expect(encode(['head', array, 7]).equals(viaStringify), JSON.stringify(array)).toBe(true);
    }
  });

  it('refuses bytes that are not exactly the expected number of values', () => {
    const bytes = encode(['abc', 12.5, 'de']);
    const out: unknown[] = [];
    expect(readValues(bytes, 0, bytes.length, 3, out)).toBe(true);
    expect(out).toEqual(['abc', 12.5, 'de']);
    expect(readValues(bytes, 0, bytes.length - 1, 3, out)).toBe(false); // a string byte missing
    expect(readValues(bytes, 0, bytes.length, 2, out)).toBe(false); // an entry left over
    expect(readValues(bytes, 0, bytes.length, 4, out)).toBe(false); // an entry missing
    expect(readValues(Buffer.concat([bytes, Buffer.from('x')]), 0, bytes.length + 1, 3, out)).toBe(false); // text left over
    const numbers = encode([12.5]);
    expect(readValues(numbers, 0, numbers.length - 1, 1, out)).toBe(false); // truncated float
    expect(readValues(Buffer.from([0x09]), 0, 1, 1, out)).toBe(false); // unknown tag
    expect(readValues(Buffer.from([0x05, 10, 0, 0, 0, 0x61]), 0, 6, 1, out)).toBe(false); // string longer than the text
  });

  it('throws on a BigInt, as JSON.stringify does', () => {
    expect(() => writeValue(createValueWriter(), 10n)).toThrow(TypeError);
  });
});
