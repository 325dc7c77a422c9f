import type { Redactor } from '../config/secrets.js';
import type { SyncState } from '../connector/state.js';
import { toStateMessages } from '../connector/state.js';
import { toErrorTrace, toTributaryError, type TributaryError } from '../errors.js';
import type { AirbyteMessage, AirbyteStreamStatusReason, LogLevel, StreamDescriptor } from '../protocol/messages.js';
import type { CommittedCheckpoint, StreamProgress } from '../runtime/pipeline.js';
import { streamKey } from '../protocol/messages.js';
import { estimateCount } from '../protocol/wire.js';
import { isStringTooLong, recordTooLongError, stateTooLongError, stringifyJson } from '../util/json-text.js';
import type { SyncEvent } from '../runtime/sync.js';

/**
 * Writes Airbyte messages as JSON lines. Every string passes the redactor first.
 *
 * When the reader of the output goes away (`tributary read … | head`: the pipe's reader
 * exits), writing fails with EPIPE. Node ignores SIGPIPE, so that error, unhandled, crashed
 * the CLI with a stack trace. It now marks the output `closed`: later messages are dropped,
 * and the command decides whether to stop (a read, whose output is its product) or to go
 * on (a sync, whose output only reports on it).
 */
export class AirbyteWriter {
  private outputClosed = false;
  /** The last write filled the output's buffer: wait for `drained()` before writing more. */
  private full = false;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private redact: Redactor = (t) => t,
  ) {
    // A plain object with a `write` (a test's capture) has no events to listen to.
    if (typeof out.on === 'function') {
      out.on('error', (error: NodeJS.ErrnoException) => {
        // EPIPE, then ERR_STREAM_DESTROYED for any write already under way: the reader is gone.
        if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
        this.outputClosed = true;
      });
    }
  }

  /** Whether the output's reader went away (see the class comment): nothing more is written. */
  get closed(): boolean {
    return this.outputClosed;
  }

  /** Whether the output's buffer is full: a producer awaits `drained()` before writing more. */
  get backlogged(): boolean {
    return this.full && !this.outputClosed;
  }

  /**
   * Resolves once the output took what was written (its 'drain'), or its reader went away.
   * A command that prints a whole source (`tributary read`) awaits it whenever `backlogged`:
   * stdout to a pipe is asynchronous, and without it a read faster than its reader (`read …
   * | tributary write …`, `| head`) held its entire output in memory.
   */
  async drained(): Promise<void> {
    if (!this.backlogged) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.out.off('drain', done);
        this.out.off('error', done);
        this.out.off('close', done);
        resolve();
      };
      this.out.once('drain', done);
      this.out.once('error', done);
      this.out.once('close', done);
    });
    this.full = false;
  }

  setRedactor(redact: Redactor): void {
    this.redact = redact;
  }

  emit(message: AirbyteMessage): void {
    if (this.outputClosed) return;
    let line: string;
    try {
      // stringifyJson: a record nested deeper than JSON.stringify recurses is printed too.
      line = this.redact(stringifyJson(message)!) + '\n';
    } catch (error) {
      throw isStringTooLong(error) ? messageTooLongError(message, error) : error;
    }
    if (!this.out.write(line)) this.full = true;
  }

  log(level: LogLevel, message: string): void {
    this.emit({ type: 'LOG', log: { level, message } });
  }

  error(error: unknown): void {
    this.emit({ type: 'TRACE', trace: { type: 'ERROR', emitted_at: Date.now(), error: toErrorTrace(error) } });
  }

  status(stream: StreamProgress, status: StreamProgress['status'], reasons?: AirbyteStreamStatusReason[]): void {
    const descriptor = stream.namespace ? { name: stream.name, namespace: stream.namespace } : { name: stream.name };
    this.emit({
      type: 'TRACE',
      trace: { type: 'STREAM_STATUS', emitted_at: Date.now(), stream_status: { stream_descriptor: descriptor, status, ...(reasons ? { reasons } : {}) } },
    });
  }

  /**
   * STATE messages for the streams a commit advanced. sourceStats counts the records read
   * since the stream's previous state; destinationStats the ones stored and the ones rejected.
   * `describe` names the stream of each key as the catalog does (see `describeStreams`).
   */
  state(state: SyncState, advanced: CommittedCheckpoint['streams'], describe?: (key: string) => StreamDescriptor): void {
    const stats = (counts: Array<{ records: number; rejected: number }>) => {
      const records = counts.reduce((n, c) => n + c.records, 0);
      const rejected = counts.reduce((n, c) => n + c.rejected, 0);
      return {
        sourceStats: { recordCount: records },
        destinationStats: { recordCount: records - rejected, ...(rejected > 0 ? { rejectedRecordCount: rejected } : {}) },
      };
    };
    for (const message of toStateMessages(state, describe)) {
      if (message.type === 'STREAM') {
        const d = message.stream.stream_descriptor;
        const counts = advanced[streamKey(d.name, d.namespace)];
        if (counts) this.emit({ type: 'STATE', state: { ...message, ...stats([counts]) } });
      } else {
        this.emit({ type: 'STATE', state: { ...message, ...stats(Object.values(advanced)) } });
      }
    }
  }
}

