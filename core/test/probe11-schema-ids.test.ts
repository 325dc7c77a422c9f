import { expect, it } from 'vitest';
import { compileSchema, parseConfig } from '../src/index.js';

// The process-wide ajv instance registered every compiled schema's `$id` and refused a second
// schema object using one ('schema with key or id "…" already exists'): two streams of a
// catalog stamped with one `$id`, or a spec parsed again from JSON, failed validation setup.
const schemaText = JSON.stringify({
  $id: 'https://example.com/schemas/probe11-shared.json',
  type: 'object',
  definitions: { name: { $id: '#name', type: 'string', minLength: 1 } },
  properties: { name: { $ref: '#/definitions/name' }, again: { $ref: 'https://example.com/schemas/probe11-shared.json#/definitions/name' } },
  required: ['name'],
});

it('schema objects sharing an $id (also a nested one) each compile, and refs to their own ids resolve', () => {
  const first = compileSchema(JSON.parse(schemaText) as object);
  const second = compileSchema(JSON.parse(schemaText) as object);
  expect([first({ name: 'a' }), first({ name: '' }), second({ name: 'a', again: 'b' }), second({ name: 'a', again: '' })]).toEqual([true, false, true, false]);
  expect(() => parseConfig(JSON.parse(schemaText) as object, { name: 'x' })).not.toThrow();
});
