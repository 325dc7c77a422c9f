/**
 * `POST /crm/v3/objects/{type}/search` over the lagging index: filterGroups are ORed, the
 * filters of a group ANDed; one sort is honoured; records that tie on it come back in an
 * order that has nothing to do with their id (HubSpot promises none); `after` is an offset,
 * and paging past `searchMaxResults` answers 400, as HubSpot does past 10,000.
 */
import type { SimulatorLimits } from './server.js';
import { toMillis, type ObjectTable, type PropertyDefinition, type StoredObject } from './store.js';

export interface SearchFilter {
  propertyName?: string;
  operator?: string;
  value?: unknown;
  highValue?: unknown;
  values?: unknown[];
}

export interface SearchRequest {
  filterGroups?: Array<{ filters?: SearchFilter[] }>;
  sorts?: Array<{ propertyName?: string; direction?: string } | string>;
  properties?: string[];
  limit?: number;
  after?: string | number;
  query?: string;
}

export interface SearchResult {
  total: number;
  rows: StoredObject[];
  next: number | undefined;
  properties: string[] | undefined;
}

type Comparable = number | string;

function comparable(definition: PropertyDefinition | undefined, raw: unknown): Comparable | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  const text = String(raw);
  if (definition?.type === 'datetime' || definition?.type === 'date') return toMillis(text);
  if (definition?.type === 'number') return Number(text);
  return text.toLowerCase();
}

function compare(a: Comparable | undefined, b: Comparable | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** A stable order unrelated to id, for records that tie on the sort. */
function scramble(id: number): number {
  return Math.imul(id ^ 0x5bd1e995, 0x27d4eb2d) >>> 0;
}

export function searchObjects(
  table: ObjectTable,
  request: SearchRequest,
  limits: SimulatorLimits,
  invalid: (message: string) => Error,
): SearchResult {
  const groups = request.filterGroups ?? [];
  if (groups.length > 5) throw invalid('Too many filter groups: at most 5 are allowed');
  let filterCount = 0;
  for (const group of groups) {
    const filters = group.filters ?? [];
    if (filters.length > 6) throw invalid('Too many filters in a group: at most 6 are allowed');
    filterCount += filters.length;
  }
  if (filterCount > 18) throw invalid('Too many filters: at most 18 are allowed');
  const limit = request.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > limits.searchPageSize) {
    throw invalid(`limit must be between 1 and ${limits.searchPageSize}`);
  }
  const offset = request.after === undefined || request.after === '' ? 0 : Number(request.after);
  if (!Number.isInteger(offset) || offset < 0) throw invalid('after must be a value returned by a previous page');
  if (offset + limit > limits.searchMaxResults) {
    throw invalid(`Search results are limited to ${limits.searchMaxResults}: narrow the query (after=${offset}, limit=${limit})`);
  }

  const definitionOf = (name: string): PropertyDefinition | undefined => table.definitions.get(name);
  const matchesFilter = (row: StoredObject, filter: SearchFilter): boolean => {
    const name = filter.propertyName ?? '';
    const definition = definitionOf(name);
    if (!definition) throw invalid(`There was a problem with the request: property "${name}" does not exist`);
    const actual = comparable(definition, name === 'hs_object_id' ? row.id : row.properties[name]);
    const value = comparable(definition, filter.value);
    switch (filter.operator) {
      case 'EQ':
        return actual !== undefined && compare(actual, value) === 0;
      case 'NEQ':
        return compare(actual, value) !== 0;
      case 'LT':
        return actual !== undefined && compare(actual, value) < 0;
      case 'LTE':
        return actual !== undefined && compare(actual, value) <= 0;
      case 'GT':
        return actual !== undefined && compare(actual, value) > 0;
      case 'GTE':
        return actual !== undefined && compare(actual, value) >= 0;
      case 'BETWEEN':
        return actual !== undefined && compare(actual, value) >= 0 && compare(actual, comparable(definition, filter.highValue)) <= 0;
      case 'IN':
        return actual !== undefined && (filter.values ?? []).some((v) => compare(actual, comparable(definition, v)) === 0);
      case 'HAS_PROPERTY':
        return actual !== undefined;
      case 'NOT_HAS_PROPERTY':
        return actual === undefined;
      default:
        throw invalid(`Unsupported filter operator ${String(filter.operator)}`);
    }
  };

  const matches: StoredObject[] = [];
  for (const row of table.indexed.values()) {
    if (row.archived) continue;
    if (groups.length > 0 && !groups.some((g) => (g.filters ?? []).every((f) => matchesFilter(row, f)))) continue;
    matches.push(row);
  }

  const first = request.sorts?.[0];
  const sort = typeof first === 'string' ? { propertyName: first.replace(/^-/, ''), direction: first.startsWith('-') ? 'DESCENDING' : 'ASCENDING' } : first;
  if (sort?.propertyName) {
    const definition = definitionOf(sort.propertyName);
    if (!definition) throw invalid(`There was a problem with the request: property "${sort.propertyName}" does not exist`);
    const sign = sort.direction === 'DESCENDING' ? -1 : 1;
    const name = sort.propertyName;
    const key = (row: StoredObject): Comparable | undefined => comparable(definition, name === 'hs_object_id' ? row.id : row.properties[name]);
    matches.sort((a, b) => sign * compare(key(a), key(b)) || scramble(a.id) - scramble(b.id));
  } else {
    matches.sort((a, b) => scramble(a.id) - scramble(b.id));
  }
  const rows = matches.slice(offset, offset + limit);
  const next = offset + limit < matches.length ? offset + limit : undefined;
  return { total: matches.length, rows, next, properties: request.properties };
}
