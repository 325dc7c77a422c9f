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
const LF = 0x0a;

/**
 * The lines of a UTF-8 byte stream, without their terminators: `\n`, `\r\n` (one line end,
 * also when a chunk ends between the two) or a lone `\r` (old Mac line ends); a last line
 * without one is a line too. These are the line ends node:readline, which read these lines
 * before, splits at, as do Airbyte's own readers of JSON lines (the Java CDK's stdin scanner
 * splits at `[\r\n]+`, the Python CDK's text stdin has universal newlines). A raw CR cannot
 * be part of a one-line JSON text other than as whitespace between tokens, which no JSON
 * writer puts there, so splitting at it loses no JSON line.
 *
 * A line longer than a string can be (`MAX_STRING_LENGTH`) is refused, once its length
 * passes the limit, with the error `tooLong` builds, thrown to the consumer. (node:readline
 * threw V8's RangeError "Invalid string length" from its input's data handler instead: an
 * uncaught exception that crashed the process with a stack trace.)
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
    return line;
  };
  const keep = (text: string): void => {
    if (text.length === 0) return;
    if (pendingLength + text.length > MAX_STRING_LENGTH) throw refuse(text);
    pieces.push(text);
    pendingLength += text.length;
  };
  /** The previous chunk ended with a CR that ended a line: an LF opening this one completes that CRLF. */
  let afterCr = false;
  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
    if (text.length === 0) continue;
    let start = afterCr && text.charCodeAt(0) === LF ? 1 : 0;
    afterCr = false;
    // The next LF and CR at or after `start` (-1: none left in this chunk). Each is searched
    // for again only once passed, so a chunk without CR costs one extra scan for it.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf !== -1 || cr !== -1) {
      const end = cr !== -1 && (lf === -1 || cr < lf) ? cr : lf;
      yield takeLine(text.slice(start, end));
      start = end === cr && lf === cr + 1 ? cr + 2 : end + 1;
      // A lone CR ending the chunk: the next chunk may open with its LF (a CRLF split in two).
      if (end === cr && start === cr + 1 && start === text.length) afterCr = true;
      if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
    }
    keep(text.slice(start));
  }
  keep(decoder.end());
  if (pendingLength > 0) yield takeLine('');
}
