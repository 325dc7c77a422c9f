import { hash } from 'node:crypto';
import { expect, it } from 'vitest';
import type { RecordData } from '@tributary/core';
import type { StreamMapping } from '../src/config.js';
import { emptyEnvelope, toEnvelope } from '../src/envelope.js';

// toEnvelope fills one envelope object, reused record after record by the stage. Keys and
// event ids must come out as they always did: lakes written earlier hold them, and a replay
// is recognised by its event id.

const mapping = (primaryKey: string[][], extra: Partial<StreamMapping> = {}): StreamMapping => ({
  stream: 'orders',
  customerIdField: 'customer_id',
  tenant: { field: 'tenant_id' },
  eventTimeField: 'at',
  defaultOp: 'update',
  sourceSystem: 'test',
  primaryKey,
  cursorField: ['at'],
  ...extra,
});

/** The event id of a keyed record, computed here independently of envelope.ts. */
const keyedId = (stream: string, key: unknown[], position: string, op: string): string => hash('sha256', `${stream}\u0000${JSON.stringify(key)}\u0000${position}\u0000${op}`, 'base64url').slice(0, 22);

const base = { tenant_id: 't1', customer_id: 'c1', at: '2024-05-01T10:00:00Z' };

it('keys: one string value as it is, one other value as JSON, several as a JSON array; the event id hashes the key array', () => {
  const out = emptyEnvelope();
  expect(toEnvelope({ ...base, id: 'o-1' } as RecordData, mapping([['id']]), 0, out)).toBeUndefined();
  expect(out.entityKey).toBe('o-1');
  expect(out.eventId).toBe(keyedId('orders', ['o-1'], base.at, 'update'));

  expect(toEnvelope({ ...base, id: 7 } as RecordData, mapping([['id']]), 0, out)).toBeUndefined();
  expect(out.entityKey).toBe('7');
  expect(out.eventId).toBe(keyedId('orders', [7], base.at, 'update'));

  const nested = { ...base, id: 7, line: { no: 2 } } as RecordData;
  expect(toEnvelope(nested, mapping([['id'], ['line', 'no']]), 0, out)).toBeUndefined();
  expect(out.entityKey).toBe('[7,2]');
  expect(out.eventId).toBe(keyedId('orders', [7, 2], base.at, 'update'));

  expect(toEnvelope({ ...base, id: 'a', sku: 'b', n: 3 } as RecordData, mapping([['id'], ['sku'], ['n']]), 0, out)).toBeUndefined();
  expect(out.entityKey).toBe('["a","b",3]');
});

it('a reused envelope carries nothing over: every field comes from the new record, and a refused record names its reason', () => {
  const out = emptyEnvelope();
  const cdc = { ...base, id: 1, _tributary_op: 'd', _tributary_position: '0/16B3748', _tributary_txid: 42, _tributary_before: { id: 1, amount: 5 }, _tributary_unchanged: ['notes'] } as RecordData;
  expect(toEnvelope(cdc, mapping([['id']]), 0, out)).toBeUndefined();
  expect(out).toMatchObject({ op: 'delete', position: '0/16B3748', txid: '42', before: '{"id":1,"amount":5}', unchanged: '["notes"]' });

  expect(toEnvelope({ ...base, tenant_id: 't2', customer_id: 'c9', id: 2 } as RecordData, mapping([['id']]), 0, out)).toBeUndefined();
  expect(out).toEqual({ eventId: keyedId('orders', [2], base.at, 'update'), entityKey: '2', customerId: 'c9', tenantId: 't2', eventTimeMs: Date.parse(base.at), op: 'update', position: base.at, txid: null, before: null, unchanged: null });

  expect(toEnvelope({ ...base, id: null } as RecordData, mapping([['id']]), 0, out)).toBe('primary key field "id" is missing');
  expect(toEnvelope({ ...base, id: 1, line: {} } as RecordData, mapping([['id'], ['line', 'no']]), 0, out)).toBe('primary key field "line.no" is missing');
  expect(toEnvelope({ ...base, id: 1, customer_id: '' } as RecordData, mapping([['id']]), 0, out)).toBe('no customer id: field "customer_id" is missing or empty');
});

it('without a key the whole record is the identity; a configured id field is used as it is', () => {
  const out = emptyEnvelope();
  const record = { ...base, note: 'x' } as RecordData;
  expect(toEnvelope(record, mapping([]), 0, out)).toBeUndefined();
  expect(out.entityKey).toBe('c1');
  expect(out.eventId).toBe(hash('sha256', `orders\u0000${JSON.stringify(record)}`, 'base64url').slice(0, 22));

  expect(toEnvelope({ ...base, id: 1, event_id: 'ev-1' } as RecordData, mapping([['id']], { eventIdField: 'event_id' }), 0, out)).toBeUndefined();
  expect(out.eventId).toBe('ev-1');
});
