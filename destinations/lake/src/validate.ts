import { Ajv, type ErrorObject } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { TributaryError, type JsonSchemaObject, type RecordData } from '@tributary/core';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv, options: { mode: 'fast' | 'full' }) => Ajv;

/**
 * Record validation for the lake's hot path. Differs from core's config validation on
 * purpose: it stops at the first error (the quarantine reason names one problem) and checks
 * formats in ajv-formats' `fast` mode (regular expressions: `date-time` is checked for
 * shape, not for calendar validity), which measured ~6× faster on sample CRM records. It
 * never fills in defaults: a record is stored as it came.
 */
function validatorEngine(Engine: typeof Ajv): Ajv {
  const engine = new Engine({ allErrors: false, strict: false, allowUnionTypes: true });
  addFormats(engine, { mode: 'fast' });
  for (const keyword of ['airbyte_secret', 'airbyte_hidden', 'order', 'group', 'always_show', 'multiline', 'airbyte_type']) {
    if (!engine.getKeyword(keyword)) engine.addKeyword({ keyword });
  }
  return engine;
}

const engines = new Map<string, Ajv>();
const engine = (draft: 'draft-07' | '2019-09' | '2020-12'): Ajv => {
  let e = engines.get(draft);
  if (!e) engines.set(draft, (e = validatorEngine(draft === '2019-09' ? (Ajv2019 as unknown as typeof Ajv) : draft === '2020-12' ? (Ajv2020 as unknown as typeof Ajv) : Ajv)));
  return e;
};

/**
 * The engine for a stream schema's `$schema`, and the schema as that engine takes it.
 * Airbyte's protocol says draft-07, which is also what a schema without `$schema` is read
 * as; 2019-09 and 2020-12 have engines of their own. Draft-04 and -06 schemas (Singer taps
 * still write them) are read as draft-07 without their `$schema`, which the draft-07 engine
 * would refuse ("no schema with key or ref"), failing the session: the keywords they use
 * mean the same there, except draft-04's boolean `exclusiveMinimum`/`exclusiveMaximum`,
 * which are rewritten to draft-07's numeric form. Any other `$schema` is refused clearly.
 */
function engineFor(stream: string, schema: JsonSchemaObject): { engine: Ajv; schema: JsonSchemaObject } {
  const declared = schema.$schema;
  if (declared === undefined) return { engine: engine('draft-07'), schema };
  const uri = String(declared).replace(/^https?:\/\//, '').replace(/#$/, '');
  if (uri === 'json-schema.org/draft-07/schema') return { engine: engine('draft-07'), schema };
  if (uri === 'json-schema.org/draft/2019-09/schema') return { engine: engine('2019-09'), schema };
  if (uri === 'json-schema.org/draft/2020-12/schema') return { engine: engine('2020-12'), schema };
  const { $schema: _declared, ...rest } = schema;
  if (uri === 'json-schema.org/draft-06/schema') return { engine: engine('draft-07'), schema: rest };
  if (uri === 'json-schema.org/draft-04/schema') return { engine: engine('draft-07'), schema: draft04Bounds(rest) as JsonSchemaObject };
  throw new TributaryError('config', {
    userMessage: `lake: stream "${stream}" declares its JSON schema as ${JSON.stringify(declared)}, which record validation does not know (draft-04, -06, -07, 2019-09, 2020-12); set validate_records: false to store its records unvalidated`,
  });
}

/** A draft-04 schema with its boolean `exclusiveMinimum`/`exclusiveMaximum` in draft-07's numeric form (a copy; nested schemas too). */
function draft04Bounds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(draft04Bounds);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  // Values, not schemas: left as they are.
  for (const [key, value] of Object.entries(node)) out[key] = key === 'enum' || key === 'const' || key === 'default' || key === 'examples' ? value : draft04Bounds(value);
  for (const [flag, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (typeof out[flag] !== 'boolean') continue;
    if (out[flag] === true && typeof out[bound] === 'number') {
      out[flag] = out[bound];
      delete out[bound];
    } else delete out[flag];
  }
  return out;
}

function describe(error: ErrorObject): string {
  const path = error.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : '(record)';
  return `${path} ${error.message ?? 'is invalid'}`;
}

/** A validator returning undefined for a valid record, else the reason. */
export function recordValidator(stream: string, jsonSchema: JsonSchemaObject): (record: RecordData) => string | undefined {
  const { engine, schema } = engineFor(stream, jsonSchema);
  const validate = engine.compile(schema);
  return (record) => (validate(record) ? undefined : validate.errors?.[0] ? describe(validate.errors[0]) : 'does not match');
}

/**
 * Whether every record `schema` accepts holds only the fields it declares
 * (`additionalProperties: false`, no `patternProperties`): then a validated stage never
 * meets a field it has no column for, and need not look for one.
 */
export function admitsOnlyDeclaredFields(schema: JsonSchemaObject): boolean {
  return schema.additionalProperties === false && schema.patternProperties === undefined;
}
