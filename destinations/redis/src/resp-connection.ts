import { connect, type Socket } from 'node:net';
import type { RedisConnectionOptions } from './config.js';

/**
 * Tributary's own connection to Redis, used by the writer and the lookup API: commands are
 * encoded straight into one Buffer per batch (RESP2), written with one write(2), and
 * replies are matched to batches in order (bulk strings as text, or as bytes on request).
 *
 * Why not ioredis (still used by `check` and the parity command): per record, the writer's
 * client-side work was the bottleneck of the write benchmark once the server-side script
 * got cheaper, and a third of it was ioredis building each command as a string (one piece
 * per argument) that the socket then flattened and encoded again. Encoding each argument once into a Buffer
 * took ~1 µs per record off the client (measured with process.cpuUsage over 200,000
 * records). The connection does only what its users need: AUTH and SELECT on connect,
 * pipelined commands, replies of integers, strings, nil, errors and arrays of those.
 *
 * Failure contract: a dropped connection rejects every unanswered batch with an error whose
 * message starts "Connection is closed" (classified `transient` by `toRedisError`); the next
 * `send` connects again. Nothing is re-sent here: the writer re-sends whole batches, which
 * is safe because its writes are idempotent.
 *
 * Ordered sends (`SendOptions.ordered`, the writer's batches) must reach Redis in the order
 * they were sent, re-sends included: once one failed — for want of a connection (lost with
 * it unanswered, or not made), or answered with an error reply by Redis (`-BUSY`,
 * `-LOADING`, `-NOSCRIPT`, any: its owner sends it again) — every later ordered send fails at
 * once, without reaching Redis, until the owner calls `resumeOrdered()`, after which it
 * re-sends the failed ones first. Else a later batch, sent on the next connection while an
 * earlier one was lost before Redis ran it, or sent once Redis took commands again after
 * refusing an earlier one, would be applied ahead of that one's re-send. An error reply
 * holds back the ordered sends made after the connection read it; commands already sent
 * behind the refused one (pipelined, on their way) are not recalled: Redis runs them if it
 * stopped refusing meanwhile.
 */

/** A Redis error reply (`-NOSCRIPT …`, `-WRONGPASS …`): returned in a batch's replies (holding back later ordered sends, see above), thrown by `call`. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
}

/** One reply: integer, (bulk or simple) string, nil, an error reply, or an array of replies. Bulk strings are text, or bytes (a Buffer) when sent with `{ bytes: true }`. */
export type RespReply = number | string | Buffer | null | RedisReplyError | RespReply[];

export interface RespConnection {
  /** Writes pre-encoded commands (`encodeCommands`) and resolves with their `count` replies, in order. */
  send(payload: Buffer | readonly Buffer[], count: number, options?: SendOptions): Promise<RespReply[]>;
  /** One command; an error reply is thrown. */
  call(...args: string[]): Promise<RespReply>;
  /** Lets ordered sends through again after one failed, lost or refused (see the failure contract above). */
  resumeOrdered(): void;
  close(): Promise<void>;
}

/** RESP2 encoding of commands (each an argument list), into one Buffer. */
export function encodeCommands(commands: readonly (readonly string[])[]): Buffer {
  let size = 0;
  const lengths: number[] = [];
  for (const args of commands) {
    size += 16; // *<count>\r\n
    for (const arg of args) {
      const length = Buffer.byteLength(arg);
      lengths.push(length);
      size += length + 16; // $<length>\r\n…\r\n
    }
  }
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  let n = 0;
  for (const args of commands) {
    offset = writeHeader(out, offset, 42 /* * */, args.length);
    for (const arg of args) offset = writeBulk(out, offset, arg, lengths[n++]!);
  }
  return out.subarray(0, offset);
}

/** Writes `text` as a RESP bulk string (`length` = its UTF-8 byte length); returns the offset after it. */
export function writeBulk(out: Buffer, offset: number, text: string, length = Buffer.byteLength(text)): number {
  offset = writeHeader(out, offset, 36 /* $ */, length);
  offset += out.write(text, offset, length, 'utf8');
  out[offset++] = 13;
  out[offset++] = 10;
  return offset;
}

/** Writes `<marker><decimal n>\r\n` byte by byte (Buffer#write costs more than the bytes for these): `*` 42 for an array, `$` 36 for a bulk string. */
export function writeHeader(out: Buffer, offset: number, marker: number, n: number): number {
  out[offset++] = marker;
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  for (let i = digits - 1, rest = n; i >= 0; i--, rest = Math.floor(rest / 10)) out[offset + i] = 48 + (rest % 10);
  offset += digits;
  out[offset++] = 13;
  out[offset++] = 10;
  return offset;
}

export interface SendOptions {
  /** Bulk strings of the replies as Buffers (views of the received bytes) instead of UTF-8 text: for binary values. */
  bytes?: boolean;
  /** One of a sequence Redis must apply in order: held back after an earlier one failed (lost, or an error reply), until `resumeOrdered()` (see the failure contract above). */
  ordered?: boolean;
}

