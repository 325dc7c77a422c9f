/**
 * The key a reverse-ETL record is written under: the value of its `idProperty` as a string,
 * or undefined when it has no usable one (the record then fails). Shared by `runWriter`, which
 * computes idempotency keys from it, and the writer destination, which recomputes them to tell
 * which records of a batch failed: the two must agree for every value.
 */
export function writeKeyOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 ? value : undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}
