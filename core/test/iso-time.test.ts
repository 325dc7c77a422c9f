import { describe, expect, it } from 'vitest';
import { formatIsoMs, nanosBelowMillisecond, parseDateTimeMs, seededRandom } from '../src/index.js';

describe('parseDateTimeMs', () => {
  it('equals Date.parse on the fast shape, over random instants and fraction lengths', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 20_000; i++) {
      const iso = new Date(Math.floor(random() * 8e12) - 1e12).toISOString(); // years 1938–2223
      const digits = Math.floor(random() * 10); // 0–9 fraction digits
      const fraction = digits === 0 ? '' : `.${(iso.slice(20, 23) + String(Math.floor(random() * 1e6)).padStart(6, '0')).slice(0, digits)}`;
      const text = `${iso.slice(0, 19)}${fraction}Z`;
      expect(parseDateTimeMs(text), text).toBe(Date.parse(text));
    }
  });

  it('equals Date.parse on every day 1–31 of every month, leap and century years of the whole fast-path range included', () => {
    const random = seededRandom(9);
    const years = [1000, 1001, 1582, 1600, 1699, 1700, 1899, 1900, 1904, 1969, 1970, 1999, 2000, 2024, 2100, 2400, 5000, 9999, ...Array.from({ length: 40 }, () => 1000 + Math.floor(random() * 9000))];
    for (const year of years) {
      for (let month = 1; month <= 12; month++) {
        for (let day = 1; day <= 31; day++) {
          const text = `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}T23:59:59.999Z`;
          expect(parseDateTimeMs(text), text).toBe(Date.parse(text));
        }
      }
    }
  });

  it('agrees with Date.parse on edge and malformed inputs (falling back where it must)', () => {
    const cases = [
      '2025-02-30T00:00:00Z', // rolls over to March 2 in both
      '2024-02-29T23:59:59.999Z',
      '2025-01-01T24:00:00Z',
      '2025-01-01T00:00:60Z',
      '2025-13-01T00:00:00Z',
      '2025-00-10T00:00:00Z',
      '2025-01-00T00:00:00Z',
      '2025-01-32T00:00:00Z',
      '0099-01-01T00:00:00Z',
      '0999-12-31T23:59:59Z',
      '2025-01-01T00:00:00.Z',
      '2025-01-01T00:00:00,5Z',
      '2025-01-01T00:00:00.12a4Z',
      '2025-01-01T00:00:00.1234567890Z',
      '2025-01-01T00:00:00+02:00',
      '2025-01-01T00:00:00.5+02:00',
      '2025-01-01 00:00:00Z',
      '2025-01-01',
      '+012025-01-01T00:00:00Z',
      '2O25-01-01T00:00:00Z',
      'not a date at all, but 30 ch Z',
      '',
    ];
    for (const text of cases) expect(Object.is(parseDateTimeMs(text), Date.parse(text)), text).toBe(true);
  });
});

describe('formatIsoMs', () => {
  it('equals toISOString on every day of leap, century and random years across the fast range, at random times', () => {
    const random = seededRandom(11);
    const years = [1000, 1001, 1582, 1600, 1700, 1900, 1904, 1969, 1970, 1999, 2000, 2024, 2100, 2400, 9998, 9999, ...Array.from({ length: 30 }, () => 1000 + Math.floor(random() * 9000))];
    for (const year of years) {
      const first = Date.UTC(year, 0, 1);
      const last = Date.UTC(year, 11, 31);
      for (let day = first; day <= last; day += 86_400_000) {
        const ms = day + Math.floor(random() * 86_400_000);
        expect(formatIsoMs(ms), String(ms)).toBe(new Date(ms).toISOString());
        expect(formatIsoMs(day)).toBe(new Date(day).toISOString());
      }
    }
  });

  it('equals toISOString at the edges of the fast range and falls back outside it', () => {
    const from = Date.UTC(1000, 0, 1);
    const to = Date.UTC(10_000, 0, 1);
    for (const ms of [from - 1, from, from + 1, to - 1, to, to + 1, -1, 0, 1, -62_198_755_200_000, 8.64e15, -8.64e15, 1.5, -0.5, 1735689600000.999]) {
      expect(formatIsoMs(ms), String(ms)).toBe(new Date(ms).toISOString());
    }
    expect(() => formatIsoMs(Number.NaN)).toThrow(RangeError);
    expect(() => formatIsoMs(8.64e15 + 1)).toThrow(RangeError);
  });
});

describe('parseDateTimeMs without an offset', () => {
  it('takes an ISO date-time without offset as UTC whatever the host time zone (Date.parse takes local time)', () => {
    const saved = process.env.TZ;
    try {
      for (const zone of ['America/New_York', 'Asia/Kolkata', 'UTC']) {
        process.env.TZ = zone;
        expect(parseDateTimeMs('2024-01-02T10:00:00'), zone).toBe(Date.UTC(2024, 0, 2, 10));
        expect(parseDateTimeMs('2024-01-02 10:00:00.123456'), zone).toBe(Date.UTC(2024, 0, 2, 10, 0, 0, 123));
        expect(parseDateTimeMs('2024-07-02T23:30'), zone).toBe(Date.UTC(2024, 6, 2, 23, 30));
        expect(parseDateTimeMs('+012024-07-02T23:30:00'), zone).toBe(Date.parse('+012024-07-02T23:30:00Z'));
        // Offsets and date-only forms are unchanged (a date alone is UTC for Date.parse too).
        expect(parseDateTimeMs('2024-01-02T10:00:00+02:00'), zone).toBe(Date.UTC(2024, 0, 2, 8));
        expect(parseDateTimeMs('2024-01-02'), zone).toBe(Date.UTC(2024, 0, 2));
        expect(parseDateTimeMs('2024-01-02T10:00:00 extra'), zone).toBeNaN();
      }
      // The test means something only if the host zone changes Date.parse's answer.
      process.env.TZ = 'America/New_York';
      expect(Date.parse('2024-01-02T10:00:00')).not.toBe(Date.UTC(2024, 0, 2, 10));
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });
});

describe('nanosBelowMillisecond', () => {
  it('reads the 4th to 9th fraction digits, with or without an offset; 0 for three or fewer and for a leap second', () => {
    expect(nanosBelowMillisecond('2026-03-01T10:00:00.000600Z')).toBe(600_000);
    expect(nanosBelowMillisecond('2026-03-01T10:00:00.123456789Z')).toBe(456_789);
    expect(nanosBelowMillisecond('2026-03-01T10:00:00.1234+01:00')).toBe(400_000);
    expect(nanosBelowMillisecond('2026-03-01T10:00:00.1234567891Z')).toBe(456_789);
    expect(nanosBelowMillisecond('2026-03-01 10:00:00.000001')).toBe(1_000);
    expect(nanosBelowMillisecond('2026-03-01T10:00:00.123Z')).toBe(0);
    expect(nanosBelowMillisecond('2026-03-01T10:00:00.5+01:00')).toBe(0);
    expect(nanosBelowMillisecond('2026-03-01T10:00:00Z')).toBe(0);
    expect(nanosBelowMillisecond('2016-12-31T23:59:60.123456Z')).toBe(0);
  });
});
