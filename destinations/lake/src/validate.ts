import { Ajv, type ErrorObject } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { setOwnField, TributaryError, type JsonSchemaObject, type RecordData } from '@tributary/core';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv, options: { mode: 'fast' | 'full' }) => Ajv;

/**
 * Record validation for the lake's hot path. Differs from core's config validation on
 * purpose: it stops at the first error (the quarantine reason names one problem) and checks
 * formats in ajv-formats' `fast` mode (regular expressions: `date-time` is checked for
 * shape, not for calendar validity), which measured ~6× faster on sample CRM records. It
 * never fills in defaults: a record is stored as it came.
 */
function validatorEngine(Engine: typeof Ajv, ownProperties: boolean): Ajv {
  // `addUsedSchema: false`: a compiled schema's `$id` is not registered in the engine, which
  // refused a second schema object with the same `$id` ("schema with key or id … already
  // exists": two streams sharing one, or a stream's schema compiled again by a later session
  // of the process); a schema's `$ref`s to its own `$id` still resolve.
  const engine = new Engine({ allErrors: false, strict: false, allowUnionTypes: true, ownProperties, addUsedSchema: false });
  addFormats(engine, { mode: 'fast' });
  for (const keyword of ['airbyte_secret', 'airbyte_hidden', 'order', 'group', 'always_show', 'multiline', 'airbyte_type']) {
    if (!engine.getKeyword(keyword)) engine.addKeyword({ keyword });
  }
  return engine;
}

type Draft = 'draft-07' | '2019-09' | '2020-12';

const engines = new Map<string, Ajv>();
/** The engine of a draft; `ownProperties` (see `readsInheritedNames`) for schemas that name a field Object.prototype has. */
const engine = (draft: Draft, ownProperties: boolean): Ajv => {
  const key = `${draft}${ownProperties ? ' own' : ''}`;
  let e = engines.get(key);
  if (!e) engines.set(key, (e = validatorEngine(draft === '2019-09' ? (Ajv2019 as unknown as typeof Ajv) : draft === '2020-12' ? (Ajv2020 as unknown as typeof Ajv) : Ajv, ownProperties)));
  return e;
};

/**
 * The draft of a stream schema's `$schema`, and the schema as that draft's engine takes it.
 * Airbyte's protocol says draft-07, which is also what a schema without `$schema` is read
 * as; 2019-09 and 2020-12 have engines of their own. Draft-04 and -06 schemas (Singer taps
 * still write them) are read as draft-07 without their `$schema`, which the draft-07 engine
 * would refuse ("no schema with key or ref"), failing the session: the keywords they use
 * mean the same there, except draft-04's boolean `exclusiveMinimum`/`exclusiveMaximum`,
 * which are rewritten to draft-07's numeric form. Any other `$schema` is refused clearly.
 */
