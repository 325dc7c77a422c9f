import { describe, expect, it } from 'vitest';
import { parseCopyLine } from '../src/read/copy-out.js';
import { formatLsn, parseLsn } from '../src/cdc/lsn.js';
import { decodePgOutput, parseReplicationMessage, standbyStatusUpdate, UNCHANGED_TOAST } from '../src/cdc/pgoutput.js';
import { parseArrayLiteral, timestamptzToIso } from '../src/schema/values.js';

// Narrow unit checks of the text and wire formats; the real server exercises them end to end.
describe('decoding', () => {
  it('COPY text lines: NULL, escapes, tabs and newlines inside values', () => {
    expect(parseCopyLine(Buffer.from('1\t\\N\ta\\tb\\nc\\\\d\t\\x41\\101\n'))).toEqual(['1', null, 'a\tb\nc\\d', 'AA']);
    expect(parseCopyLine(Buffer.from('plain\ttext\n'))).toEqual(['plain', 'text']);
  });

  it('array literals: quotes, NULLs, nesting and bounds', () => {
    expect(parseArrayLiteral('{a,"b c","d\\"e",NULL,"NULL"}')).toEqual(['a', 'b c', 'd"e', null, 'NULL']);
    expect(parseArrayLiteral('{{1,2},{3,4}}')).toEqual([
      ['1', '2'],
      ['3', '4'],
    ]);
    expect(parseArrayLiteral('[0:1]={7,8}')).toEqual(['7', '8']);
    expect(parseArrayLiteral('{}')).toEqual([]);
    expect(parseArrayLiteral('{(0,0),(1,1);(2,2),(3,3)}', ';')).toEqual(['(0,0),(1,1)', '(2,2),(3,3)']);
  });

  it('LSNs and timestamps', () => {
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
    expect(parseLsn('0/10') < parseLsn('1/0')).toBe(true);
    expect(timestamptzToIso('2024-05-01 10:00:00.123456+00')).toBe('2024-05-01T10:00:00.123456Z');
    expect(timestamptzToIso('infinity')).toBe('infinity');
  });

  it('pgoutput messages and the status update we send', () => {
    const update = Buffer.concat([
      Buffer.from('U'),
      Buffer.from([0, 0, 0, 42]),
      Buffer.from('O'),
      Buffer.from([0, 2, 0x74, 0, 0, 0, 1, 0x31, 0x6e]),
      Buffer.from('N'),
      Buffer.from([0, 2, 0x74, 0, 0, 0, 1, 0x31, 0x75]),
    ]);
    expect(decodePgOutput(update, false)).toEqual({ tag: 'update', relation: 42, beforeKind: 'O', before: ['1', null], after: ['1', UNCHANGED_TOAST] });
    const keepalive = Buffer.alloc(18);
    keepalive[0] = 0x6b;
    keepalive.writeBigUInt64BE(0x100n, 1);
    keepalive[17] = 1;
    expect(parseReplicationMessage(keepalive)).toEqual({ type: 'keepalive', walEnd: 0x100n, replyRequested: true });
    const status = standbyStatusUpdate(0x200n, 0x100n, 5n);
    expect([status.readBigUInt64BE(1), status.readBigUInt64BE(9), status.readBigUInt64BE(17)]).toEqual([0x200n, 0x100n, 0x100n]);
  });
});
