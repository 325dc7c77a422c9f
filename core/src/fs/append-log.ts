import { open } from 'node:fs/promises';

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
        await (await handle).write(chunk);
      });
    }
    return writing;
  };

  const flush = async (): Promise<void> => {
    await writeOut();
    await (await handle).sync();
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
