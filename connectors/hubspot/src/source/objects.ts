/**
 * Reading one CRM object type (contacts, companies, deals…).
 *
 * Full refresh lists the live objects page by page (`GET /crm/v3/objects/{type}`, id order)
 * and checkpoints the list cursor after every page.
 *
 * Incremental has two phases per sync, each checkpointed after every page:
 *
 * 1. Changes, by search on the modification property (`lastmodifieddate` for contacts,
 *    `hs_lastmodifieddate` for the others), in (timestamp, id) order. Search honours one
 *    sort and returns ties in no particular order, and refuses to page past 10,000 results,
 *    so the connector never pages with `after`: every request is a fresh keyset query from
 *    the last record emitted, which therefore needs at most one page (≤ 200 results) no
 *    matter how many records match in total. The query asks for the rest of that record's
 *    tie (`mod = ts AND hs_object_id > id`) OR later changes (`ts < mod <= horizon`), sorted
 *    by mod. A full page may cut its last timestamp, whose members arrived in any order, so
 *    that timestamp is not emitted from it: the next query fetches it again, whole. Only a
 *    timestamp that fills a page on its own (hundreds of records in one millisecond, common
 *    after imports and workflows) is read as a tie, by id.
 *    The window ends at a horizon of `now − search_lag_seconds`: a record changed within
 *    that look-back may not be in the search index yet, so it is left to the next sync,
 *    whose window covers it once indexed. A record changed while a sync runs gets a
 *    timestamp above the horizon and is read by the next sync. Nothing is read twice and
 *    nothing is skipped, as long as the index lags by less than the look-back.
 * 2. Deletions: search never returns archived objects and archiving does not bump the
 *    modification date, so the archived listing (`archived=true`) is read and objects
 *    archived since the previous sync's horizon, up to this sync's, are emitted with
 *    `archived: true`. The horizon matters here too: until the index has an archive, search
 *    still returns the object as live, and that version must not follow its deletion.
 *    Ids merged away are neither archived nor searchable: phase 1 deletes them after the
 *    record that lists them in `hs_merged_object_ids` (see `withMergedAway`).
 *
 * State (per stream): `{ position?: { ts, id }, archived: { since, until?, after? } }` or, for
 * an interrupted full refresh, `{ full_refresh: true, after }`.
 */
import { TributaryError, checkpoint, recordPage, streamStatus, type RecordData, type SourceMessage, type StateBlob } from '@tributary/core';
import type { ApiObject, HubspotApi, SearchBody } from '../api/client.js';
import { toRecord } from './schema.js';

export const LIST_PAGE_SIZE = 100;
export const SEARCH_PAGE_SIZE = 200;

export interface Position {
  /** Modification time, epoch ms. */
  ts: number;
  /** hs_object_id, as a decimal string. */
  id: string;
}

export interface IncrementalState {
  position?: Position;
  archived: { since: number; until?: number; after?: string };
}

export interface ObjectStreamOptions {
  objectType: string;
  /** Property name -> HubSpot type, from the properties API. */
  types: ReadonlyMap<string, string>;
  /** Property name -> its top-level field (`property_columns`, see `propertyFields`); undefined: none. */
  fields?: ReadonlyMap<string, string>;
  /** The modification property of this object type. */
  modifiedProperty: string;
  /** The first sync reads changes after this instant (epoch ms, default 0). */
  startMs: number;
  searchLagMs: number;
  /** Overridable for tests (default Date.now). */
  now?: () => number;
}

