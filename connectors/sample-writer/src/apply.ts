/**
 * What one write request does to a table, record by record, in order (a later record
 * with the same key sees the earlier one's effect). Pure apart from mutating `table`;
 * storage and locking are the caller's.
 *
 * Per mode:
 * - insert: missing → created; present with every given field equal → unchanged (a replay
 *   of the same insert); present otherwise → failed "already exists".
 * - update: missing → failed "not found"; every given field equal → unchanged; else updated.
 * - upsert: missing → created; every given field equal → unchanged; else updated.
 * - delete: present → deleted; already deleted by this very change (same idempotency key)
 *   → unchanged; missing otherwise → failed "not found".
 * Records with an invalid key or field, or matching `fail_emails_matching`, fail with a
 * reason and `retryable: false`; the other records of the request are still applied.
 */
import type { WriteRecord, WriteRequest, WriteResult } from '@tributary/core';
import type { CrmObject } from './objects.js';
import type { Row, Table } from './store.js';

export interface ApplyOptions {
  /** Contacts whose email matches are refused (lets tests force per-record failures). */
  failEmails: RegExp | undefined;
  /** ISO timestamp stamped on rows created or updated by this request. */
  now: string;
}

function failed(record: WriteRecord, reason: string): WriteResult {
  return { idempotencyKey: record.idempotencyKey, key: record.key, status: 'failed', reason, retryable: false };
}

/** The fields to write (without the key property), or why the record cannot be written. */
function fieldsOf(object: CrmObject, record: WriteRecord): Record<string, unknown> | string {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record.fields)) {
    if (value === undefined) continue;
    if (name === object.idProperty) {
      if (value !== record.key) return `${name} in fields (${JSON.stringify(value)}) differs from the record key`;
      continue;
    }
    const rule = object.fields.get(name);
    if (!rule) {
      return name === 'id' || name === 'updated_at' ? `property ${name} is read-only` : `property ${name} does not exist on ${object.name}`;
    }
    const problem = rule.check(value);
    if (problem !== undefined) return `property ${name} ${problem}`;
    fields[name] = value;
  }
  return fields;
}

function sameValues(row: Row, fields: Record<string, unknown>): boolean {
  for (const [name, value] of Object.entries(fields)) {
    const stored = row[name] === undefined ? null : row[name];
    if (stored !== value) return false;
  }
  return true;
}

export function applyRequest(table: Table, object: CrmObject, request: WriteRequest, options: ApplyOptions): WriteResult[] {
  return request.records.map((record) => applyRecord(table, object, request.mode, record, options));
}

function applyRecord(table: Table, object: CrmObject, mode: WriteRequest['mode'], record: WriteRecord, options: ApplyOptions): WriteResult {
  const key = record.key;
  if (typeof key !== 'string' || key.length === 0) return failed(record, `${object.idProperty} is required`);
  const keyProblem = object.checkKey(key);
  if (keyProblem !== undefined) return failed(record, keyProblem);
  if (object.name === 'contacts' && options.failEmails?.test(key)) return failed(record, 'email address rejected by the CRM (matches fail_emails_matching)');

  const existing = table.rows.get(key);
  const ok = (status: WriteResult['status'], id: string): WriteResult => ({ idempotencyKey: record.idempotencyKey, key, status, id });

  if (mode === 'delete') {
    if (existing) {
      table.rows.delete(key);
      table.deleted.delete(key);
      table.deleted.set(key, record.idempotencyKey);
      return ok('deleted', existing.id);
    }
    if (table.deleted.get(key) === record.idempotencyKey) return { idempotencyKey: record.idempotencyKey, key, status: 'unchanged' };
    return failed(record, `${object.name} ${object.idProperty} not found`);
  }

  const fields = fieldsOf(object, record);
  if (typeof fields === 'string') return failed(record, fields);

  if (existing) {
    if (sameValues(existing, fields)) return ok('unchanged', existing.id);
    if (mode === 'insert') return failed(record, `${object.name} with this ${object.idProperty} already exists`);
    table.rows.set(key, { ...existing, ...fields, updated_at: options.now });
    return ok('updated', existing.id);
  }
  if (mode === 'update') return failed(record, `${object.name} ${object.idProperty} not found`);
  const id = String(table.nextId++);
  table.rows.set(key, { id, [object.idProperty]: key, ...fields, updated_at: options.now });
  table.deleted.delete(key);
  return ok('created', id);
}
