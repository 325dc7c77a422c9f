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
 * Envelope column numbering the rows of one ingest time in the order they arrived (BIGINT):
 * a session stages each batch under an ingest time of its own (strictly increasing within
 * the session, see session.ts), and this is the row's place among the rows staged with it
 * (its staging row × 1024 + its place in that row). Two versions of one key with the same
 * event time and cursor in one batch (a row changed twice within a second of a
 * second-resolution `updated_at`) tie on every other column of NEWEST_FIRST — the same
 * derived event id included — so without it the latest one was whichever DuckDB met first,
 * and a compaction could change it. NULL in files written before it existed.
 */
export const INGEST_SEQ_COLUMN = '_tributary_ingest_seq';

/**
 * `relation` (SQL: a table function, a view, a subquery) with `INGEST_SEQ_COLUMN` added as
 * NULL when none of its files has it (a lake written before the column existed), so that
 * NEWEST_FIRST applies to any set of files; a relation that has it is unchanged.
 */
export function withIngestSeq(relation: string): string {
  return `(SELECT * FROM ${relation} UNION ALL BY NAME SELECT NULL::BIGINT AS ${INGEST_SEQ_COLUMN} WHERE false)`;
}

/**
 * Order of the rows of one key, newest first. CDC positions decide first (see `lsnOrder`):
 * a snapshot row (no commit time, so its event time is its ingest time) then never wins
 * over a change committed after the snapshot's consistent point. Other rows order by event
 * time, then position, then ingest time, then arrival within one ingest time
 * (`INGEST_SEQ_COLUMN`: the later row of one batch is the later version). A position that is
 * a number (a numeric cursor, stored as its JSON text) orders by its value: as text, `9`
 * came after `10`. Column names are the envelope's; the relation must have
 * `INGEST_SEQ_COLUMN` (see `withIngestSeq`).
 */
export const NEWEST_FIRST = `${lsnOrder('source_position')} DESC NULLS LAST, event_time DESC, TRY_CAST(source_position AS DOUBLE) DESC NULLS LAST, source_position DESC NULLS LAST, ingest_time DESC, ${INGEST_SEQ_COLUMN} DESC NULLS LAST, event_id DESC`;
