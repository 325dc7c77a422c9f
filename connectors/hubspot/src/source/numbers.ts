/**
 * HubSpot sends every property value as text, numbers too (`"1000.50"`, `"1.5e3"`,
 * `"97315873439065650"`), and a number property may hold any decimal: an amount, a count, or
 * an id from another system with 17 or more digits. `Number(text)` rounds the ones a double
 * cannot hold: `"97315873439065651"` became 97315873439065648 (printed `97315873439065650`),
 * `"0.12345678901234567891"` became 0.12345678901234568. `numberPropertyValue` keeps them,
 * by core's `exactNumber` (the rule the Salesforce connector uses for its wide numbers).
 */
import { exactNumber } from '@tributary/core';

/**
 * A number property's value as a record carries it (see core's `exactNumber`): a number when
 * the double is the value HubSpot sent, else its exact decimal text (matching core's
 * `CANONICAL_DECIMAL_PATTERN`); null for text that is no
 * finite number (as before: `"abc"`, `"Infinity"`). Texts that are no plain decimal but that
 * `Number` reads (`"0x1f"`, an exponent past ±400) are read as `Number` reads them, as before.
 */
export function numberPropertyValue(text: string): number | string | null {
  const value = exactNumber(text);
  return typeof value === 'string' || Number.isFinite(value) ? value : null;
}