/**
 * A message whose JSON line would be longer than a string can be: for a RECORD or a STATE,
 * the fatal error naming its stream (or the global state) and the limit; for another
 * message, `stringifyJson`'s own error. `cause` is the error serializing it threw.
 */
function messageTooLongError(message: AirbyteMessage, cause: unknown): TributaryError {
  const consequence = `it cannot be printed as an Airbyte ${message.type} message`;
  if (message.type === 'RECORD') {
    return recordTooLongError({ name: message.record.stream, namespace: message.record.namespace ?? undefined }, consequence, cause);
  }
  if (message.type === 'STATE') {
    const state = message.state;
    return stateTooLongError(state.type === 'STREAM' ? state.stream.stream_descriptor : 'global', consequence, cause);
  }
  return toTributaryError(cause);
}

/**
 * Maps runtime events to Airbyte messages (for pipes and log collectors). `describe` names
 * the stream of each state key as the catalog does (see `describeStreams`).
 */
export function airbyteEventPrinter(writer: AirbyteWriter, describe?: (key: string) => StreamDescriptor): (event: SyncEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'log':
        writer.log(event.level, event.fields ? `${event.message} ${JSON.stringify(event.fields)}` : event.message);
        break;
      case 'status':
        writer.status(event.stream, event.status, event.reasons);
        break;
      case 'estimate': {
        const rows = estimateCount(event.rows);
        const bytes = estimateCount(event.bytes);
        writer.emit({
          type: 'TRACE',
          trace: {
            type: 'ESTIMATE',
            emitted_at: Date.now(),
            estimate: {
              name: event.stream.name,
              type: 'STREAM',
              ...(event.stream.namespace ? { namespace: event.stream.namespace } : {}),
              ...(rows !== undefined ? { row_estimate: rows } : {}),
              ...(bytes !== undefined ? { byte_estimate: bytes } : {}),
            },
          },
        });
        break;
      }
      case 'state':
        writer.state(event.state, event.streams, describe);
        break;
    }
  };
}

/**
 * A live table on a terminal: per stream, records read, rate, committed and elapsed time.
 * Redraws in place every `intervalMs`; warnings and errors scroll above it.
 */
export function createProgressDisplay(out: NodeJS.WriteStream, redact: Redactor, intervalMs = 250) {
  const started = Date.now();
  let streams: StreamProgress[] = [];
  const estimates = new Map<string, number>();
  let drawnLines = 0;
  let lastRead = new Map<string, { at: number; read: number; rate: number }>();

  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const elapsed = (): string => {
    const s = Math.floor((Date.now() - started) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  const clear = (): void => {
    if (drawnLines > 0) out.write(`\x1b[${drawnLines}A\x1b[0J`);
    drawnLines = 0;
  };
  const draw = (): void => {
    clear();
    const now = Date.now();
    const next = new Map<string, { at: number; read: number; rate: number }>();
    const lines = streams.map((s) => {
      const prev = lastRead.get(s.key);
      const rate = prev && now > prev.at ? ((s.read - prev.read) * 1000) / (now - prev.at) : 0;
      const smoothed = prev ? prev.rate * 0.6 + rate * 0.4 : rate;
      next.set(s.key, { at: now, read: s.read, rate: smoothed });
      const est = estimates.get(s.key);
      const total = est ? ` / ${fmt(est)}` : '';
      const extra = s.rejected > 0 ? `  quarantined ${fmt(s.rejected)}` : '';
      return `  ${s.key.padEnd(20)} ${s.status.padEnd(10)} ${(fmt(s.read) + total).padStart(22)} rec  ${fmt(smoothed).padStart(9)} rec/s  committed ${fmt(s.committed)}${extra}`;
    });
    lastRead = next;
    lines.push(`  elapsed ${elapsed()}`);
    out.write(lines.join('\n') + '\n');
    drawnLines = lines.length;
  };
  const timer = setInterval(draw, intervalMs);
  timer.unref();

  return {
    onEvent(event: SyncEvent): void {
      if (event.type === 'status' && !streams.includes(event.stream)) streams.push(event.stream);
      if (event.type === 'estimate' && event.rows !== undefined) estimates.set(event.stream.key, event.rows);
      if (event.type === 'log' && (event.level === 'WARN' || event.level === 'ERROR')) {
        clear();
        out.write(redact(`${event.level.toLowerCase()}: ${event.message}`) + '\n');
        draw();
      }
    },
    stop(): void {
      clearInterval(timer);
      draw();
    },
  };
}
