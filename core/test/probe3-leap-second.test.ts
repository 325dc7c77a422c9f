import { describe, expect, it } from 'vitest';
import { parseDateTimeMs } from '../src/index.js';

/** 2016-12-31T23:59:59.999Z: the last millisecond of the minute that held the leap second of 2016. */
const LAST_MS_2016 = Date.UTC(2016, 11, 31, 23, 59, 59, 999);

describe('parseDateTimeMs and leap seconds (RFC 3339 time-second 60)', () => {
  it('reads 23:59:60 UTC as the last millisecond of its minute, in every form RFC 3339 allows', () => {
    for (const text of [
      '2016-12-31T23:59:60Z',
      '2016-12-31T23:59:60.000Z',
      '2016-12-31T23:59:60.5Z',
      '2016-12-31T23:59:60.123456789Z',
      '2016-12-31t23:59:60z',
      '2016-12-31T23:59:60+00:00',
      '2016-12-31T23:59:60-00:00',
      // With an offset the local time differs: the leap second is at 23:59:60 UTC (RFC 3339 §5.8's own example is 1990-12-31T15:59:60-08:00).
      '2017-01-01T05:29:60+05:30',
      '2016-12-31T15:59:60-08:00',
      '2017-01-01T00:59:60+01:00',
      // Without an offset: UTC, as parseDateTimeMs reads every offset-less date-time.
      '2016-12-31T23:59:60',
      '2016-12-31 23:59:60.25',
    ]) {
      expect(parseDateTimeMs(text), text).toBe(LAST_MS_2016);
    }
    expect(parseDateTimeMs('1990-12-31T15:59:60-08:00')).toBe(Date.UTC(1990, 11, 31, 23, 59, 59, 999));
    expect(parseDateTimeMs('2015-06-30T23:59:60Z')).toBe(Date.UTC(2015, 5, 30, 23, 59, 59, 999));
    expect(parseDateTimeMs('+002016-12-31T23:59:60Z')).toBe(LAST_MS_2016);
  });

  it('keeps the UTC date and the order within the day', () => {
    const leap = parseDateTimeMs('2016-12-31T23:59:60Z');
    expect(new Date(leap).toISOString()).toBe('2016-12-31T23:59:59.999Z');
    expect(leap).toBeGreaterThan(parseDateTimeMs('2016-12-31T23:59:59.998Z'));
    expect(leap).toBeLessThan(parseDateTimeMs('2017-01-01T00:00:00Z'));
  });

  it('refuses second 60 anywhere but 23:59 UTC, and malformed leap seconds', () => {
    for (const text of [
      '2016-12-31T23:58:60Z',
      '2016-12-31T22:59:60Z',
      '2016-12-31T00:00:60Z',
      '2016-12-31T23:59:60+01:00', // 22:59:60 UTC
      '2016-12-31T15:59:60-07:00', // 22:59:60 UTC
      '2016-12-31T23:59:61Z',
      '2016-12-31T23:59:60.Z',
      '2016-12-31T23:59:60.5xZ',
      '2016-12-31T23:59:60 extra',
      '2016-12-31T24:59:60Z',
      '2016-13-31T23:59:60Z',
      '2016-12-31T23:59:60+25:00',
    ]) {
      expect(parseDateTimeMs(text), text).toBeNaN();
    }
  });
});
