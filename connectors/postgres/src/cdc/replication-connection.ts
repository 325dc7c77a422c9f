import type pg from 'pg';
import { connect, ident, literal } from '../connection.js';
import type { PostgresConfig } from '../config.js';
import { formatLsn, nowPgMicros, parseLsn, type Lsn } from './lsn.js';
import { decodePgOutput, parseReplicationMessage, standbyStatusUpdate, type PgOutputMessage, type ReplicationMessage } from './pgoutput.js';

/**
 * A queued message: keepalives as they are, WAL data already decoded. Decoding happens as
 * the bytes arrive, because `pg` reuses its read buffer (a queued message must not point
 * into it) and the decoder copies everything it keeps.
 */
export type StreamMessage =
  | Extract<ReplicationMessage, { type: 'keepalive' }>
  | { type: 'xlog'; walStart: Lsn; walEnd: Lsn; position: string; message: PgOutputMessage };

/** Raw CopyData messages queued before the socket is paused (backpressure). */
const HIGH_WATER = 4_096;
const LOW_WATER = 1_024;
/** Status updates go out at least this often, also while the consumer is blocked. */
const STATUS_INTERVAL_MS = 10_000;

/** Internals of `pg` we rely on for CopyBoth mode (stable since pg 7). */
interface PgConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void;
  removeAllListeners(event: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  stream: { pause(): void; resume(): void; destroy(): void };
}

/**
 * One `replication=database` connection speaking the streaming replication protocol
 * directly over `pg`: slot creation with an exported snapshot, START_REPLICATION, and
 * Standby Status Updates we write ourselves.
 *
 * Contract on positions: the flush LSN reported to the server is only ever what `confirm()`
 * was given — the runtime's ack of a committed checkpoint. Keepalive replies and periodic
 * status updates repeat that value; the write LSN (what we received) carries no promise
 * and the server ignores it for logical slots.
 */
export class ReplicationConnection {
  private readonly queue: StreamMessage[] = [];
  private waiter: (() => void) | undefined;
  private paused = false;
  private ended = false;
  private failure: unknown;
  private received: Lsn = 0n;
  private flushed: Lsn = 0n;
  private timer: NodeJS.Timeout | undefined;
  private streaming = false;
  private done: Promise<unknown> | undefined;
  /** Largest number of messages ever queued (memory bound evidence for tests and logs). */
  maxQueued = 0;

  private constructor(private readonly client: pg.Client) {}

  static async open(config: PostgresConfig): Promise<ReplicationConnection> {
    return new ReplicationConnection(await connect(config, true));
  }

  private get connection(): PgConnection {
    return (this.client as unknown as { connection: PgConnection }).connection;
  }

  /**
   * Creates a logical slot with an exported snapshot. The snapshot stays importable only
   * until the next command on this connection: import it before calling `start`.
   */
  async createSlot(slot: string): Promise<{ consistentPoint: Lsn; snapshotName: string }> {
    let result;
    try {
      result = await this.client.query<{ consistent_point: string; snapshot_name: string }>(
        `CREATE_REPLICATION_SLOT ${ident(slot)} LOGICAL pgoutput (SNAPSHOT 'export')`,
      );
    } catch (error) {
      // Servers before 15 only know the old option syntax.
      if ((error as { code?: string }).code !== '42601') throw error;
      result = await this.client.query<{ consistent_point: string; snapshot_name: string }>(
        `CREATE_REPLICATION_SLOT ${ident(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
      );
    }
    const row = result.rows[0]!;
    return { consistentPoint: parseLsn(row.consistent_point), snapshotName: row.snapshot_name };
  }

  /** Starts streaming; messages are then read with `next()`. */
  start(slot: string, from: Lsn, publication: string): void {
    this.connection.on('copyData', (message) => this.onCopyData(message.chunk));
    const options = [`proto_version '2'`, `publication_names ${literal(ident(publication))}`].join(', ');
    this.done = this.client.query(`START_REPLICATION SLOT ${ident(slot)} LOGICAL ${formatLsn(from)} (${options})`).then(
      () => this.finish(undefined),
      (error: unknown) => this.finish(error),
    );
    this.streaming = true;
    this.timer = setInterval(() => this.sendStatus(false), STATUS_INTERVAL_MS);
    this.timer.unref();
  }

  private finish(error: unknown): void {
    this.ended = true;
    if (error !== undefined && this.failure === undefined) this.failure = error;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private onCopyData(chunk: Buffer): void {
    let message: StreamMessage;
    try {
      const raw = parseReplicationMessage(chunk);
      message =
        raw.type === 'keepalive'
          ? raw
          : { type: 'xlog', walStart: raw.walStart, walEnd: raw.walEnd, position: raw.position, message: decodePgOutput(raw.payload, false) };
    } catch (error) {
      this.finish(error);
      return;
    }
    if (message.type === 'keepalive') {
      if (message.walEnd > this.received) this.received = message.walEnd;
      // Answered here, not by the consumer, so a slow destination never times the walsender out.
      if (message.replyRequested) this.sendStatus(false);
    } else if (message.walEnd > this.received) this.received = message.walEnd;
    this.queue.push(message);
    if (this.queue.length > this.maxQueued) this.maxQueued = this.queue.length;
    if (!this.paused && this.queue.length >= HIGH_WATER) {
      this.paused = true;
      this.connection.stream.pause();
    }
    this.wake();
  }

  /** The next queued message without waiting (the hot path: no promise per message). */
  poll(): StreamMessage | undefined {
    const message = this.queue.shift();
    if (this.paused && this.queue.length <= LOW_WATER) {
      this.paused = false;
      this.connection.stream.resume();
    }
    return message;
  }

  /** The next message; `undefined` after `timeoutMs` without one. Throws when the stream failed. */
  async next(timeoutMs: number): Promise<StreamMessage | undefined> {
    if (this.queue.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = undefined;
          resolve();
        }, timeoutMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const message = this.queue.shift();
    if (this.paused && this.queue.length <= LOW_WATER) {
      this.paused = false;
      this.connection.stream.resume();
    }
    if (message) return message;
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new Error('the server ended the replication stream');
    return undefined;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Reports `lsn` as flushed: only for positions the runtime committed (see the class contract). */
  confirm(lsn: Lsn): void {
    if (lsn <= this.flushed) return;
    this.flushed = lsn;
    this.sendStatus(false);
  }

  get confirmed(): Lsn {
    return this.flushed;
  }

  private sendStatus(replyRequested: boolean): void {
    if (!this.streaming || this.ended) return;
    const written = this.received > this.flushed ? this.received : this.flushed;
    try {
      this.connection.sendCopyFromChunk(standbyStatusUpdate(written, this.flushed, nowPgMicros(), replyRequested));
    } catch {
      // A broken socket surfaces through the START_REPLICATION query.
    }
  }

  /** Any command on a replication connection (before `start`). */
  query<T extends pg.QueryResultRow>(text: string): Promise<pg.QueryResult<T>> {
    return this.client.query<T>(text);
  }

  /** Ends streaming (CopyDone) and the connection; idempotent. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.streaming && !this.ended) {
      this.sendStatus(false);
      this.streaming = false;
      this.queue.length = 0;
      if (this.paused) this.connection.stream.resume();
      this.paused = false;
      try {
        this.connection.endCopyFrom();
      } catch {
        // already broken
      }
      await Promise.race([this.done, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    }
    this.streaming = false;
    this.connection.removeAllListeners('copyData');
    await Promise.race([this.client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    this.connection.stream.destroy();
  }
}
