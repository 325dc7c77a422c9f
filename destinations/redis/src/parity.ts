import { hasLoneSurrogate, marksDeleted, replaceLoneSurrogates, TributaryError, type RecordData } from '@tributary/core';
import type { LakeRow } from '@tributary/destination-lake';
import type { StreamMapping } from './config.js';
import {
  decodeEntityFields,
  decodeKeyPart,
  encodeKeyPart,
  entityKeyHeads,
  groupField,
  isNewerVersion,
  sameTimeReplaces,
  normalizeLsn,
  orderSegmentNanos,
  subMillisecondNanos,
  versionOfValue,
  type DecodedGroup,
  type VersionOrder,
} from './layout.js';
import { toOps } from './records.js';
import { hgetallMany, toRedisError, type Redis } from './redis-client.js';
import { createShapeTable, featureShapesKey, loadShapesFor, type ShapeTable } from './shapes.js';

/**
 * Online/offline parity: the latest values the offline store (the event lake) holds for each
 * entity must be the values the online store (Redis) serves. Both are fed the same records;
 * the lake keeps every version and answers "latest per key as of T", Redis keeps only the
 * newest by event time. This module compares the two for one stream and names every
 * difference; it reads Redis only. A key whose newest offline row is a delete must be absent
 * online (no value, an expired one, or a tombstone).
 */

/** One offline row: the source record as the lake returns it, and when the lake ingested it. */
export interface OfflineRow {
  /** The record's fields (the lake's payload, under the record's field names). */
  readonly record: RecordData;
  /**
   * The lake's ingest time, epoch ms. Orders rows of one Redis key at the same place in the
   * order of versions (the later-ingested one is expected, as in the lake and in Redis, where
   * the later-applied one wins); without it the later row of `offline` is. Not used for
   * TTLs: a group's TTL runs from when the Redis writer wrote it, which the lake's ingest
   * time does not tell (the two syncs run apart).
   */
  readonly ingestTimeMs?: number;
  /** The row's source position (the lake's `source_position`): a CDC log position orders versions as in Redis. */
  readonly position?: string | null;
  /** The row is a delete (the lake's op `delete`). A record whose `_tributary_op` is `d` is one without it. */
  readonly deleted?: boolean;
  /**
   * The row is a snapshot read (the lake's op `snapshot`; a record whose `_tributary_op` is
   * `r` is one without it): its position is its replication slot's, not the log's.
   */
  readonly snapshot?: boolean;
}

/**
 * A row of the lake's point-in-time read (`readLatestAsOf`, with `includeDeleted`) as an
 * offline row. The lake keeps no `_tributary_*` field in the payload: a delete's commit time
 * (which the Redis writer takes as its event time when the record has no event time field)
 * is the row's event time, which the lake took from the commit time for a CDC stream.
 */
export function offlineRowFromLake(row: LakeRow): OfflineRow {
  const deleted = row.op === 'delete';
  return {
    record: deleted ? { _tributary_commit_time: row.event_time, ...row.payload } : row.payload,
    ingestTimeMs: Date.parse(row.ingest_time),
    position: row.source_position,
    deleted,
    snapshot: row.op === 'snapshot',
  };
}

export type ParityDifferenceKind =
  /** The lake has the entity; Redis has no live value for its group. */
  | 'missing_online'
  /** Redis serves the entity; the lake has no row for it as of T, or its latest row is a delete. */
  | 'missing_offline'
  /** Both have it, with different event times (Redis stale, or the lake behind). */
  | 'event_time_differs'
  /** Same event time, different feature values. */
  | 'values_differ';

/** An entity of the report: its tenant, id and Redis key. */
export interface ParityEntity {
  tenant: string;
  entityId: string;
  /** The Redis key of the entity. */
  key: string;
}

export interface ParityDifference extends ParityEntity {
  kind: ParityDifferenceKind;
  /** Event times to the nanosecond when they have digits below the millisecond (`…00.000600Z`). */
  offlineEventTime?: string;
  onlineEventTime?: string;
  /** CDC positions (`X/Y`), when the version has one: they order versions before event times. */
  offlinePosition?: string;
  onlinePosition?: string;
  /** For `values_differ`: the features whose values differ. */
  features?: string[];
}

