import type { AirbyteErrorTraceMessage, FailureType, StreamDescriptor } from './protocol/messages.js';

/**
 * What went wrong, as far as recovery is concerned.
 * - `config`: the user's configuration is wrong; retrying will not help.
 * - `auth`: credentials were refused or expired beyond refresh; the user must act.
 * - `transient`: a retry may succeed (timeouts, 5xx, dropped connections).
 * - `rate_limited`: the peer asked us to slow down; retry after `retryAfterMs`.
 * - `fatal`: a bug or an unrecoverable peer state; stop the sync.
 * - `skippable`: this one record or request failed; the sync may continue without it.
 */
export type ErrorKind = 'config' | 'auth' | 'transient' | 'rate_limited' | 'fatal' | 'skippable';

export interface TributaryErrorOptions {
  /** Shown to users. Must not contain secrets; it is redacted again before printing. */
  userMessage: string;
  /** For operators and bug reports: the peer's answer, the query, the state. */
  internalMessage?: string;
  cause?: unknown;
  /** How long the peer asked us to wait (Retry-After, rate-limit reset). */
  retryAfterMs?: number;
  stream?: StreamDescriptor;
}

/** The one error type of Tributary. Connectors throw it; the runtime classifies by `kind`. */
export class TributaryError extends Error {
  readonly kind: ErrorKind;
  readonly userMessage: string;
  readonly internalMessage: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly stream: StreamDescriptor | undefined;

  constructor(kind: ErrorKind, options: TributaryErrorOptions) {
    super(options.userMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TributaryError';
    this.kind = kind;
    this.userMessage = options.userMessage;
    this.internalMessage = options.internalMessage;
    this.retryAfterMs = options.retryAfterMs;
    this.stream = options.stream;
  }

  get retryable(): boolean {
    return this.kind === 'transient' || this.kind === 'rate_limited';
  }

  static is(value: unknown, kind?: ErrorKind): value is TributaryError {
    return value instanceof TributaryError && (kind === undefined || value.kind === kind);
  }
}

/** Network-level error codes that are worth a retry. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  '57P01', // postgres admin_shutdown
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
]);

/** Wraps anything thrown into a TributaryError; unknown errors are `fatal`. */
export function toTributaryError(error: unknown, fallbackMessage = 'Unexpected error'): TributaryError {
  if (error instanceof TributaryError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) {
    return new TributaryError('transient', { userMessage: `Connection problem (${code})`, internalMessage: message, cause: error });
  }
  return new TributaryError('fatal', { userMessage: fallbackMessage, internalMessage: message, cause: error });
}

export function failureTypeOf(kind: ErrorKind): FailureType {
  switch (kind) {
    case 'config':
    case 'auth':
      return 'config_error';
    case 'transient':
    case 'rate_limited':
      return 'transient_error';
    default:
      return 'system_error';
  }
}

/** The Airbyte TRACE error payload for an error. Apply redaction to the result before printing. */
export function toErrorTrace(error: unknown): AirbyteErrorTraceMessage {
  const e = toTributaryError(error);
  const trace: AirbyteErrorTraceMessage = {
    message: e.userMessage,
    failure_type: failureTypeOf(e.kind),
  };
  const internal = e.internalMessage ?? (e.cause instanceof Error ? e.cause.message : undefined);
  if (internal) trace.internal_message = internal;
  const stack = e.cause instanceof Error ? e.cause.stack : e.stack;
  if (stack) trace.stack_trace = stack;
  if (e.stream) trace.stream_descriptor = e.stream;
  return trace;
}
