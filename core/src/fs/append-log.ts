import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDirectory } from './atomic-file.js';

/** Buffered lines are written out once they reach this many characters (between flushes). */
const WRITE_AT_CHARS = 1 << 20;

/**
 * A JSON lines file that callers append to synchronously (e.g. from a per-record callback)
 * and make durable at the points that need it. Contract: once `flush` resolves, every line
 * appended before the call is written and fsynced, so a crash of the process or the machine
 * cannot lose it; a failed write is rethrown by the next `flush` (or `close`), never lost
 * silently. Lines are written in append order; the file is opened for appending, so earlier
 * contents stay.
 */
export interface AppendLog {
  append(line: string): void;
  flush(): Promise<void>;
  /** Flushes, then closes the file. */
  close(): Promise<void>;
}

/**
 * Writes all of `chunk`. One `write` may take only part of it and report no error (a full
 * disk, a file size limit): the rest is written by further calls, and the error that stops
 * them, if any, is thrown.
 */
async function writeAll(file: FileHandle, chunk: string): Promise<void> {
  const bytes = Buffer.from(chunk, 'utf8');
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset);
    if (!(bytesWritten > 0)) throw Object.assign(new Error(`write to the append log took no bytes (${bytes.length - offset} left)`), { code: 'EIO' });
    offset += bytesWritten;
  }
}

export function openAppendLog(path: string): AppendLog {
  // Opened at once (the file exists from the start, as the audit trail always did); an
  // error to open it surfaces at the first flush.
  const handle = open(path, 'a');
  handle.catch(() => undefined);
  let buffered = '';
  /** Writes in flight, in order; rejected from the first that failed on. */
  let writing: Promise<void> = Promise.resolve();

  const writeOut = (): Promise<void> => {
    const chunk = buffered;
    buffered = '';
    if (chunk.length > 0) {
      writing = writing.then(async () => {
        await writeAll(await handle, chunk);
      });
    }
    return writing;
  };

  /**
   * The file may have been created by `open`: its directory entry is durable only once the
   * directory is fsynced, so the first flush does that too (a machine crash could otherwise
   * lose the whole file, fsynced lines included).
   */
  let directorySynced: Promise<void> | undefined;

  const flush = async (): Promise<void> => {
    await writeOut();
    await (await handle).sync();
    directorySynced ??= fsyncDirectory(dirname(path)).catch((error: unknown) => {
      directorySynced = undefined;
      throw error;
    });
    await directorySynced;
  };

  return {
    append(line) {
      buffered += line.endsWith('\n') ? line : `${line}\n`;
      // Written in the background; a failure surfaces at the next flush.
      if (buffered.length >= WRITE_AT_CHARS) writeOut().catch(() => undefined);
    },
    flush,
    async close() {
      try {
        await flush();
      } finally {
        await (await handle.catch(() => undefined))?.close().catch(() => undefined);
      }
    },
  };
}
