import { StringDecoder } from 'node:string_decoder';
import { MAX_STRING_LENGTH } from './json-text.js';

/** What `textLines` knows of a line too long to be a string, for the caller's error. */
export interface LineTooLong {
  /** 1-based number of the line. */
  lineNumber: number;
  /** The line's first characters (up to 64 KiB), e.g. to name what the line was about. */
  head: string;
}

const HEAD_LENGTH = 64 * 1024;

/**
 * The lines of a UTF-8 byte stream, without their terminators (`\n` or `\r\n`; a last line
 * without one is a line too). A line longer than a string can be (`MAX_STRING_LENGTH`) is
 * refused, once its length passes the limit, with the error `tooLong` builds, thrown to the
 * consumer. (node:readline threw V8's RangeError "Invalid string length" from its input's
 * data handler instead: an uncaught exception that crashed the process with a stack trace.)
 */
export async function* textLines(input: AsyncIterable<Buffer | string>, tooLong: (line: LineTooLong) => Error): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  /** The current line's text so far (read from earlier chunks), and its length. */
  let pieces: string[] = [];
  let pendingLength = 0;
  let lineNumber = 0;
  const refuse = (text: string): Error => {
    let head = '';
    for (const piece of [...pieces, text]) {
      head += piece.slice(0, HEAD_LENGTH - head.length);
      if (head.length === HEAD_LENGTH) break;
    }
    return tooLong({ lineNumber: lineNumber + 1, head });
  };
  const takeLine = (tail: string): string => {
    if (pendingLength + tail.length > MAX_STRING_LENGTH) throw refuse(tail);
    const line = pieces.length === 0 ? tail : pieces.join('') + tail;
    pieces = [];
    pendingLength = 0;
    lineNumber++;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  };
  const keep = (text: string): void => {
    if (text.length === 0) return;
    if (pendingLength + text.length > MAX_STRING_LENGTH) throw refuse(text);
    pieces.push(text);
    pendingLength += text.length;
  };
  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      yield takeLine(text.slice(start, end));
      start = end + 1;
    }
    keep(text.slice(start));
  }
  keep(decoder.end());
  if (pendingLength > 0) yield takeLine('');
}