function draftOf(stream: string, schema: JsonSchemaObject): { draft: Draft; schema: JsonSchemaObject } {
  const declared = schema.$schema;
  if (declared === undefined) return { draft: 'draft-07', schema };
  const uri = String(declared).replace(/^https?:\/\//, '').replace(/#$/, '');
  if (uri === 'json-schema.org/draft-07/schema') return { draft: 'draft-07', schema };
  if (uri === 'json-schema.org/draft/2019-09/schema') return { draft: '2019-09', schema };
  if (uri === 'json-schema.org/draft/2020-12/schema') return { draft: '2020-12', schema };
  const { $schema: _declared, ...rest } = schema;
  if (uri === 'json-schema.org/draft-06/schema') return { draft: 'draft-07', schema: rest };
  if (uri === 'json-schema.org/draft-04/schema') return { draft: 'draft-07', schema: draft04AsDraft07(rest) as JsonSchemaObject };
  throw new TributaryError('config', {
    userMessage: `lake: stream "${stream}" declares its JSON schema as ${JSON.stringify(declared)}, which record validation does not know (draft-04, -06, -07, 2019-09, 2020-12); set validate_records: false to store its records unvalidated`,
  });
}

/**
 * A draft-04 schema in draft-07's form (a copy; nested schemas too): boolean
 * `exclusiveMinimum`/`exclusiveMaximum` become draft-07's numeric ones, and the identifier
 * keyword `id` (a string: in `properties` and the other maps a field named `id` holds a
 * schema) becomes `$id`, which ajv refused ("NOT SUPPORTED: keyword \"id\"").
 */
function draft04AsDraft07(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(draft04AsDraft07);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  // Values, not schemas: left as they are. Keys stay own fields (a property named `__proto__` too).
  for (const [key, value] of Object.entries(node)) setOwnField(out, key, key === 'enum' || key === 'const' || key === 'default' || key === 'examples' ? value : draft04AsDraft07(value));
  for (const [flag, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (typeof out[flag] !== 'boolean') continue;
    if (out[flag] === true && typeof out[bound] === 'number') {
      out[flag] = out[bound];
      delete out[bound];
    } else delete out[flag];
  }
  if (typeof out.id === 'string' && !Object.hasOwn(out, '$id')) {
    out.$id = out.id;
    delete out.id;
  }
  return out;
}

/**
 * Fields named as Object.prototype's members (`constructor`, `toString`, `__proto__`, …).
 * ajv (8.20) reads a field `f` of the record as `data.f`: for a record without it, that is
 * the inherited member, so a `required` field of such a name was never missing, and one
 * declared in `properties` but absent was validated as the member ("constructor must be
 * string": the record quarantined). ajv's `ownProperties` reads only own fields (one
 * `hasOwnProperty` call more per declared field and value), so only schemas naming such a
 * field, at any depth, are compiled with it: every other schema takes the usual engine and
 * code. Records parsed from JSON hold a key `__proto__` as an own field (as `setOwnField`
 * makes one).
 *
 * ajv also skips a field named `__proto__` in `properties` and in the dependency keywords
 * altogether (it never checked the field's value, and `additionalProperties: false`
 * refused it although declared); see `withOwnProto`.
 */
function readsInheritedNames(schema: JsonSchemaObject): boolean {
  let found = false;
  eachSchema(schema, (node) => {
    if (fieldNames(node).some((name) => name in Object.prototype)) found = true;
    return node;
  });
  return found;
}

/** The fields a schema node names: in `properties`, `required` and the dependency keywords (their keys, and the fields they require). */
function fieldNames(node: JsonSchemaObject): string[] {
  const names = [...keysOf(node.properties), ...stringsOf(node.required)];
  for (const keyword of DEPENDENCY_KEYWORDS) {
    const map = node[keyword];
    if (!isSchemaObject(map)) continue;
    for (const [name, dependent] of Object.entries(map)) names.push(name, ...stringsOf(dependent));
  }
  return names;
}

const DEPENDENCY_KEYWORDS = ['dependencies', 'dependentRequired', 'dependentSchemas'] as const;
/** The `patternProperties` key that matches exactly the field `__proto__`. */
const PROTO_PATTERN = '^__proto__$';

/**
 * A copy of `schema` in which ajv checks a field named `__proto__` (needs the `ownProperties`
 * engine, see `readsInheritedNames`), at every depth: a node declaring it in `properties`
 * also has that schema in `patternProperties` under `^__proto__$` (ajv matches patterns
 * against the object's own keys: the field is checked when present, its errors name
 * `__proto__`, and `additionalProperties` no longer counts it as additional); a dependency
 * keyword the engine knows (`dependencies`, and for 2019-09 and 2020-12 `dependentRequired`
 * and `dependentSchemas`) keyed `__proto__` becomes an `allOf` member `{ if: { required:
 * ['__proto__'] }, then: … }`. The `properties` entry stays (ajv ignores it; a `$ref` to it
 * still resolves).
 */
function withOwnProto(schema: JsonSchemaObject, engine: Ajv): JsonSchemaObject {
  return eachSchema(schema, (node) => {
    let out = node;
    if (isSchemaObject(node.properties) && Object.hasOwn(node.properties, '__proto__')) {
      const declared = node.properties['__proto__'];
      const patterns: Record<string, unknown> = isSchemaObject(node.patternProperties) ? { ...node.patternProperties } : {};
      patterns[PROTO_PATTERN] = Object.hasOwn(patterns, PROTO_PATTERN) ? { allOf: [patterns[PROTO_PATTERN], declared] } : declared;
      out = { ...out, patternProperties: patterns };
    }
    const dependents: JsonSchemaObject[] = [];
    for (const keyword of DEPENDENCY_KEYWORDS) {
      const map = node[keyword];
      if (!isSchemaObject(map) || !Object.hasOwn(map, '__proto__') || !engine.getKeyword(keyword)) continue;
      const dependent = map['__proto__'];
      dependents.push({ if: { required: ['__proto__'] }, then: Array.isArray(dependent) ? { required: dependent } : dependent });
    }
    if (dependents.length > 0) out = { ...out, allOf: [...(Array.isArray(node.allOf) ? node.allOf : []), ...dependents] };
    return out;
  }) as JsonSchemaObject;
}

const rewrites = new WeakMap<JsonSchemaObject, JsonSchemaObject>();
/** `withOwnProto(schema)`, one copy per schema object: ajv compiles a schema object again from its cache, but refuses a second object with the same `$id`. */
function rewritten(schema: JsonSchemaObject, engine: Ajv): JsonSchemaObject {
  let copy = rewrites.get(schema);
  if (copy === undefined) rewrites.set(schema, (copy = withOwnProto(schema, engine)));
  return copy;
}

/** Keywords whose value is one schema, a list of schemas, or a map of names to schemas (and, for `dependencies`, to field lists). */
const SUBSCHEMA = ['additionalProperties', 'additionalItems', 'items', 'contains', 'not', 'if', 'then', 'else', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems'];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'items', 'prefixItems'];
const SUBSCHEMA_MAPS = ['properties', 'patternProperties', 'definitions', '$defs', 'dependencies', 'dependentSchemas'];

/**
 * A copy of `node` in which every schema object (`node` and those below it, innermost first)
 * is replaced by what `change` makes of its copy. Values (`enum`, `const`, `default`, …) are
 * not walked; boolean schemas stay. Map keys are kept as own fields (also `__proto__`).
 */
function eachSchema(node: unknown, change: (schema: JsonSchemaObject) => JsonSchemaObject): unknown {
  if (!isSchemaObject(node)) return node;
  const out: JsonSchemaObject = { ...node };
  for (const keyword of SUBSCHEMA) if (isSchemaObject(out[keyword])) out[keyword] = eachSchema(out[keyword], change);
  for (const keyword of SUBSCHEMA_LISTS) {
    const list = out[keyword];
    if (Array.isArray(list)) out[keyword] = list.map((item) => eachSchema(item, change));
  }
  for (const keyword of SUBSCHEMA_MAPS) {
    const map = out[keyword];
    if (!isSchemaObject(map)) continue;
    const copy: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(map)) setOwnField(copy, name, eachSchema(value, change));
    out[keyword] = copy;
  }
  return change(out);
}

const isSchemaObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const keysOf = (value: unknown): string[] => (isSchemaObject(value) ? Object.keys(value) : []);
const stringsOf = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);

function describe(error: ErrorObject): string {
  const path = error.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : '(record)';
  return `${path} ${error.message ?? 'is invalid'}`;
}

/** A validator returning undefined for a valid record, else the reason. */
export function recordValidator(stream: string, jsonSchema: JsonSchemaObject): (record: RecordData) => string | undefined {
  const { draft, schema } = draftOf(stream, jsonSchema);
  // Decided once per schema: one that names no such field compiles as it is, on the usual engine.
  const own = readsInheritedNames(schema);
  const chosen = engine(draft, own);
  const validate = chosen.compile(own ? rewritten(schema, chosen) : schema);
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
