import type { LogLevel } from '../protocol/messages.js';

/** Structured logger handed to connectors. Fields are merged into the log line. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export type LogSink = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export function createLogger(sink: LogSink): Logger {
  return {
    debug: (m, f) => sink('DEBUG', m, f),
    info: (m, f) => sink('INFO', m, f),
    warn: (m, f) => sink('WARN', m, f),
    error: (m, f) => sink('ERROR', m, f),
  };
}

/** Discards everything; for tests and library use without a sink. */
export const silentLogger: Logger = createLogger(() => {});
