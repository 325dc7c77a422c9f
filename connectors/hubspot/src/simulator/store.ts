/**
 * The simulator's data: CRM objects per type, their property definitions, associations, and
 * a search index that trails the objects by a configurable lag (HubSpot's search index is
 * eventually consistent: a write is visible to GET/list at once, to search only later).
 */

export type PropertyType = 'string' | 'number' | 'date' | 'datetime' | 'enumeration' | 'bool' | 'phone_number';

export interface PropertyDefinition {
  name: string;
  label: string;
  type: PropertyType;
  fieldType: string;
  groupName: string;
  /** Computed by HubSpot: writing it is refused. */
  readOnly?: boolean;
  hasUniqueValue?: boolean;
  options?: Array<{ label: string; value: string }>;
}

export interface StoredObject {
  id: number;
  properties: Record<string, string | null>;
  createdAt: number;
  updatedAt: number;
  archived: boolean;
  archivedAt?: number;
}

/** The property HubSpot bumps on every change: `lastmodifieddate` for contacts only. */
export function modificationProperty(objectType: string): string {
  return objectType === 'contacts' ? 'lastmodifieddate' : 'hs_lastmodifieddate';
}

const COMMON: PropertyDefinition[] = [
  { name: 'hs_object_id', label: 'Record ID', type: 'number', fieldType: 'number', groupName: 'info', readOnly: true, hasUniqueValue: true },
  { name: 'createdate', label: 'Create date', type: 'datetime', fieldType: 'date', groupName: 'info', readOnly: true },
  // The ids merged into a record, `;`-separated (a multi-value property): merged-away ids
  // leave the CRM without an archive, and this is where they can be found.
  { name: 'hs_merged_object_ids', label: 'Merged record IDs', type: 'enumeration', fieldType: 'checkbox', groupName: 'info', readOnly: true },
];

const LIFECYCLE = ['subscriber', 'lead', 'customer'].map((v) => ({ label: v, value: v }));
const STAGES = ['appointmentscheduled', 'closedwon', 'closedlost'].map((v) => ({ label: v, value: v }));

export const DEFAULT_PROPERTIES: Record<string, PropertyDefinition[]> = {
  contacts: [
    ...COMMON,
    { name: 'lastmodifieddate', label: 'Last modified', type: 'datetime', fieldType: 'date', groupName: 'info', readOnly: true },
    { name: 'email', label: 'Email', type: 'string', fieldType: 'text', groupName: 'contactinformation', hasUniqueValue: true },
    { name: 'firstname', label: 'First name', type: 'string', fieldType: 'text', groupName: 'contactinformation' },
    { name: 'lastname', label: 'Last name', type: 'string', fieldType: 'text', groupName: 'contactinformation' },
    { name: 'company', label: 'Company name', type: 'string', fieldType: 'text', groupName: 'contactinformation' },
    { name: 'phone', label: 'Phone', type: 'phone_number', fieldType: 'phonenumber', groupName: 'contactinformation' },
    { name: 'lifecyclestage', label: 'Lifecycle stage', type: 'enumeration', fieldType: 'select', groupName: 'contactinformation', options: LIFECYCLE },
    { name: 'num_notes', label: 'Number of notes', type: 'number', fieldType: 'number', groupName: 'contactactivity' },
    { name: 'hs_email_optout', label: 'Opted out', type: 'bool', fieldType: 'booleancheckbox', groupName: 'contactinformation' },
  ],
  companies: [
    ...COMMON,
    { name: 'hs_lastmodifieddate', label: 'Last modified', type: 'datetime', fieldType: 'date', groupName: 'info', readOnly: true },
    { name: 'name', label: 'Name', type: 'string', fieldType: 'text', groupName: 'companyinformation' },
    { name: 'domain', label: 'Domain', type: 'string', fieldType: 'text', groupName: 'companyinformation', hasUniqueValue: true },
    { name: 'industry', label: 'Industry', type: 'string', fieldType: 'text', groupName: 'companyinformation' },
    { name: 'numberofemployees', label: 'Employees', type: 'number', fieldType: 'number', groupName: 'companyinformation' },
  ],
  deals: [
    ...COMMON,
    { name: 'hs_lastmodifieddate', label: 'Last modified', type: 'datetime', fieldType: 'date', groupName: 'info', readOnly: true },
    { name: 'dealname', label: 'Deal name', type: 'string', fieldType: 'text', groupName: 'dealinformation' },
    { name: 'amount', label: 'Amount', type: 'number', fieldType: 'number', groupName: 'dealinformation' },
    { name: 'dealstage', label: 'Stage', type: 'enumeration', fieldType: 'radio', groupName: 'dealinformation', options: STAGES },
    { name: 'closedate', label: 'Close date', type: 'datetime', fieldType: 'date', groupName: 'dealinformation' },
  ],
};