export interface ParityReport {
  stream: string;
  entityType: string;
  featureGroup: string;
  /** Entities the lake holds (latest row as of T, after the same mapping the sync used; deleted ones left out). */
  offlineEntities: number;
  /** Entities of the group Redis serves (live, within the compared tenants). */
  onlineEntities: number;
  matching: number;
  /**
   * Offline entities whose group Redis holds as that same version with its expiry passed (the
   * writer's TTL: from when it wrote the version): expected, not a difference.
   */
  expired: number;
  /**
   * Offline entities of a group with TTL whose key is gone from Redis and whose version's
   * event time is at least the TTL before now: Redis may have written that version more than
   * the TTL ago and let the key expire, or never written it — the lake cannot tell which (it
   * does not know when Redis wrote). Not counted as differences; listed in
   * `expiryUnknownSamples`. (A version whose event time is less than the TTL before now
   * cannot have expired — Redis writes a version no earlier than its event time — so its
   * absence is `missing_online`.)
   */
  expiryUnknown: number;
  /** The first of those entities (at most `sampleLimit`). */
  expiryUnknownSamples: (ParityEntity & { offlineEventTime: string })[];
  /** Offline rows the Redis mapping rejects (no entity id, tenant or event time): Redis never stored them either. */
  unmapped: number;
  /** Entities whose latest offline row is a delete and that Redis does not serve (a tombstone, or no value): expected, not a difference. */
  deleted: number;
  counts: Record<ParityDifferenceKind, number>;
  /** The first differences found (at most `sampleLimit`). */
  samples: ParityDifference[];
  /** True when there is no difference at all. */
  ok: boolean;
}

export interface ParityOptions {
  client: Redis;
  /** Key prefix of the destination (`key_prefix`, default `trib`). */
  prefix: string;
  /** The stream's Redis mapping, resolved exactly as the sync resolved it. */
  mapping: StreamMapping;
  /** The lake's latest rows per key as of T, for this stream. */
  offline: Iterable<OfflineRow>;
  /**
   * Compare only this tenant (its online keys; the offline rows should be filtered to it too).
   * Offline rows are assigned to tenants as the writer assigns them (`tenantOf` in
   * records.ts): a row whose tenant field is empty or missing belongs to `default_tenant`.
   * Not '' (a config error): the writer never stores an empty tenant.
   */
  tenant?: string;
  /** Clock, epoch ms (default now): expiry of online groups, compared with the expiry the writer stored. */
  now?: number;
  /** How many differences to keep as samples (default 20). */
  sampleLimit?: number;
}

interface Expected extends VersionOrder {
  tenant: string;
  entityId: string;
  values: Record<string, unknown>;
  deleted: boolean;
  ingestTimeMs: number | undefined;
  /** See OfflineRow.snapshot. */
  snapshot: boolean;
}

/** Keys read per pipeline round trip. */
const CHUNK = 500;

