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

/** A page of rows; `mark` is set when the page ends a chunk (see `CopyOutQuery`). */
export interface CopyPage<T, M> {
  rows: T[];
  mark: M | undefined;
  /** Rows of the COPY up to and including this page. */
  at: number;
}

/**
 * `COPY (…) TO STDOUT` (text format) through `pg`'s custom-query hook: each CopyData message
 * (one row) is decoded here, which costs far less than `pg`'s DataRow path (no per-row
 * result arrays or events). The fields are the same text a query returns, so the same
 * conversions apply (see `scanCopyLine` and `ByteConverter`).
 *
 * Rows are handed on in pages while the COPY runs (`nextPage`), so they die young instead of
 * piling up; the socket is paused while too many pages wait. One COPY may span several
 * chunks: every `chunkRows` rows the page is cut and marked with `mark(lastRow)`, taken right
 * when that row is decoded (the caller may read per-row state there).
 */
export class CopyOutQuery<T, M> implements pg.Submittable {
  /** Rows received so far. */
  count = 0;
  private page: T[] = [];
  private readonly pages: CopyPage<T, M>[] = [];
  private ended = false;
  private paused = false;
  private discarding = false;
  private waiter: (() => void) | undefined;
  private error: unknown;

  constructor(
    private readonly text: string,
    private readonly decode: (line: Buffer) => T,
    private readonly socket: Pausable,
    private readonly chunkRows: number,
    private readonly mark: (last: T) => M,
  ) {}

  submit(connection: pg.Connection): void {
    (connection as unknown as { query(text: string): void }).query(this.text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    this.count++;
    if (this.discarding) return;
    // The chunk is a view into `pg`'s receive buffer, which is reused: decode it now, keep no reference.
    let row: T;
    try {
      row = this.decode(message.chunk);
    } catch (error) {
      // Thrown here it would unwind through `pg`'s parser; the reader gets it after the COPY instead.
      this.error ??= error;
      this.discarding = true;
      return;
    }
    this.page.push(row);
    if (this.count % this.chunkRows === 0) this.flush(this.mark(row));
    else if (this.page.length >= PAGE_ROWS) this.flush(undefined);
  }

  private flush(mark: M | undefined): void {
    this.pages.push({ rows: this.page, mark, at: this.count });
    this.page = [];
    if (!this.paused && this.pages.length >= HIGH_PAGES) {
      this.paused = true;
      this.socket.pause();
    }
    this.wake();
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}

  handleError(error: unknown): void {
    this.error ??= error;
    // `pg` forgets a query on its ErrorResponse (the ReadyForQuery that follows goes to no
    // query), so this is the end of the COPY: wake the reader, or it waits forever.
    this.ended = true;
    this.wake();
  }

  handleReadyForQuery(): void {
    if (this.page.length > 0) this.pages.push({ rows: this.page, mark: undefined, at: this.count });
    this.page = [];
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /** The next page of rows; `undefined` once the COPY finished. Throws the server's (or decoding) error. */
  async nextPage(): Promise<CopyPage<T, M> | undefined> {
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

  /** Waits for the end of the COPY, dropping what is left undecoded (an abandoned read). */
  async drain(): Promise<void> {
    this.discarding = true;
    this.page = [];
    this.pages.length = 0;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
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

/**
 * Finds the fields of one COPY text line (with its trailing newline) without decoding them:
 * field i spans `bounds[2i]` to `bounds[2i + 1]`, its start stored as `~start` (negative) when
 * the field holds a backslash (an escape, or `\N` for NULL). Fields beyond the room in
 * `bounds` are counted, not recorded. Returns the number of fields.
 */
export function scanCopyLine(chunk: Buffer, bounds: Int32Array): number {
  const end = chunk[chunk.length - 1] === 0x0a ? chunk.length - 1 : chunk.length;
  const room = bounds.length >> 1;
  let field = 0;
  let start = 0;
  let escaped = false;
  for (let i = 0; i < end; i++) {
    const c = chunk[i];
    if (c === 0x09) {
      if (field < room) {
        bounds[2 * field] = escaped ? ~start : start;
        bounds[2 * field + 1] = i;
      }
      field++;
      start = i + 1;
      escaped = false;
    } else if (c === 0x5c) escaped = true;
  }
  if (field < room) {
    bounds[2 * field] = escaped ? ~start : start;
    bounds[2 * field + 1] = end;
  }
  return field + 1;
}

/** A field `scanCopyLine` marked as escaped (`start` is `~start`): NULL, or its unescaped text. */
export function escapedField(chunk: Buffer, start: number, end: number): string | null {
  const from = ~start;
  if (end - from === 2 && chunk[from] === 0x5c && chunk[from + 1] === 0x4e) return null;
  return unescapeCopy(chunk.toString('utf8', from, end));
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
