/** Salesforce's wire formats, shared by the simulator's REST (JSON) and Bulk (CSV) answers. */

/** `2024-01-01T00:00:00.000+0000`: how Salesforce writes date-times in JSON and CSV. */
export function sfDateTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

/**
 * One CSV cell of Bulk API 2.0 query results: every value in double quotes (inner quotes
 * doubled), as the header — the documented example of "Get Results for a Query Job" is
 * `"Id","Name"` / `"005R0000000UyrWIAS","Jane Dunn"`
 * (developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm).
 * A null is an empty, unquoted cell (the documentation shows no null; clients report empty
 * cells for them). Salesforce stores no empty text, so no quoted empty cell is ever written.
 * Quoting every value also makes the cell the same whatever `columnDelimiter` the job uses.
 */
export function csvValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : String(value);
  return `"${text.replace(/"/g, '""')}"`;
}

/**
 * The column delimiters and line endings a Bulk API 2.0 query job can ask for (Create a Query
 * Job: `columnDelimiter` BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON or TAB, default COMMA;
 * `lineEnding` LF or CRLF, default LF —
 * developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm).
 */
export const CSV_COLUMN_DELIMITERS: Readonly<Record<string, string>> = { BACKQUOTE: '`', CARET: '^', COMMA: ',', PIPE: '|', SEMICOLON: ';', TAB: '\t' };
export const CSV_LINE_ENDINGS: Readonly<Record<string, string>> = { LF: '\n', CRLF: '\r\n' };
