import { describe, expect, it } from 'vitest';
import { canonicalDecimal, exactNumber, fitsDouble, CANONICAL_DECIMAL_PATTERN } from '../src/index.js';

describe('decimal text', () => {
  it('canonicalDecimal writes one text per number, in plain notation', () => {
    expect(canonicalDecimal('-12.50')).toBe('-12.5');
    expect(canonicalDecimal('1.2345678E7')).toBe('12345678');
    expect(canonicalDecimal('+007')).toBe('7');
    expect(canonicalDecimal('-0.000')).toBe('0');
    expect(canonicalDecimal('1e-3')).toBe('0.001');
    expect(canonicalDecimal('97315873439065651')).toBe('97315873439065651');
    expect(canonicalDecimal('abc')).toBeUndefined();
    expect(canonicalDecimal('1e401')).toBeUndefined();
    for (const text of ['-12.5', '12345678', '7', '0', '0.001', '97315873439065651']) expect(new RegExp(CANONICAL_DECIMAL_PATTERN).test(text)).toBe(true);
  });

  it('fitsDouble tells whether a double holds the decimal digit for digit', () => {
    expect(fitsDouble('0.1')).toBe(true);
    expect(fitsDouble('1.5e3')).toBe(true);
    expect(fitsDouble('97315873439065651')).toBe(false);
    expect(fitsDouble('9007199254740992')).toBe(true);
  });

  it('exactNumber keeps a number where the double is the decimal sent, else the exact text', () => {
    expect(exactNumber('1000.50')).toBe(1000.5);
    expect(exactNumber('1.5e3')).toBe(1500);
    expect(exactNumber('9007199254740991')).toBe(9007199254740991);
    // Integers beyond ±(2^53 − 1) are text, also the ones a double holds.
    expect(exactNumber('9007199254740992')).toBe('9007199254740992');
    expect(exactNumber('97315873439065651')).toBe('97315873439065651');
    expect(exactNumber('-1.2345678901234567891E17')).toBe('-123456789012345678.91');
    expect(exactNumber('0.12345678901234567891')).toBe('0.12345678901234567891');
    // A fraction whose nearest double is an integer is no integer.
    expect(exactNumber('4503599627370497.5')).toBe('4503599627370497.5');
    expect(exactNumber('0x10')).toBe(16);
    expect(exactNumber('abc')).toBeNaN();
  });
});
