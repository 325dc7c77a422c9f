import type pg from 'pg';
import type { Lsn } from './lsn.js';

/**
 * `_tributary_position`s (in the Debezium format: `source.lsn`) of the rows of a keyless
 * table's CDC snapshot: one per row, all below the snapshot's position and derived from the
 * row's place in the table (its ctid, and for a partitioned table its partition), so that
 *
 * - two identical rows are two events downstream: the lake hashes a keyless record whole
 *   (position included) into its event id, and identical records were one event, compaction
 *   keeping one of them;
 * - every row still sorts before every change streamed after the snapshot (those follow the
 *   snapshot's position: see `snapshotLsn` in read-cdc.ts), and a snapshot row never shares a
 *   position with a change;
 * - a snapshot resumed after a crash gives a row it reads again the position it had (same
 *   base position, kept in the stream state; same ctid unless the row was updated, deleted or
 *   the table rewritten meanwhile): a replay is the identical record.
 *
 * The k-th heap slot of the table (block × tuples per page + offset − 1) takes the base
 * position − 1 − k; with partitions, the slots are interleaved over the partitions listed
 * when the snapshot started (by oid; the list is kept in the stream state). The room below
 * the base is the WAL written before it, which is more than the heap slots of every table it
 * wrote (a page's worth of rows takes a page's worth of WAL, and a page holds at most
 * `tuplesPerPage` rows, far fewer than its bytes). A row for which there is no room — or
 * of a partition created after the snapshot started — takes the base position itself (the
 * behaviour before positions were per row).
 *
 * Keyed tables do not need this: the lake's event id of a keyed record covers its key.
 */
export class SnapshotRowPositions {
  /** Rows given the base position for want of room (or of a partition not in the list). */
  fallbacks = 0;
  private readonly baseHi: number;
  private readonly baseLo: number;
  private readonly rank: Map<string, number> | undefined;
  private readonly slots: number;

  /**
   * @param base the snapshot's position (`_tributary_position` of a keyed table's rows)
   * @param tuplesPerPage MaxHeapTuplesPerPage of the server (see `heapTuplesPerPage`)
   * @param partitions oids of the partitions of a partitioned table, in the order kept in the state
   */
  constructor(
    readonly base: string,
    baseLsn: Lsn,
    private readonly tuplesPerPage: number,
    partitions?: readonly string[],
  ) {
    this.baseHi = Number(baseLsn >> 32n);
    this.baseLo = Number(baseLsn & 0xffffffffn);
    this.rank = partitions ? new Map(partitions.map((oid, i) => [oid, i])) : undefined;
    this.slots = partitions ? Math.max(1, partitions.length) : 1;
  }

  /**
   * The position of the row at `ctid` (text `(block,offset)`) of `partition` (its oid, for a
   * partitioned table). On the per-row path of keyless snapshots: a few number operations.
   */
  of(ctid: string, partition: string | null): string {
    const comma = ctid.indexOf(',');
    const block = Number(ctid.slice(1, comma));
    const offset = Number(ctid.slice(comma + 1, ctid.length - 1));
    let slot = block * this.tuplesPerPage + offset - 1;
    if (this.rank) {
      const rank = partition === null ? undefined : this.rank.get(partition);
      if (rank === undefined) return this.fallback();
      slot = slot * this.slots + rank;
    }
    if (!(slot >= 0 && slot < 2 ** 52)) return this.fallback();
    // base − 1 − slot, in two 32-bit halves (exact in doubles: every operand is below 2^53).
    let lo = this.baseLo - 1 - slot;
    let hi = this.baseHi;
    if (lo < 0) {
      const borrow = Math.ceil(-lo / 2 ** 32);
      lo += borrow * 2 ** 32;
      hi -= borrow;
    }
    if (hi < 0 || (hi === 0 && lo === 0)) return this.fallback();
    return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
  }

  private fallback(): string {
    this.fallbacks++;
    return this.base;
  }
}

/**
 * MaxHeapTuplesPerPage of the server: (block size − page header) / (aligned tuple header +
 * line pointer), 291 for the default 8 kB pages. Offsets in a heap page never exceed it.
 */
export async function heapTuplesPerPage(sql: pg.Client): Promise<number> {
  const result = await sql.query<{ size: string }>(`SELECT current_setting('block_size') AS size`);
  const blockSize = Number(result.rows[0]!.size);
  return Math.floor((blockSize - 24) / (24 + 4));
}
