import type { Lsn } from './lsn.js';

/**
 * A decoder of the pgoutput logical replication protocol (versions 1 and 2; see the
 * PostgreSQL docs, "Logical Replication Message Formats"). It turns one CopyData payload
 * into one message and keeps no state: relation caching and tuple conversion belong to
 * the caller, which knows the catalog.
 */

/** Marks an unchanged TOASTed value the server did not send. */
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged TOAST value');

/**
 * One column of a tuple: its text, `null` for SQL NULL, `UNCHANGED_TOAST`, or the bytes of a
 * binary value. Plain values rather than tagged objects: this is allocated per column.
 */
export type TupleValue = string | null | typeof UNCHANGED_TOAST | Buffer;

export interface RelationColumn {
  key: boolean;
  name: string;
  typeOid: number;
  typmod: number;
}

export type PgOutputMessage =
  | { tag: 'begin'; finalLsn: Lsn; commitTime: bigint; xid: number }
  | { tag: 'commit'; flags: number; commitLsn: Lsn; endLsn: Lsn; commitTime: bigint }
  | { tag: 'origin'; lsn: Lsn; name: string }
  | { tag: 'relation'; xid?: number; oid: number; namespace: string; name: string; replicaIdentity: string; columns: RelationColumn[] }
  | { tag: 'type'; xid?: number; oid: number; namespace: string; name: string }
  | { tag: 'insert'; xid?: number; relation: number; after: TupleValue[] }
  | { tag: 'update'; xid?: number; relation: number; before: TupleValue[] | null; beforeKind: 'K' | 'O' | null; after: TupleValue[] }
  | { tag: 'delete'; xid?: number; relation: number; before: TupleValue[]; beforeKind: 'K' | 'O' }
  | { tag: 'truncate'; xid?: number; options: number; relations: number[] }
  | { tag: 'message'; xid?: number; transactional: boolean; lsn: Lsn; prefix: string; content: Buffer }
  | { tag: 'stream-start'; xid: number; first: boolean }
  | { tag: 'stream-stop' }
  | { tag: 'stream-commit'; xid: number; flags: number; commitLsn: Lsn; endLsn: Lsn; commitTime: bigint }
  | { tag: 'stream-abort'; xid: number; subxid: number };

/** The replication protocol's own CopyData messages around the pgoutput payload. */
export type ReplicationMessage =
  | { type: 'xlog'; walStart: Lsn; walEnd: Lsn; payload: Buffer; /** walStart as printed (`X/Y`) */ position: string }
  | { type: 'keepalive'; walEnd: Lsn; replyRequested: boolean };

export function parseReplicationMessage(chunk: Buffer): ReplicationMessage {
  const tag = chunk[0];
  if (tag === 0x77 /* w */) {
    return {
      type: 'xlog',
      walStart: chunk.readBigUInt64BE(1),
      walEnd: chunk.readBigUInt64BE(9),
      payload: chunk.subarray(25),
      position: `${chunk.readUInt32BE(1).toString(16).toUpperCase()}/${chunk.readUInt32BE(5).toString(16).toUpperCase()}`,
    };
  }
  if (tag === 0x6b /* k */) {
    return { type: 'keepalive', walEnd: chunk.readBigUInt64BE(1), replyRequested: chunk[17] === 1 };
  }
  throw new Error(`unexpected replication message type 0x${(tag ?? 0).toString(16)}`);
}

/** Standby Status Update: the positions the client has written, flushed and applied. */
export function standbyStatusUpdate(written: Lsn, flushed: Lsn, clockMicros: bigint, replyRequested = false): Buffer {
  const out = Buffer.alloc(34);
  out[0] = 0x72; // r
  out.writeBigUInt64BE(written, 1);
  out.writeBigUInt64BE(flushed, 9);
  out.writeBigUInt64BE(flushed, 17);
  out.writeBigInt64BE(clockMicros, 25);
  out[33] = replyRequested ? 1 : 0;
  return out;
}

