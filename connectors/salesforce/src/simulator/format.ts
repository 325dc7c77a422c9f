/** Salesforce's wire formats, shared by the simulator's REST (JSON) and Bulk (CSV) answers. */

/** `2024-01-01T00:00:00.000+0000`: how Salesforce writes date-times in JSON and CSV. */
export function sfDateTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

/** One CSV value as Bulk API 2.0 writes it: empty for null, quoted when needed. */
export function csvValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
