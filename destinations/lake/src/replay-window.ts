import { hash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { replaceLoneSurrogates } from '@tributary/core';
import type { LakeFile } from './commit-log.js';
import { literal, plainBigInt } from './duck.js';
import type { Envelope } from './envelope.js';
import type { PayloadColumn } from './schema-registry.js';
import type { LakeStore } from './storage/store.js';

/**
 * The rows a new session may receive again: those of the stream's files written by sessions
 * whose records can be replayed (see LakeState.unclean), as event id → content
 * fingerprints.
 *
 * A record is a replay only when both its event id and its content match a stored row. The
 * id alone is not enough: a derived id covers (stream, key, position or cursor, op), so two
 * changes of one row within one cursor value (an `updated_at` of second precision, say)
 * share it. If the first was committed by a sync that then crashed, the second arrives in
 * the resume with the same id; taken for a replay, it was dropped, and the lake kept the
 * older value until the row changed again.
 *
 * The fingerprint covers what a replay reproduces exactly: the envelope values derived from
 * the record and its source position (entity key, customer, tenant, op, position, txid,
 * before-image, unchanged fields) and every payload column. Not the event time (without an
 * event-time field it is the ingest time, new at each read; with one it is a payload
 * column), the ingest time or the schema version. Values are compared in the form the files
 * hold them: text with each lone surrogate as U+FFFD (as the UTF-8 files store it), numbers
 * as numbers (a BIGINT read back as one, as its digits beyond ±2^53), JSON as its stored text (`jsonText`, kept verbatim
 * by DuckDB).
 *
 * Memory: the window's ids and one 22-character fingerprint per row (about 110 bytes a row);
 * the window is the rows committed since the stream's last completed sync.
 */
export class ReplayWindow {
  private readonly rows = new Map<string, string | string[]>();

  /**
   * @param columns payload columns the fingerprints cover (the stream's columns when the
   *   session opened; a column added later is null in every stored row of the window).
   */
  constructor(readonly columns: readonly PayloadColumn[]) {}

  get size(): number {
    return this.rows.size;
  }

  /** Whether a stored row has this event id (the cheap test, done for every record). */
  has(eventId: string): boolean {
    return this.rows.has(eventId);
  }

  add(eventId: string, fingerprint: string): void {
    const have = this.rows.get(eventId);
    if (have === undefined) this.rows.set(eventId, fingerprint);
    else if (typeof have === 'string') {
      if (have !== fingerprint) this.rows.set(eventId, [have, fingerprint]);
    } else if (!have.includes(fingerprint)) have.push(fingerprint);
  }

  /** Whether a stored row has this event id and this content. */
  holds(eventId: string, fingerprint: string): boolean {
    const have = this.rows.get(eventId);
    return have === fingerprint || (Array.isArray(have) && have.includes(fingerprint));
  }
}

/** Envelope columns a fingerprint covers, in its order (see ReplayWindow). */
const FINGERPRINT_ENVELOPE = ['entity_key', 'customer_id', 'tenant_id', 'op', 'source_position', 'source_txid', 'before_image', 'unchanged_fields'] as const;

function canonical(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return replaceLoneSurrogates(value);
  // A BIGINT reads back as a bigint: a number when safe, else its digits (as StreamStage stages it).
  if (typeof value === 'bigint') return plainBigInt(value);
  // A DOUBLE NaN or ±infinity: its text, as StreamStage stages it (JSON has no such number).
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

function fingerprintOf(values: unknown[]): string {
  return hash('sha256', JSON.stringify(values), 'base64url').slice(0, 22);
}

/**
 * The fingerprint of a record about to be staged: its envelope and its payload values in
 * staging form (`payload[i]` for `columns[i]`, as StreamStage computes them). `position` is
 * the stored source position (the envelope's, which the COPY also falls back to).
 */
export function recordFingerprint(envelope: Envelope, payload: readonly unknown[], columnCount: number): string {
  const values: unknown[] = [envelope.entityKey, envelope.customerId, envelope.tenantId, envelope.op, envelope.position, envelope.txid, envelope.before, envelope.unchanged];
  for (let i = 0; i < columnCount; i++) values.push(payload[i]);
  return fingerprintOf(values.map(canonical));
}

/**
 * The replay window of one stream: the rows of `files` (read with DuckDB, chunk by chunk;
 * S3 files are downloaded to `tempDir` first), or undefined when there are none.
 */
export async function loadReplayWindow(connection: DuckDBConnection, store: LakeStore, files: readonly LakeFile[], tempDir: string, columns: readonly PayloadColumn[]): Promise<ReplayWindow | undefined> {
  if (files.length === 0) return undefined;
  const cache = join(tempDir, 'replay-window');
  const paths: string[] = [];
  for (const f of files) paths.push(await store.localCopy(f.path, cache));
  const window = new ReplayWindow(columns);
  try {
    const result = await connection.stream(`SELECT * FROM read_parquet([${paths.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false)`);
    const names = result.columnNames();
    const at = (column: string): number => names.indexOf(column);
    const eventId = at('event_id');
    // A column no file of the window has (added to the schema later) is null in all its rows.
    const picks = [...FINGERPRINT_ENVELOPE.map(at), ...columns.map((c) => at(c.column))];
    for await (const rows of result.yieldRows()) {
      for (const row of rows) {
        const values = picks.map((i) => (i < 0 ? null : canonical(row[i])));
        window.add(String(row[eventId]), fingerprintOf(values));
      }
    }
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
  return window;
}