class Reader {
  offset = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    return this.buf[this.offset++]!;
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  i64(): bigint {
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.offset);
    const s = this.buf.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return s;
  }
  /** A copy: the source buffer is `pg`'s read buffer, reused for later messages. */
  bytes(n: number): Buffer {
    const b = Buffer.from(this.buf.subarray(this.offset, this.offset + n));
    this.offset += n;
    return b;
  }
  char(): string {
    return String.fromCharCode(this.u8());
  }
  tuple(): TupleValue[] {
    const n = this.i16();
    const values: TupleValue[] = new Array<TupleValue>(n);
    for (let i = 0; i < n; i++) {
      const kind = this.u8();
      if (kind === 0x74 /* t */) {
        const len = this.i32();
        values[i] = this.buf.toString('utf8', this.offset, this.offset + len);
        this.offset += len;
      } else if (kind === 0x6e /* n */) values[i] = null;
      else if (kind === 0x75 /* u */) values[i] = UNCHANGED_TOAST;
      else if (kind === 0x62 /* b */) values[i] = this.bytes(this.i32());
      else throw new Error(`unknown tuple column kind 0x${kind.toString(16)}`);
    }
    return values;
  }
}

/**
 * Decodes one pgoutput message. `inStream` is true between Stream Start and Stream Stop,
 * where data messages carry the transaction id first (protocol version 2).
 */
export function decodePgOutput(payload: Buffer, inStream: boolean): PgOutputMessage {
  const r = new Reader(payload);
  const tag = r.char();
  switch (tag) {
    case 'B':
      return { tag: 'begin', finalLsn: r.u64(), commitTime: r.i64(), xid: r.u32() };
    case 'C':
      return { tag: 'commit', flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.i64() };
    case 'O':
      return { tag: 'origin', lsn: r.u64(), name: r.cstring() };
    case 'R': {
      const xid = inStream ? r.u32() : undefined;
      const oid = r.u32();
      const namespace = r.cstring();
      const name = r.cstring();
      const replicaIdentity = r.char();
      const n = r.i16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        columns.push({ key: (flags & 1) === 1, name: r.cstring(), typeOid: r.u32(), typmod: r.i32() });
      }
      return {
        tag: 'relation',
        ...(xid !== undefined ? { xid } : {}),
        oid,
        namespace: namespace === '' ? 'pg_catalog' : namespace,
        name,
        replicaIdentity,
        columns,
      };
    }
    case 'Y': {
      const xid = inStream ? r.u32() : undefined;
      return { tag: 'type', ...(xid !== undefined ? { xid } : {}), oid: r.u32(), namespace: r.cstring(), name: r.cstring() };
    }
    case 'I': {
      const xid = inStream ? r.u32() : undefined;
      const relation = r.u32();
      r.char(); // 'N'
      return { tag: 'insert', ...(xid !== undefined ? { xid } : {}), relation, after: r.tuple() };
    }
    case 'U': {
      const xid = inStream ? r.u32() : undefined;
      const relation = r.u32();
      let kind = r.char();
      let before: TupleValue[] | null = null;
      let beforeKind: 'K' | 'O' | null = null;
      if (kind === 'K' || kind === 'O') {
        beforeKind = kind;
        before = r.tuple();
        kind = r.char();
      }
      return { tag: 'update', ...(xid !== undefined ? { xid } : {}), relation, before, beforeKind, after: r.tuple() };
    }
    case 'D': {
      const xid = inStream ? r.u32() : undefined;
      const relation = r.u32();
      const beforeKind = r.char() as 'K' | 'O';
      return { tag: 'delete', ...(xid !== undefined ? { xid } : {}), relation, before: r.tuple(), beforeKind };
    }
    case 'T': {
      const xid = inStream ? r.u32() : undefined;
      const n = r.i32();
      const options = r.u8();
      const relations: number[] = [];
      for (let i = 0; i < n; i++) relations.push(r.u32());
      return { tag: 'truncate', ...(xid !== undefined ? { xid } : {}), options, relations };
    }
    case 'M': {
      const xid = inStream ? r.u32() : undefined;
      const flags = r.u8();
      const lsn = r.u64();
      const prefix = r.cstring();
      const content = r.bytes(r.i32());
      return { tag: 'message', ...(xid !== undefined ? { xid } : {}), transactional: (flags & 1) === 1, lsn, prefix, content };
    }
    case 'S':
      return { tag: 'stream-start', xid: r.u32(), first: r.u8() === 1 };
    case 'E':
      return { tag: 'stream-stop' };
    case 'c':
      return { tag: 'stream-commit', xid: r.u32(), flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.i64() };
    case 'A':
      return { tag: 'stream-abort', xid: r.u32(), subxid: r.u32() };
    default:
      throw new Error(`unknown pgoutput message '${tag}'`);
  }
}