export async function compareOnlineOffline(options: ParityOptions): Promise<ParityReport> {
  const { client, prefix, mapping } = options;
  if (options.tenant === '') {
    throw new TributaryError('config', {
      userMessage: `The feature store has no empty tenant: records whose tenant field "${mapping.tenantField}" is empty are stored under default_tenant${mapping.defaultTenant !== undefined ? ` ("${mapping.defaultTenant}")` : ' (none is configured: they are rejected)'}; compare that tenant instead`,
    });
  }
  const shapes = { registry: featureShapesKey(prefix), table: createShapeTable() };
  const now = options.now ?? Date.now();
  const sampleLimit = options.sampleLimit ?? 20;
  const report: ParityReport = {
    stream: mapping.streamKey,
    entityType: mapping.entityType,
    featureGroup: mapping.group,
    offlineEntities: 0,
    onlineEntities: 0,
    matching: 0,
    expired: 0,
    expiryUnknown: 0,
    expiryUnknownSamples: [],
    unmapped: 0,
    deleted: 0,
    counts: { missing_online: 0, missing_offline: 0, event_time_differs: 0, values_differ: 0 },
    samples: [],
    ok: true,
  };
  const differ = (difference: ParityDifference): void => {
    report.counts[difference.kind]++;
    report.ok = false;
    if (report.samples.length < sampleLimit) report.samples.push(difference);
  };

  // The offline side through the write path's own mapping (toOps), so key, tenant, event
  // time and the stored feature set are derived exactly as the destination derives them.
  // Per key the newest version wins (`isNewerVersion`: the write script's order) and, on a
  // tie, the later-ingested row (else the later row) — as in the lake, and in Redis, where
  // of two different versions at one place in that order the later applied wins.
  // A delete is a version too (Redis stores a tombstone): newest, it makes the key expected absent.
  const expected = new Map<string, Expected>();
  const rows = [...options.offline];
  const { ops, rejected } = toOps(
    rows.map((r) => asWritten(r, mapping)),
    mapping,
    entityKeyHeads(prefix, mapping.entityType),
  );
  report.unmapped = rejected.length;
  // In row order; a row that moved its key (a CDC update with its before-image) has two writes.
  for (const write of ops) {
    const i = write.index;
    const record = rows[i]!.record;
    const entry: Expected = {
      tenant: write.tenant,
      entityId: write.entityId,
      eventTimeMs: write.eventTimeMs,
      lsn: normalizeLsn(rows[i]!.position ?? record._tributary_position),
      nanos: orderSegmentNanos(write.order),
      values: write.features,
      deleted: write.deleted,
      ingestTimeMs: rows[i]!.ingestTimeMs,
      snapshot: rows[i]!.snapshot === true || record._tributary_op === 'r',
    };
    if (options.tenant !== undefined && entry.tenant !== options.tenant) continue;
    const seen = expected.get(write.key);
    if (seen === undefined || isNewerVersion(entry, seen) || (!isNewerVersion(seen, entry) && replacesAtSamePlace(entry, seen))) expected.set(write.key, entry);
  }
  for (const want of expected.values()) if (!want.deleted) report.offlineEntities++;

  // Offline → online: one HGETALL per entity, pipelined in chunks.
  const field = groupField(mapping.group);
  const keys = [...expected.keys()];
  for (let start = 0; start < keys.length; start += CHUNK) {
    const chunk = keys.slice(start, start + CHUNK);
    const replies = await hgetallChecked(client, chunk, shapes);
    for (let i = 0; i < chunk.length; i++) {
      const key = chunk[i]!;
      const want = expected.get(key)!;
      const reply = replies[i]!;
      const group = decodeEntityFields(reply, shapes.table).get(mapping.group);
      const live = group !== undefined && group.deleted !== true && !expiredAt(group, now);
      if (want.deleted) {
        if (live) differ({ kind: 'missing_offline', tenant: want.tenant, entityId: want.entityId, key, onlineEventTime: storedEventTime(reply, field) });
        else report.deleted++;
        continue;
      }
      const base = { tenant: want.tenant, entityId: want.entityId, key, offlineEventTime: isoEventTime(want.eventTimeMs, want.nanos) };
      if (group === undefined || group.deleted === true) {
        // No value: the group's field is absent (a key holding other groups keeps its expired
        // ones: it was never written), or a tombstone. Only a key that is gone entirely may have
        // expired, and only if Redis can have written the version at least the TTL ago.
        if (reply.length === 0 && mapping.ttlMs > 0 && want.eventTimeMs + mapping.ttlMs <= now) {
          report.expiryUnknown++;
          if (report.expiryUnknownSamples.length < sampleLimit) report.expiryUnknownSamples.push(base);
        } else {
          differ({ kind: 'missing_online', ...base });
        }
        continue;
      }
      // Versions compare in the writer's order, to the nanosecond and by CDC position: the
      // millisecond alone called two changes 0.5 ms apart (or two of one transaction) the same.
      const stored = versionOfValue(rawField(reply, field)!)!;
      if (isNewerVersion(want, stored) || isNewerVersion(stored, want)) {
        // A snapshot read's position is its replication slot's (PostgreSQL: the slot's
        // consistent point), and the two stores are fed by two syncs, each with its own slot,
        // so one row read by both snapshots has two positions (a change's position is the
        // WAL's, the same in both). When either version is a snapshot read (Redis: when it
        // keeps `_tributary_op` as a feature), versions apart only by position, with the same
        // event time and values, are the same version; two changes are two versions.
        const snapshotRead = want.snapshot || group.features._tributary_op === 'r';
        const sameTime = want.eventTimeMs === stored.eventTimeMs && want.nanos === stored.nanos;
        if (!(snapshotRead && sameTime && group.deleted !== true && differingFeatures(want.values, group.features).length === 0)) {
          differ({ kind: 'event_time_differs', ...base, onlineEventTime: isoEventTime(stored.eventTimeMs, stored.nanos), ...positions(want, stored) });
          continue;
        }
      }
      // The very version the lake holds, its expiry (the writer's: TTL from its write) passed.
      if (!live) {
        report.expired++;
        continue;
      }
      const features = differingFeatures(want.values, group.features);
      if (features.length > 0) differ({ kind: 'values_differ', ...base, onlineEventTime: isoEventTime(stored.eventTimeMs, stored.nanos), features });
      else report.matching++;
    }
  }

  // Online → offline: every entity of the type (in the tenant) that serves the group.
  for await (const batch of scanEntityKeys(client, prefix, mapping.entityType, options.tenant)) {
    const replies = await hgetallChecked(client, batch, shapes);
    for (let i = 0; i < batch.length; i++) {
      const group = decodeEntityFields(replies[i]!, shapes.table).get(mapping.group);
      if (group === undefined || group.deleted === true || expiredAt(group, now)) continue;
      report.onlineEntities++;
      const key = batch[i]!;
      if (expected.has(key)) continue;
      const [tenant, entityId] = keyParts(key, prefix);
      differ({ kind: 'missing_offline', tenant, entityId, key, onlineEventTime: storedEventTime(replies[i]!, groupField(mapping.group)) });
    }
  }
  return report;
}