function invalidState(stream: string): TributaryError {
  return new TributaryError('config', {
    userMessage: `The saved state of stream "${stream}" was not written by this version of the HubSpot source; reset the stream's state`,
    stream: { name: stream },
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseIncrementalState(blob: StateBlob | undefined, stream: string, startMs: number): IncrementalState {
  if (blob === undefined || blob.full_refresh === true || Object.keys(blob).length === 0) return { archived: { since: startMs } };
  const { position, archived } = blob as Record<string, unknown>;
  const out: IncrementalState = { archived: { since: startMs } };
  if (position !== undefined) {
    if (!isObject(position) || typeof position.ts !== 'number' || typeof position.id !== 'string' || !/^\d+$/.test(position.id)) throw invalidState(stream);
    out.position = { ts: position.ts, id: position.id };
  }
  if (!isObject(archived) || typeof archived.since !== 'number') throw invalidState(stream);
  out.archived = { since: archived.since };
  if (typeof archived.until === 'number') out.archived.until = archived.until;
  if (typeof archived.after === 'string') out.archived.after = archived.after;
  return out;
}

function stateBlob(state: IncrementalState): StateBlob {
  return JSON.parse(JSON.stringify(state)) as StateBlob;
}

function modifiedAt(object: ApiObject, property: string): number {
  const raw = object.properties[property];
  const ms = raw ? (/^\d+$/.test(raw) ? Number(raw) : Date.parse(raw)) : Date.parse(object.updatedAt);
  if (!Number.isFinite(ms)) throw new TributaryError('fatal', { userMessage: `HubSpot returned object ${object.id} without a readable ${property}` });
  return ms;
}

function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** The property listing the ids merged into a record, `;`-separated. */
export const MERGED_IDS_PROPERTY = 'hs_merged_object_ids';

/**
 * A record changed, followed by a deletion for each id merged into it. HubSpot merges two
 * records into a new one (or, before 2024, into the primary); the merged-away ids leave the
 * CRM without an archive — neither search nor the archived listing returns them again — and
 * remain only in the survivor's `hs_merged_object_ids`. Their deletion carries no properties
 * (with `property_columns`, null property fields) and the survivor's timestamps
 * (`archivedAt` = its `updatedAt`, the merge or a later change): it comes again with every later change of the survivor, harmlessly. Per record
 * this costs one property lookup; the split only runs for merged records.
 */
function withMergedAway(object: ApiObject, options: ObjectStreamOptions): RecordData[] {
  const record = toRecord(object, options.types, options.fields);
  const merged = object.properties[MERGED_IDS_PROPERTY];
  if (!merged) return [record];
  const out = [record];
  for (const id of new Set(merged.split(';').map((part) => part.trim()))) {
    if (!/^\d+$/.test(id) || id === object.id) continue;
    out.push(toRecord({ id, createdAt: object.createdAt, updatedAt: object.updatedAt, archived: true, archivedAt: object.updatedAt, properties: {} }, options.types, options.fields));
  }
  return out;
}

/** Full refresh: the live objects in id order, a checkpoint after every page. */
export async function* readFullRefresh(api: HubspotApi, options: ObjectStreamOptions, saved: StateBlob | undefined): AsyncGenerator<SourceMessage> {
  const stream = options.objectType;
  const properties = [...options.types.keys()];
  // Resume only an interrupted refresh of our own; an incremental state does not apply here.
  let after = saved?.full_refresh === true && typeof saved.after === 'string' ? saved.after : undefined;
  yield streamStatus(stream, 'RUNNING');
  for (;;) {
    const page = await api.listPage(stream, { limit: LIST_PAGE_SIZE, ...(after ? { after } : {}), properties, archived: false });
    after = page.next;
    yield recordPage(stream, page.results.map((o) => toRecord(o, options.types, options.fields)));
    if (after === undefined) {
      yield checkpoint(stream, { full_refresh: true, done: true });
      return;
    }
    yield checkpoint(stream, { full_refresh: true, after });
  }
}

/** Incremental: changes by search up to the horizon, then objects archived since the last sync. */
export async function* readIncremental(api: HubspotApi, options: ObjectStreamOptions, saved: StateBlob | undefined): AsyncGenerator<SourceMessage> {
  const stream = options.objectType;
  const state = parseIncrementalState(saved, stream, options.startMs);
  const now = (options.now ?? Date.now)();
  const horizon = now - options.searchLagMs;
  const properties = [...new Set([...options.types.keys(), options.modifiedProperty, 'hs_object_id'])];
  const mod = options.modifiedProperty;
  yield streamStatus(stream, 'RUNNING');

  const emit = function* (objects: ApiObject[]): Generator<SourceMessage> {
    if (objects.length === 0) return;
    const last = objects[objects.length - 1]!;
    state.position = { ts: modifiedAt(last, mod), id: last.id };
    yield recordPage(stream, objects.flatMap((o) => withMergedAway(o, options)));
    yield checkpoint(stream, stateBlob(state));
  };

  const tieQuery = (at: Position): SearchBody => ({
    filterGroups: [
      {
        filters: [
          { propertyName: mod, operator: 'EQ', value: String(at.ts) },
          { propertyName: 'hs_object_id', operator: 'GT', value: at.id },
        ],
      },
    ],
    sorts: [{ propertyName: 'hs_object_id', direction: 'ASCENDING' }],
    properties,
    limit: SEARCH_PAGE_SIZE,
  });
  /**
   * Everything after `from` up to the horizon: the rest of `from`'s tie (same timestamp,
   * greater id) OR a later timestamp. Sorted by timestamp only; ties come in any order.
   */
  const windowQuery = (from: Position | undefined): SearchBody => ({
    filterGroups: from
      ? [
          {
            filters: [
              { propertyName: mod, operator: 'EQ', value: String(from.ts) },
              { propertyName: 'hs_object_id', operator: 'GT', value: from.id },
            ],
          },
          {
            filters: [
              { propertyName: mod, operator: 'GT', value: String(from.ts) },
              { propertyName: mod, operator: 'LTE', value: String(horizon) },
            ],
          },
        ]
      : [
          {
            filters: [
              { propertyName: mod, operator: 'GT', value: String(options.startMs - 1) },
              { propertyName: mod, operator: 'LTE', value: String(horizon) },
            ],
          },
        ],
    sorts: [{ propertyName: mod, direction: 'ASCENDING' }],
    properties,
    limit: SEARCH_PAGE_SIZE,
  });
  const isAfter = (o: ApiObject, from: Position | undefined): boolean => {
    const ts = modifiedAt(o, mod);
    if (ts > horizon) return false;
    if (!from) return ts >= options.startMs;
    return ts > from.ts || (ts === from.ts && compareIds(o.id, from.id) > 0);
  };

  // Phase 1: changes in (ts, id) order up to the horizon, one query per page: a full page is
  // emitted up to (not including) its last timestamp, which may be cut; the next query
  // starts after the last record emitted and fetches that timestamp again, whole. Only when
  // one timestamp fills a whole page is it read as a tie, by id (`tie`, never stored: a
  // state always names the last record emitted).
  let tie: Position | undefined;
  for (;;) {
    if (tie !== undefined) {
      const at: Position = tie;
      const page = await api.search(stream, tieQuery(at));
      const objects = page.results.sort((a, b) => compareIds(a.id, b.id));
      for (const o of objects) {
        if (modifiedAt(o, mod) !== at.ts || compareIds(o.id, at.id) <= 0) {
          throw new TributaryError('fatal', { userMessage: `HubSpot search returned ${stream} ${o.id} outside the requested tie at ${at.ts}` });
        }
      }
      yield* emit(objects);
      const last = objects[objects.length - 1];
      tie = objects.length < SEARCH_PAGE_SIZE || last === undefined ? undefined : { ts: at.ts, id: last.id };
      if (tie === undefined && state.position === undefined) {
        // An empty tie at the very start: nothing at that timestamp after all.
        break;
      }
      continue;
    }
    const from = state.position;
    if (from && from.ts > horizon) break;
    const page = await api.search(stream, windowQuery(from));
    const objects = page.results.sort((a, b) => modifiedAt(a, mod) - modifiedAt(b, mod) || compareIds(a.id, b.id));
    for (const o of objects) {
      if (!isAfter(o, from)) throw new TributaryError('fatal', { userMessage: `HubSpot search returned ${stream} ${o.id} outside the requested window` });
    }
    if (objects.length < SEARCH_PAGE_SIZE) {
      // The rest of the window fits this page: every tie in it is complete.
      yield* emit(objects);
      break;
    }
    const firstTs = modifiedAt(objects[0]!, mod);
    const lastTs = modifiedAt(objects[objects.length - 1]!, mod);
    if (firstTs === lastTs) {
      // One timestamp fills the page: read it by id, from where its reading stands.
      tie = { ts: lastTs, id: from && from.ts === lastTs ? from.id : '0' };
      continue;
    }
    yield* emit(objects.filter((o) => modifiedAt(o, mod) < lastTs));
  }
  yield checkpoint(stream, stateBlob(state));

  // Phase 2: objects archived since the last sync (archivedAt in (since, until]), up to the
  // same horizon as the changes: the search index lags an archive as it lags any write, so
  // a search may return an object archived within the look-back as still live. An archive
  // is emitted only once search surely no longer returns the object — else a later sync's
  // search could emit the object's last live version after its deletion and resurrect it.
  const until = state.archived.until ?? Math.max(state.archived.since, horizon);
  let after = state.archived.after;
  state.archived.until = until;
  for (;;) {
    const page = await api.listPage(stream, { limit: LIST_PAGE_SIZE, ...(after ? { after } : {}), properties, archived: true });
    const archived = page.results.filter((o) => {
      const at = o.archivedAt ? Date.parse(o.archivedAt) : NaN;
      return Number.isFinite(at) && at > state.archived.since && at <= until;
    });
    after = page.next;
    if (archived.length > 0) yield recordPage(stream, archived.map((o) => toRecord({ ...o, archived: true }, options.types, options.fields)));
    if (after === undefined) break;
    state.archived.after = after;
    yield checkpoint(stream, stateBlob(state));
  }
  state.archived = { since: until };
  yield checkpoint(stream, stateBlob(state));
}

