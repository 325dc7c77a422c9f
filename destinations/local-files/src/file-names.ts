import { replaceLoneSurrogates, TributaryError, type DestinationStream } from '@tributary/core';

/** Longest file name, in bytes, on the file systems this destination writes to (NAME_MAX on Linux and macOS). */
export const MAX_FILE_NAME_BYTES = 255;

const SUFFIX = '.jsonl';

/**
 * `<stream>.jsonl`, with path separators in namespaced keys made safe (`/` and `\` become `_`).
 * The name is used as it is in the data directory, `_quarantine/` and `_staging/`, and as
 * the manifest's key for those files: changing this mapping would orphan existing files.
 */
export function fileName(streamKey: string): string {
  return `${streamKey.replace(/[/\\]/g, '_')}${SUFFIX}`;
}

/**
 * Refuses, with a `config` error naming the stream and the rule, a set of streams that
 * cannot each get a file of its own: a name holding a NUL character (no file name can), a
 * file name longer than MAX_FILE_NAME_BYTES in UTF-8, or two streams whose file names are
 * one name on disk — `/` and `\` map to `_` ("a/b" and "a_b"), and an unpaired UTF-16
 * surrogate is written as U+FFFD ("a\ud800" and "a\udfff"). Two streams on one file would
 * append into each other's lines and miscount the committed lengths. Pure: it runs before
 * `open` creates or writes anything, so a refused sync leaves the directory as it was.
 * (`.`, `..` and the empty name are fine: their files are `..jsonl`, `...jsonl`, `.jsonl`.)
 */
export function checkStreamFileNames(streams: readonly DestinationStream[]): void {
  const streamOfFile = new Map<string, string>();
  for (const { key } of streams) {
    if (key.includes('\0')) {
      throw new TributaryError('config', {
        userMessage: `Stream ${quote(key)} cannot be written to a file: its name holds a NUL character (U+0000), which no file name may hold; rename the stream or leave it out`,
      });
    }
    const name = fileName(key);
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > MAX_FILE_NAME_BYTES) {
      throw new TributaryError('config', {
        userMessage: `Stream ${quote(key)} has too long a name for its file: ${quote(name)} takes ${bytes} bytes in UTF-8, and a file name may take at most ${MAX_FILE_NAME_BYTES} (stream names up to ${MAX_FILE_NAME_BYTES - SUFFIX.length} bytes fit); rename the stream or leave it out`,
      });
    }
    const onDisk = replaceLoneSurrogates(name);
    const other = streamOfFile.get(onDisk);
    if (other !== undefined && other !== key) {
      throw new TributaryError('config', {
        userMessage: `Streams ${quote(other)} and ${quote(key)} would both be written to ${onDisk}; select only one of them`,
      });
    }
    streamOfFile.set(onDisk, key);
  }
}

/** A stream name for a message: JSON-quoted (so a NUL or a lone surrogate shows as an escape), long ones cut. */
function quote(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 60)}…(${name.length} characters)` : name);
}