/**
 * An offline row's record as the writer would map it, its `deleted` flag deciding (the lake's
 * op, which already applied `deleted_field` and a CDC op's precedence over it): a delete gets
 * `_tributary_op` `d`; a live row whose deletion field is set (a CDC change of a soft-deleted
 * row: the lake keeps no `_tributary_op` in the payload) gets the op it had, so the deletion
 * field does not make it a delete again. Rows without the flag are mapped as they are.
 */
function asWritten(row: OfflineRow, mapping: StreamMapping): RecordData {
  const { record } = row;
  if (row.deleted === true) return record._tributary_op === 'd' ? record : { ...record, _tributary_op: 'd' };
  const field = mapping.deletedField;
  if (row.deleted === false && field !== undefined && record._tributary_op === undefined && marksDeleted(record[field])) {
    return { ...record, _tributary_op: row.snapshot === true ? 'r' : 'u' };
  }
  return record;
}

/**
 * Whether row `a`, at the same place in the order as `b` (which came before it in `offline`),
 * is the version Redis keeps: the write script's rule (`sameTimeReplaces`), where two rows
 * without position are applied in the order the lake ingested them (ingest time, when both
 * rows have one; else their order here).
 */
function replacesAtSamePlace(a: Expected, b: Expected): boolean {
  if (a.lsn !== undefined || b.lsn !== undefined) return sameTimeReplaces(a, b);
  return a.ingestTimeMs === undefined || b.ingestTimeMs === undefined || a.ingestTimeMs >= b.ingestTimeMs;
}

/** The writer's expiry rule (write-script.ts): a group is expired once its stored expiry is not after now. */
function expiredAt(group: DecodedGroup, now: number): boolean {
  return group.expiresAtMs !== undefined && group.expiresAtMs <= now;
}

/** The value of one field in HGETALL's raw reply (field, value, field, value, …). */
function rawField(flat: readonly Buffer[], field: string): Buffer | undefined {
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i]!.toString('utf8') === field) return flat[i + 1];
  return undefined;
}

/** An event time as ISO-8601, with the digits below the millisecond when there are any (`…00.000600Z`, `…00.000000123Z`). */
function isoEventTime(ms: number, nanos: number): string {
  const iso = new Date(ms).toISOString();
  if (nanos === 0) return iso;
  return `${iso.slice(0, -1)}${String(nanos).padStart(6, '0').replace(/(000)+$/, '')}Z`;
}

/** The event time of a group's stored value (in `flat`, HGETALL's reply, which holds it), to the nanosecond. */
function storedEventTime(flat: readonly Buffer[], field: string): string {
  const version = versionOfValue(rawField(flat, field)!)!;
  return isoEventTime(version.eventTimeMs, version.nanos);
}

/** The CDC positions of two versions that differ, as `X/Y`, for the report. */
function positions(offline: VersionOrder, online: VersionOrder): { offlinePosition?: string; onlinePosition?: string } {
  const text = (lsn: string): string => `${lsn.slice(0, 8).replace(/^0+(?=.)/, '')}/${lsn.slice(8).replace(/^0+(?=.)/, '')}`;
  return { ...(offline.lsn !== undefined ? { offlinePosition: text(offline.lsn) } : {}), ...(online.lsn !== undefined ? { onlinePosition: text(online.lsn) } : {}) };
}

/** HGETALL of each key, with the shapes their values name loaded into `shapes.table`. */
async function hgetallChecked(client: Redis, keys: readonly string[], shapes: { registry: string; table: ShapeTable }): Promise<Buffer[][]> {
  try {
    const replies = await hgetallMany(client, keys);
    await loadShapesFor(client, shapes.registry, shapes.table, replies);
    return replies;
  } catch (error) {
    throw toRedisError(error, 'parity');
  }
}

