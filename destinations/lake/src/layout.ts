import { replaceLoneSurrogates, TributaryError } from '@tributary/core';
import type { LakeConfig } from './config.js';
import { epochMsTimestampSql } from './duck.js';

/**
 * Object layout of a lake:
 *   data/<stream>/tenant_id=<t>/event_date=<YYYY-MM-DD>/<session>-<n>-<i>.parquet   visible only once in the log
 *   _quarantine/<stream>/<session>-<n>.jsonl                                        refused records + reasons
 *   _tributary/log/<seq>.json, _tributary/checkpoints/<seq>.json                     commit log (commit-log.ts)
 *   _tributary/schemas/<stream>.json                                                 schema registry
 * Partition values are percent-encoded (a tenant named `a/b` is `tenant_id=a%2Fb`), so one
 * tenant's directory can never hold or be reached through another tenant's name.
 */
export type Partitioning = NonNullable<LakeConfig['partitioning']>;

/**
 * The name of a stream's directory (`data/<dir>/`, `_quarantine/<dir>/`) and registry file
 * (`_tributary/schemas/<dir>.json`): the stream name percent-encoded as `encodeURIComponent`
 * does, except that a name encoding to `.` or `..` has its dots encoded too (`%2E`, `%2E%2E`):
 * as path segments they named `data/` itself or its parent, so a stream `..` wrote its
 * partitions into the lake's root, beside `data/`. `decodeURIComponent` gives the name back,
 * and no two names share a directory (`encodeURIComponent` never outputs `%2E`: it leaves
 * `.` alone and encodes `%` as `%25`). An empty name cannot name a directory: it is refused
 * (a config error, which fails the session that opens such a stream).
 */
export function streamDir(stream: string): string {
  const encoded = encodeURIComponent(stream);
  if (encoded === '.' || encoded === '..') return encoded.replaceAll('.', '%2E');
  if (encoded === '') throw new TributaryError('config', { userMessage: 'lake: a stream has an empty name, which cannot name its directory in the lake' });
  return encoded;
}

/** The partition column below the tenant, and its SQL over `eventTimeMs`, a column of epoch milliseconds (DOUBLE). */
export function partitionColumn(partitioning: Partitioning, eventTimeMs: string): { name: string; sql: string } | undefined {
  const ts = epochMsTimestampSql(eventTimeMs);
  if (partitioning === 'tenant_day') return { name: 'event_date', sql: `strftime(${ts}, '%Y-%m-%d')` };
  if (partitioning === 'tenant_month') return { name: 'event_month', sql: `strftime(${ts}, '%Y-%m')` };
  return undefined;
}

/** `tenant_id=<t>[/event_date=<d>]` relative path → its (decoded) values. */
export function parsePartitionPath(relative: string): { tenant: string; partition: string } {
  const parts = relative.split('/');
  const value = (segment: string | undefined): string => decodeURIComponent((segment ?? '').slice((segment ?? '').indexOf('=') + 1));
  const tenantSegment = parts.find((p) => p.startsWith('tenant_id='));
  const partSegment = parts.find((p) => p.startsWith('event_date=') || p.startsWith('event_month='));
  return { tenant: value(tenantSegment), partition: partSegment ? value(partSegment) : '' };
}

/**
 * A partition value as DuckDB's partitioned COPY writes it in a path segment: its UTF-8
 * form (an unpaired surrogate becomes U+FFFD) percent-encoded as `encodeURIComponent`
 * does, plus `!'()*` (checked against DuckDB's own directories by a test).
 */
export function hivePathValue(value: string): string {
  return encodeURIComponent(replaceLoneSurrogates(value)).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Longest file or directory name (bytes) on the file systems the lake writes to (NAME_MAX on Linux and macOS). */
export const MAX_NAME_BYTES = 255;
/**
 * Longest percent-encoded stream name: its registry file `<name>.json` is written through a
 * temp file `.<name>.json.<12 hex digits>.tmp` (core's writeFileAtomic), 23 bytes more.
 */
export const MAX_STREAM_NAME_BYTES = MAX_NAME_BYTES - '.json'.length - '..000000000000.tmp'.length;
/** Tenant ids this long or shorter always fit: one UTF-16 unit encodes to 9 bytes at most (3 UTF-8 bytes, each `%XX`). */
const ALWAYS_FITS = Math.floor((MAX_NAME_BYTES - 'tenant_id='.length) / 9);

/** Whether a tenant's partition directory (`tenant_id=` + its encoded id) is longer than a file name may be. */
export function tenantDirectoryTooLong(tenant: string): boolean {
  return tenant.length > ALWAYS_FITS && 'tenant_id='.length + hivePathValue(tenant).length > MAX_NAME_BYTES;
}