/** What parsing a batch's replies needs from the batch: how to return bulk strings, and what to do on an error reply. */
interface ReplySink {
  readonly bytes: boolean;
  /** Called for each error reply parsed (only there: the replies' common path pays nothing). */
  readonly onErrorReply: () => void;
}

interface Pending extends ReplySink {
  readonly count: number;
  readonly ordered: boolean;
  readonly replies: RespReply[];
  readonly resolve: (replies: RespReply[]) => void;
  readonly reject: (error: Error) => void;
}

const NEED_MORE = Symbol('need more');


/** The decimal integer in bytes [start, end) (an optional '-', then digits). */
function parseInteger(buffer: Buffer, start: number, end: number): number {
  const negative = buffer[start] === 45;
  let n = 0;
  for (let i = negative ? start + 1 : start; i < end; i++) n = n * 10 + (buffer[i]! - 48);
  return negative ? -n : n;
}

/** Parses one reply at `offset`: [reply, next offset], or NEED_MORE when the buffer ends first. */
/** Index of the CR of the CRLF that ends the line at `offset`, -1 when the buffer ends first. */
function lineEnd(buffer: Buffer, offset: number): number {
  // Reply lines are short (a type byte and a number, mostly): a byte loop is cheaper than
  // `indexOf` with its needle conversion, measurable at one integer reply per record.
  const n = buffer.length - 1;
  for (let i = offset + 1; i < n; i++) if (buffer[i] === 13 && buffer[i + 1] === 10) return i;
  return -1;
}

function parseReply(buffer: Buffer, offset: number, sink: ReplySink): [RespReply, number] | typeof NEED_MORE {
  const end = lineEnd(buffer, offset);
  if (end === -1) return NEED_MORE;
  const type = buffer[offset];
  if (type === 58 /* ':' */) return [parseInteger(buffer, offset + 1, end), end + 2]; // the commonest reply: no string built
  const line = buffer.toString('latin1', offset + 1, end);
  switch (type) {
    case 43: // '+'
      return [line, end + 2];
    case 45: // '-'
      sink.onErrorReply();
      return [new RedisReplyError(buffer.toString('utf8', offset + 1, end)), end + 2];
    case 36: {
      // '$'
      const length = Number(line);
      if (length < 0) return [null, end + 2];
      if (buffer.length < end + 2 + length + 2) return NEED_MORE;
      return [sink.bytes ? buffer.subarray(end + 2, end + 2 + length) : buffer.toString('utf8', end + 2, end + 2 + length), end + 2 + length + 2];
    }
    case 42: {
      // '*'
      const count = Number(line);
      if (count < 0) return [null, end + 2];
      const items: RespReply[] = [];
      let next = end + 2;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next, sink);
        if (item === NEED_MORE) return NEED_MORE;
        items.push(item[0]);
        next = item[1];
      }
      return [items, next];
    }
    default:
      throw new Error(`Connection is closed: unexpected reply byte ${String(type)} from Redis`);
  }
}

