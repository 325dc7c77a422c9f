/**
 * The order of the rows of one key, shared by point-in-time reads (reader.ts) and by the
 * attribution of CDC deletes (delete-attribution.ts), which must agree on which row of a
 * key is the latest.
 */

/**
 * A row's CDC position as sortable text, or NULL when it is none. Positions of the form
 * `X/Y` (PostgreSQL LSNs, the Tributary change format) are the source's own order of
 * changes: zero-padded, so that text order is numeric order. `position` is an SQL
 * expression of the position text (a column, or a literal).
 */
export function lsnOrder(position: string): string {
  return (
    `CASE WHEN regexp_full_match(${position}, '[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}') ` +
    `THEN lpad(upper(split_part(${position}, '/', 1)), 8, '0') || lpad(upper(split_part(${position}, '/', 2)), 8, '0') END`
  );
}

/**
 * Order of the rows of one key, newest first. CDC positions decide first (see `lsnOrder`):
 * a snapshot row (no commit time, so its event time is its ingest time) then never wins
 * over a change committed after the snapshot's consistent point. Other rows order by event
 * time, then position, then ingest time. A position that is a number (a numeric cursor,
 * stored as its JSON text) orders by its value: as text, `9` came after `10`. Column names
 * are the envelope's.
 */
export const NEWEST_FIRST = `${lsnOrder('source_position')} DESC NULLS LAST, event_time DESC, TRY_CAST(source_position AS DOUBLE) DESC NULLS LAST, source_position DESC NULLS LAST, ingest_time DESC, event_id DESC`;