/** SCANs the keys of one entity type (of one tenant, or of all), in batches. */
async function* scanEntityKeys(client: Redis, prefix: string, entityType: string, tenant: string | undefined): AsyncGenerator<string[]> {
  const glob = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&');
  const tenantPart = tenant === undefined ? '*' : glob(encodeKeyPart(tenant));
  const match = `${glob(prefix)}:${tenantPart}:${glob(encodeKeyPart(entityType))}:*`;
  const wantedParts = prefix.split(':').length + 3;
  let cursor = '0';
  do {
    let reply: [string, string[]];
    try {
      reply = (await client.scan(cursor, 'MATCH', match, 'COUNT', 1000)) as [string, string[]];
    } catch (error) {
      throw toRedisError(error, 'parity');
    }
    cursor = reply[0];
    // '*' also matches ':', so a key of another shape (a longer prefix) could match: keep
    // only keys with exactly prefix + tenant + type + id parts.
    const keys = reply[1].filter((key) => key.split(':').length === wantedParts);
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

function keyParts(key: string, prefix: string): [string, string] {
  const parts = key.slice(prefix.length + 1).split(':');
  return [decodeKeyPart(parts[0] ?? ''), decodeKeyPart(parts[2] ?? '')];
}

/** Feature names whose values differ, `_tributary_*`/`_ab_*` bookkeeping fields left out. */
function differingFeatures(offline: Record<string, unknown>, online: Record<string, unknown>): string[] {
  const lake = keyedAsUtf8(offline);
  const redis = keyedAsUtf8(online);
  const names = new Set([...lake.keys(), ...redis.keys()]);
  const out: string[] = [];
  for (const name of names) {
    if (name.startsWith('_tributary_') || name.startsWith('_ab_')) continue;
    if (!sameValue(lake.get(name), redis.get(name))) out.push(name);
  }
  return out.sort();
}

/**
 * An object's entries under their names as UTF-8 carries them (`asUtf8`): the lake stores a
 * name holding a lone surrogate with U+FFFD in its place. Names are unchanged otherwise.
 */
function keyedAsUtf8(object: Record<string, unknown>): Map<string, unknown> {
  return new Map(Object.entries(object).map(([name, value]) => [asUtf8(name), value]));
}

/**
 * Text as a store that keeps UTF-8 holds it: each lone UTF-16 surrogate replaced by U+FFFD.
 * Redis keeps such text as the record had it (value-codec.ts); the event lake (Parquet,
 * UTF-8) stores U+FFFD instead — so the two are the same value, not a difference.
 */
function asUtf8(text: string): string {
  return hasLoneSurrogate(text) ? replaceLoneSurrogates(text) : text;
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Value equality across the two stores' representations: the lake returns typed columns
 * (numbers, timestamps rendered as ISO strings with its own precision and separator), Redis
 * the record's JSON. Null and absent are the same (a lake column the record did not have
 * reads as null); numbers compare by value; two date-time strings compare as instants, to
 * the microsecond; text (values and object keys) compares as UTF-8 holds it, a lone UTF-16
 * surrogate as U+FFFD (`asUtf8`).
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === undefined || a === null) return b === undefined || b === null;
  if (b === undefined || b === null) return false;
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return Number(a) === Number(b);
  if (typeof a === 'string' && typeof b === 'string') {
    if (a === b) return true;
    // A lone surrogate one store could not keep (the lake's UTF-8 has U+FFFD there): compare as UTF-8.
    if (hasLoneSurrogate(a) || hasLoneSurrogate(b)) return asUtf8(a) === asUtf8(b);
    if (ISO_DATE_TIME.test(a) && ISO_DATE_TIME.test(b)) {
      // To the microsecond, what both stores keep (the lake's timestamps have microseconds):
      // Date.parse alone stops at the millisecond, so two instants 0.5 ms apart were equal.
      const utc = (s: string): number => Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(s) ? s.replace(' ', 'T') : `${s.replace(' ', 'T')}Z`);
      const micros = (s: string): number => Math.floor(subMillisecondNanos(s) / 1000);
      return utc(a) === utc(b) && micros(a) === micros(b);
    }
    return false;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  }
  if (typeof a === 'object' && typeof b === 'object') {
    const x = keyedAsUtf8(a as Record<string, unknown>);
    const y = keyedAsUtf8(b as Record<string, unknown>);
    return [...new Set([...x.keys(), ...y.keys()])].every((k) => sameValue(x.get(k), y.get(k)));
  }
  return a === b;
}