function connectionClosed(cause?: Error): Error {
  const error = new Error(`Connection is closed${cause ? ` (${cause.message})` : ''}`);
  const code = (cause as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') Object.assign(error, { code });
  return error;
}

/** One socket and what is waiting on it: each socket has its own queue, so a late 'close' of an old one never fails a newer one's batches. */
interface Link {
  readonly socket: Socket;
  pending: Pending[];
  unread: Buffer;
  /** Its pending requests were failed (`failAll`): nothing more may wait on it. */
  lost: boolean;
}

export interface RespTimeouts {
  /** Connecting (TCP) may take this long. Default 5 s. */
  connectTimeoutMs?: number;
  /** Silence (no byte either way) while replies are awaited after which the connection is dropped. Default 60 s. */
  replyTimeoutMs?: number;
}

export function createRespConnection(options: RedisConnectionOptions, { connectTimeoutMs = 5_000, replyTimeoutMs = 60_000 }: RespTimeouts = {}): RespConnection {
  let link: Link | undefined;
  let connecting: Promise<Link> | undefined;
  let closed = false;
  /** An ordered send failed (no connection, or an error reply): later ones fail until `resumeOrdered()`. */
  let holdOrdered = false;
  /** `onErrorReply` of an ordered send: set as the reply is parsed, before any code can send again. */
  const holdLaterOrdered = (): void => {
    holdOrdered = true;
  };
  const ignoreErrorReply = (): void => undefined;

  const failAll = (l: Link, error: Error): void => {
    const failed = l.pending;
    l.lost = true;
    l.pending = [];
    l.unread = Buffer.alloc(0);
    if (failed.some((p) => p.ordered)) holdOrdered = true;
    for (const p of failed) p.reject(error);
  };

  const onData = (l: Link, chunk: Buffer): void => {
    const buffer = l.unread.length === 0 ? chunk : Buffer.concat([l.unread, chunk]);
    let offset = 0;
    while (offset < buffer.length) {
      const head = l.pending[0];
      if (!head) {
        l.socket.destroy(new Error('a reply nobody waited for'));
        return;
      }
      let parsed: [RespReply, number] | typeof NEED_MORE;
      try {
        parsed = parseReply(buffer, offset, head);
      } catch (error) {
        l.socket.destroy(error as Error);
        return;
      }
      if (parsed === NEED_MORE) break;
      offset = parsed[1];
      head.replies.push(parsed[0]);
      if (head.replies.length === head.count) {
        l.pending.shift();
        head.resolve(head.replies);
      }
    }
    l.unread = offset < buffer.length ? buffer.subarray(offset) : Buffer.alloc(0);
  };

  const write = (l: Link, payload: Buffer | readonly Buffer[], count: number, bytes = false, ordered = false): Promise<RespReply[]> =>
    new Promise((resolve, reject) => {
      // A link whose requests were failed fails nothing more: this one would wait forever.
      if (l.lost) {
        if (ordered) holdOrdered = true;
        return reject(connectionClosed(new Error('the connection was lost')));
      }
      l.pending.push({ count, bytes, ordered, onErrorReply: ordered ? holdLaterOrdered : ignoreErrorReply, replies: [], resolve, reject });
      if (Buffer.isBuffer(payload)) {
        l.socket.write(payload);
      } else {
        // Corked, the parts leave in one writev.
        l.socket.cork();
        for (const part of payload) if (part.length > 0) l.socket.write(part);
        l.socket.uncork();
      }
    });

  const open = async (): Promise<Link> => {
    const s = connect({ host: options.host ?? '127.0.0.1', port: options.port ?? 6379, noDelay: true });
    s.setKeepAlive(true, 30_000);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => s.destroy(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })), connectTimeoutMs);
      const failed = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      s.once('error', failed);
      s.once('connect', () => {
        clearTimeout(timer);
        s.off('error', failed);
        resolve();
      });
    });
    const l: Link = { socket: s, pending: [], unread: Buffer.alloc(0), lost: false };
    s.on('data', (chunk: Buffer) => onData(l, chunk));
    // A peer that stops answering without closing (a partition, a frozen host): after
    // `replyTimeoutMs` without any traffic while replies are awaited, give up on the
    // connection — the waiting batches fail as transient and are sent again.
    s.setTimeout(replyTimeoutMs, () => {
      if (l.pending.length > 0) s.destroy(Object.assign(new Error(`no reply from Redis for ${replyTimeoutMs / 1000} s`), { code: 'ETIMEDOUT' }));
    });
    // An error is followed by 'close', which fails the waiting batches with it.
    let lastError: Error | undefined;
    s.on('error', (error) => (lastError = error));
    s.on('close', () => {
      if (link === l) link = undefined;
      failAll(l, connectionClosed(lastError));
    });
    const handshake: string[][] = [];
    if (options.password !== undefined) handshake.push(options.username !== undefined ? ['AUTH', options.username, options.password] : ['AUTH', options.password]);
    if ((options.db ?? 0) !== 0) handshake.push(['SELECT', String(options.db)]);
    if (handshake.length > 0) {
      const replies = await write(l, encodeCommands(handshake), handshake.length);
      const refused = replies.find((r): r is RedisReplyError => r instanceof RedisReplyError);
      if (refused) {
        s.destroy();
        throw refused;
      }
    }
    return l;
  };

  const ready = async (): Promise<Link> => {
    if (closed) throw connectionClosed(new Error('closed by its owner'));
    if (link && !link.socket.destroyed) return link;
    // Destroyed, its 'close' (which fails what waits on it) not yet emitted: fail them now, before
    // a new connection carries anything sent after them (see ordered sends above).
    if (link) failAll(link, connectionClosed(new Error('the connection was lost')));
    connecting ??= open().then(
      (l) => {
        connecting = undefined;
        if (closed) {
          // close() ran while this socket was connecting: do not keep it.
          l.socket.destroy();
          throw connectionClosed(new Error('closed by its owner'));
        }
        link = l;
        return l;
      },
      (error: unknown) => {
        connecting = undefined;
        throw error instanceof RedisReplyError ? error : connectionClosed(error as Error);
      },
    );
    return connecting;
  };

  /** The error of an ordered send held back (see the failure contract above). */
  const heldBack = (): Error => connectionClosed(new Error('an earlier ordered send was lost or refused; held back until it is sent again'));

  return {
    async send(payload, count, options) {
      if (options?.ordered !== true) return write(await ready(), payload, count, options?.bytes === true);
      if (holdOrdered) throw heldBack();
      let l: Link;
      try {
        l = await ready();
      } catch (error) {
        holdOrdered = true;
        throw error;
      }
      // An earlier ordered send may have failed while this one waited for the connection.
      if (holdOrdered) throw heldBack();
      return write(l, payload, count, options.bytes === true, true);
    },

    resumeOrdered() {
      holdOrdered = false;
    },

    async call(...args) {
      const [reply] = await write(await ready(), encodeCommands([args]), 1);
      if (reply instanceof RedisReplyError) throw reply;
      return reply ?? null;
    },

    async close() {
      closed = true;
      const s = link?.socket;
      link = undefined;
      if (!s || s.destroyed) return;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.end();
        setTimeout(() => s.destroy(), 1_000).unref();
      });
    },
  };
}
