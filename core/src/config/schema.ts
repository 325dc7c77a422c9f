import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import { TributaryError } from '../errors.js';

/**
 * A connector's configuration schema: the Airbyte `connectionSpecification`.
 * Secret fields carry `airbyte_secret: true`; they are redacted from logs, errors and state.
 */
export type ConfigSchema = JSONSchema & object;

/** The TypeScript type of a config, inferred from its schema literal. */
// The wide `ConfigSchema` itself (as in the default `Source`/`Writer` type) maps to a plain
// record: instantiating FromSchema on it is both useless and too deep for the compiler.
export type ConfigOf<S> = [ConfigSchema] extends [S] ? Record<string, unknown> : S extends ConfigSchema ? FromSchema<S> : Record<string, unknown>;

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

/**
 * One Ajv instance for the whole process: schemas compile once and are cached by identity.
 * `addUsedSchema: false`: a compiled schema's `$id`s (its own, nested ones) are not
 * registered in the instance, which would refuse a second schema object using one of them
 * ("schema with key or id … already exists"); a schema's `$ref`s to its own ids still resolve.
 */
export function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true, allowUnionTypes: true, addUsedSchema: false });
  addFormats(ajv);
  // Airbyte's UI keywords are annotations, not assertions.
  for (const keyword of ['airbyte_secret', 'airbyte_hidden', 'order', 'group', 'always_show', 'multiline']) {
    if (!ajv.getKeyword(keyword)) ajv.addKeyword({ keyword });
  }
  return ajv;
}

const sharedAjv = createAjv();
const compiled = new WeakMap<object, ValidateFunction>();

export function compileSchema(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = sharedAjv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** Renders ajv errors as `field: problem` lines that point at the offending field. */
export function describeSchemaErrors(errors: ErrorObject[] | null | undefined, root = 'config'): string[] {
  return (errors ?? []).map((error) => {
    let path = root + error.instancePath.replace(/\//g, '.');
    if (error.keyword === 'required') path += `.${String(error.params.missingProperty)}`;
    if (error.keyword === 'additionalProperties') path += `.${String(error.params.additionalProperty)}`;
    const message = error.keyword === 'required' ? 'is required' : error.keyword === 'additionalProperties' ? 'is not a known property' : error.message ?? 'is invalid';
    return `${path} ${message}`;
  });
}

/**
 * Validates (and fills defaults into a copy of) a connector config at the boundary.
 * Throws a `config` TributaryError naming every offending field; never echoes values,
 * because a wrong value may be a secret.
 */
export function parseConfig<S extends object>(schema: S, raw: unknown, what = 'config'): ConfigOf<S> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new TributaryError('config', { userMessage: `${what} must be a JSON object` });
  }
  const copy = structuredClone(raw);
  const validate = compileSchema(schema);
  if (!validate(copy)) {
    const problems = describeSchemaErrors(validate.errors, what);
    throw new TributaryError('config', {
      userMessage: `Invalid ${what}:\n  - ${problems.join('\n  - ')}`,
    });
  }
  return copy as ConfigOf<S>;
}