/** A refused property value, in the words HubSpot's batch errors use. */
export interface ValueProblem {
  category: string;
  message: string;
}

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export function checkValue(definition: PropertyDefinition | undefined, name: string, value: unknown): ValueProblem | undefined {
  if (!definition) return { category: 'VALIDATION_ERROR', message: `Property "${name}" does not exist` };
  if (definition.readOnly) return { category: 'VALIDATION_ERROR', message: `"${name}" is a read only property; its value cannot be set.` };
  if (value === null || value === '') return undefined;
  const text = String(value);
  if (name === 'email' && !EMAIL.test(text)) return { category: 'VALIDATION_ERROR', message: `Property values were not valid: INVALID_EMAIL "${text}"` };
  if (definition.type === 'number' && !Number.isFinite(Number(text))) {
    return { category: 'VALIDATION_ERROR', message: `Property values were not valid: ${text} is not a valid number for "${name}"` };
  }
  if (definition.type === 'bool' && text !== 'true' && text !== 'false') {
    return { category: 'VALIDATION_ERROR', message: `Property values were not valid: ${text} is not a valid boolean for "${name}"` };
  }
  if (definition.type === 'enumeration' && definition.options && !definition.options.some((o) => o.value === text)) {
    return { category: 'VALIDATION_ERROR', message: `Property values were not valid: ${text} was not one of the allowed options for "${name}"` };
  }
  if ((definition.type === 'datetime' || definition.type === 'date') && !Number.isFinite(toMillis(text))) {
    return { category: 'VALIDATION_ERROR', message: `Property values were not valid: ${text} is not a valid date for "${name}"` };
  }
  return undefined;
}

/** HubSpot accepts epoch milliseconds or ISO 8601 for date properties. */
export function toMillis(text: string): number {
  return /^-?\d+$/.test(text) ? Number(text) : Date.parse(text);
}

/** How HubSpot matches a unique value: emails without regard to case. */
export function uniqueKey(property: string, value: string): string {
  return property === 'email' ? value.toLowerCase() : value;
}

interface PendingIndex {
  at: number;
  id: number;
  /** Write order: of two versions of a row, the later write wins whenever each is indexed. */
  seq: number;
  snapshot: StoredObject;
}

/** One object type: rows in id order, plus the lagging search index. */
export class ObjectTable {
  readonly rows = new Map<number, StoredObject>();
  /** What search sees: snapshots of rows as of `lag` ago. */
  readonly indexed = new Map<number, StoredObject>();
  private pending: PendingIndex[] = [];
  /** Writes queued so far; and per row, the write whose version the index holds. */
  private writes = 0;
  private readonly indexedSeq = new Map<number, number>();

  constructor(
    readonly objectType: string,
    readonly definitions: Map<string, PropertyDefinition>,
  ) {}

  /**
   * Queues a row's current version for the search index. Each write reaches the index after
   * its own delay, uniform in [0, lagMs]: writes become searchable out of order, as on
   * HubSpot, so a reader that trusts "everything up to now is indexed" skips records. The
   * index is eventually consistent: once every write is due, it holds each row's latest
   * version: a write that comes due after a later write of the same row is dropped, whatever
   * the timestamps say (an archive does not move `updatedAt`; a restore or an update may share
   * the millisecond of the write before it).
   */
  reindex(row: StoredObject, now: number, lagMs: number, exactDelayMs?: number): void {
    const snapshot = { ...row, properties: { ...row.properties } };
    const delay = exactDelayMs ?? (lagMs <= 0 ? 0 : Math.floor(Math.random() * lagMs));
    const seq = ++this.writes;
    if (delay <= 0) {
      this.index(row.id, seq, snapshot);
      return;
    }
    this.pending.push({ at: now + delay, id: row.id, seq, snapshot });
  }

  /** Applies every queued index update due by `now`; of two versions of a row, the later write wins. */
  catchUpIndex(now: number): void {
    if (this.pending.length === 0) return;
    const due = this.pending.filter((p) => p.at <= now);
    if (due.length === 0) return;
    this.pending = this.pending.filter((p) => p.at > now);
    for (const p of due) this.index(p.id, p.seq, p.snapshot);
  }

  private index(id: number, seq: number, snapshot: StoredObject): void {
    if ((this.indexedSeq.get(id) ?? 0) > seq) return;
    this.indexedSeq.set(id, seq);
    this.indexed.set(id, snapshot);
  }

  /**
   * Unique-valued properties (email, domain): value -> id of the live row holding it. Emails
   * are one identity whatever their case (`A@x.com` and `a@x.com` are one contact), as on
   * HubSpot.
   */
  private readonly unique = new Map<string, Map<string, number>>();

  /** Sets properties on a row, keeping the unique-value index in step. */
  assign(row: StoredObject, properties: Record<string, string | null>): void {
    for (const [name, value] of Object.entries(properties)) {
      if (this.definitions.get(name)?.hasUniqueValue && name !== 'hs_object_id') {
        let index = this.unique.get(name);
        if (!index) this.unique.set(name, (index = new Map()));
        const old = row.properties[name];
        if (old !== undefined && old !== null && index.get(uniqueKey(name, old)) === row.id) index.delete(uniqueKey(name, old));
        if (value !== null && value !== '') index.set(uniqueKey(name, value), row.id);
      }
      row.properties[name] = value;
    }
  }

  /** Ids merged away -> the id of the record they were merged into (HubSpot keeps them as aliases). */
  readonly mergedInto = new Map<number, number>();

  findBy(property: string, value: string): StoredObject | undefined {
    if (property === 'hs_object_id') {
      const id = Number(value);
      const row = this.rows.get(this.mergedInto.get(id) ?? id);
      return row && !row.archived ? row : undefined;
    }
    const index = this.unique.get(property);
    if (index) {
      const id = index.get(uniqueKey(property, value));
      const row = id === undefined ? undefined : this.rows.get(id);
      return row && !row.archived ? row : undefined;
    }
    for (const row of this.rows.values()) {
      const stored = row.properties[property];
      if (!row.archived && stored !== undefined && stored !== null && uniqueKey(property, stored) === uniqueKey(property, value)) return row;
    }
    return undefined;
  }
}
