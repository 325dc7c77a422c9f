import type pg from 'pg';

/** Rows per page handed on while a COPY is still running. */
const PAGE_ROWS = 1_000;
/** Pages queued before the socket is paused (backpressure on a slow consumer). */
const HIGH_PAGES = 8;
const LOW_PAGES = 2;

interface Pausable {
  pause(): void;
  resume(): void;
}

/**
 * `COPY (…) TO STDOUT` (text format) through `pg`'s custom-query hook: each CopyData message
 * (one row) is split into its text fields here, which costs far less than `pg`'s DataRow
 * path (no per-row result arrays or events). The fields are the same text a query returns,
 * so the same converters apply.
 *
 * Rows are handed on in pages while the COPY runs (`nextPage`), so they die young instead of
 * piling up for the whole chunk; the socket is paused while too many pages wait.
 */
export class CopyOutQuery<T> implements pg.Submittable {
  /** Text fields of the last row (for keyset positions). */
  last: (string | null)[] | undefined;
  /** Rows received so far. */
  count = 0;
  private page: T[] = [];
  private readonly pages: T[][] = [];
  private ended = false;
  private paused = false;
  private waiter: (() => void) | undefined;
  private error: unknown;

  constructor(private readonly text: string, private readonly build: (fields: (string | null)[]) => T, private readonly socket: Pausable) {}

  submit(connection: pg.Connection): void {
    (connection as unknown as { query(text: string): void }).query(this.text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    const fields = parseCopyLine(message.chunk);
    this.last = fields;
    this.count++;
    this.page.push(this.build(fields));
    if (this.page.length >= PAGE_ROWS) {
      this.pages.push(this.page);
      this.page = [];
      if (!this.paused && this.pages.length >= HIGH_PAGES) {
        this.paused = true;
        this.socket.pause();
      }
      this.wake();
    }
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}

  handleError(error: unknown): void {
    this.error ??= error;
  }

  handleReadyForQuery(): void {
    if (this.page.length > 0) this.pages.push(this.page);
    this.page = [];
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /** The next page of rows; `undefined` once the COPY finished. Throws the server's error. */
  async nextPage(): Promise<T[] | undefined> {
    while (this.pages.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.waiter = resolve));
    const page = this.pages.shift();
    if (this.paused && this.pages.length <= LOW_PAGES) {
      this.paused = false;
      this.socket.resume();
    }
    if (page) return page;
    if (this.error !== undefined) throw this.error;
    return undefined;
  }

  /** Waits for the end of the COPY, dropping what is left (an abandoned read). */
  async drain(): Promise<void> {
    while ((await this.nextPage().catch(() => undefined)) !== undefined);
  }
}

/** One COPY text line (with its trailing newline) → fields; `\N` is NULL. */
export function parseCopyLine(chunk: Buffer): (string | null)[] {
  const end = chunk[chunk.length - 1] === 0x0a ? chunk.length - 1 : chunk.length;
  const line = chunk.toString('utf8', 0, end);
  const fields: (string | null)[] = line.split('\t');
  if (line.indexOf('\\') === -1) return fields;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (field === '\\N') fields[i] = null;
    else if (field.indexOf('\\') !== -1) fields[i] = unescapeCopy(field);
  }
  return fields;
}

const SIMPLE_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

function unescapeCopy(field: string): string {
  let out = '';
  for (let i = 0; i < field.length; i++) {
    const ch = field[i]!;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = field[i + 1] ?? '';
    if (SIMPLE_ESCAPES[next] !== undefined) {
      out += SIMPLE_ESCAPES[next];
      i++;
    } else if (next >= '0' && next <= '7') {
      let digits = next;
      while (digits.length < 3 && field[i + 1 + digits.length]! >= '0' && field[i + 1 + digits.length]! <= '7') digits += field[i + 1 + digits.length];
      out += String.fromCharCode(parseInt(digits, 8));
      i += digits.length;
    } else if (next === 'x' && /[0-9a-fA-F]/.test(field[i + 2] ?? '')) {
      let digits = field[i + 2]!;
      if (/[0-9a-fA-F]/.test(field[i + 3] ?? '')) digits += field[i + 3];
      out += String.fromCharCode(parseInt(digits, 16));
      i += 1 + digits.length;
    } else {
      out += next;
      i++;
    }
  }
  return out;
}
