import type { Ajv } from 'ajv';
import {
  createAjv,
  createConnectorContext,
  describeSchemaErrors,
  silentLogger,
  type ConnectorContext,
  type Destination,
  type JsonSchemaObject,
  type Source,
  type Writer,
  type RateLimitPolicy,
  type RetryPolicy,
} from '@tributary/core';
import { validateAirbyteMessage } from './airbyte-protocol.js';

/** A raw connector config, as a user would write it (validated by the suite at the boundary). */
export type RawConfig = Record<string, unknown>;

/** A config, or a factory for one (for configs that depend on a peer started in `beforeAll`). */
export type ConfigInput = RawConfig | (() => RawConfig | Promise<RawConfig>);

export async function resolveConfig(input: ConfigInput): Promise<RawConfig> {
  return typeof input === 'function' ? await input() : input;
}

/** A context as the runtime builds it: the connector's own rate limit and retry policy. */
export function contextFor(connector: { rateLimit?: RateLimitPolicy; retry?: RetryPolicy }, signal?: AbortSignal): ConnectorContext {
  return createConnectorContext({
    logger: silentLogger,
    ...(signal ? { signal } : {}),
    ...(connector.rateLimit ? { rateLimit: connector.rateLimit } : {}),
    ...(connector.retry ? { retry: connector.retry } : {}),
  });
}

/** Throws with every problem listed when the message does not validate against the protocol. */
export function assertValidAirbyteMessage(message: unknown, what: string): void {
  const problems = validateAirbyteMessage(message);
  if (problems.length > 0) {
    throw new Error(`${what} is not a valid Airbyte message:\n  - ${problems.join('\n  - ')}\n${JSON.stringify(message).slice(0, 2000)}`);
  }
}

/**
 * Names that suggest a secret. Matched against the lower-cased property name, `-` read as `_`.
 * Key-like names are matched only with a qualifier (`ssh_key`, `signing_key`, …), so that
 * `primary_key` or `key_prefix` are not taken for secrets.
 */
const SECRET_NAME =
  /password|passwd|passphrase|secret|token|credential|cookie|auth_header|connection_?string|api_?key|(?:private|access|ssh|signing|encryption|client|master|shared|license|service_account)_?key/;

/** Keywords whose value is one subschema that a config value must (or may) also satisfy. */
const SUBSCHEMA_KEYWORDS = ['if', 'then', 'else', 'not', 'contains', 'additionalItems'] as const;

/**
 * Dotted paths of every property whose name suggests a secret but is not marked
 * `airbyte_secret: true`. Booleans and objects are exempt: a flag is not a secret, and an
 * object's secrets are its leaves (which are checked). Every place a property can be declared
 * is searched: combinators and conditionals, array items, maps (`additionalProperties` as
 * `name.*`, `patternProperties` as `name.<pattern>`) and shared definitions reached through
 * `$ref` (as `#/definitions/name.field`).
 */
export function unmarkedSecretFields(schema: unknown, path = ''): string[] {
  const out: string[] = [];
  if (!schema || typeof schema !== 'object') return out;
  const node = schema as Record<string, unknown>;
  for (const combinator of ['oneOf', 'anyOf', 'allOf']) {
    const options = node[combinator];
    if (Array.isArray(options)) for (const option of options) out.push(...unmarkedSecretFields(option, path));
  }
  for (const keyword of SUBSCHEMA_KEYWORDS) out.push(...unmarkedSecretFields(node[keyword], path));
  if (Array.isArray(node.items)) for (const item of node.items) out.push(...unmarkedSecretFields(item, `${path}[]`));
  else if (node.items && typeof node.items === 'object') out.push(...unmarkedSecretFields(node.items, `${path}[]`));
  if (node.additionalProperties && typeof node.additionalProperties === 'object') out.push(...unmarkedSecretFields(node.additionalProperties, `${path}.*`));
  for (const [pattern, child] of Object.entries(objectOrEmpty(node.patternProperties))) out.push(...unmarkedSecretFields(child, `${path}.<${pattern}>`));
  for (const dependency of Object.values(objectOrEmpty(node.dependencies))) {
    if (!Array.isArray(dependency)) out.push(...unmarkedSecretFields(dependency, path));
  }
  for (const keyword of ['definitions', '$defs']) {
    for (const [name, child] of Object.entries(objectOrEmpty(node[keyword]))) out.push(...unmarkedSecretFields(child, `${path}#/${keyword}/${name}`));
  }
  const properties = node.properties;
  if (properties && typeof properties === 'object') {
    for (const [name, child] of Object.entries(properties as Record<string, unknown>)) {
      const childPath = path ? `${path}.${name}` : name;
      const c = (child ?? {}) as Record<string, unknown>;
      const types = Array.isArray(c.type) ? (c.type as unknown[]) : [c.type];
      // Without a type, a node of properties, branches or a `$ref` is checked at its leaves
      // (a `$ref` where it points: the definitions, above).
      const exempt = types.includes('boolean') || types.includes('object') || (c.type === undefined && ['properties', 'oneOf', 'anyOf', 'allOf', '$ref'].some((k) => c[k] !== undefined));
      if (SECRET_NAME.test(name.toLowerCase().replace(/-/g, '_')) && !exempt && c.airbyte_secret !== true) out.push(childPath);
      out.push(...unmarkedSecretFields(child, childPath));
    }
  }
  return out;
}

function objectOrEmpty(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * The checks every connector's `connectionSpecification` must pass: a draft-07 schema of
 * an object that compiles with ajv, with every secret-looking field marked secret.
 */
export function assertConnectionSpecification(schema: JsonSchemaObject, notSecret: readonly string[] = []): void {
  const ajv = createAjv();
  if (!ajv.validateSchema(schema)) {
    throw new Error(`connectionSpecification is not a valid draft-07 JSON Schema:\n  - ${describeSchemaErrors(ajv.errors, 'schema').join('\n  - ')}`);
  }
  try {
    ajv.compile(schema);
  } catch (error) {
    throw new Error(`connectionSpecification does not compile with ajv: ${(error as Error).message}`);
  }
  if (schema.type !== 'object') throw new Error(`connectionSpecification must describe an object (type: "object"), got type ${JSON.stringify(schema.type)}`);
  const unmarked = unmarkedSecretFields(schema).filter((path) => !notSecret.includes(path));
  if (unmarked.length > 0) {
    throw new Error(
      `These fields look like secrets but are not marked "airbyte_secret": true: ${unmarked.join(', ')}. ` +
        'Mark them (they are then redacted from logs, errors and state), or list them in the `notSecret` option with a reason.',
    );
  }
}

/**
 * The `spec` case of every suite: the connection specification passes
 * `assertConnectionSpecification`, and the SPEC message built from the connector's spec
 * (plus the kind-specific fields in `extra`) validates against the protocol.
 */
export function assertSpec(
  spec: { connectionSpecification: JsonSchemaObject; documentationUrl?: string },
  notSecret: readonly string[] | undefined,
  extra: Record<string, unknown> = {},
): void {
  assertConnectionSpecification(spec.connectionSpecification, notSecret);
  const message = {
    type: 'SPEC',
    spec: {
      connectionSpecification: spec.connectionSpecification,
      ...(spec.documentationUrl !== undefined ? { documentationUrl: spec.documentationUrl } : {}),
      ...extra,
    },
  };
  assertValidAirbyteMessage(message, 'the SPEC message');
}

/** Compiles stream schemas once per suite; validation runs on copies because ajv fills in defaults. */
export function createSchemaValidator(): (schema: JsonSchemaObject, value: unknown, root: string) => string[] {
  const ajv: Ajv = createAjv();
  const compiled = new Map<JsonSchemaObject, ReturnType<Ajv['compile']>>();
  return (schema, value, root) => {
    let validate = compiled.get(schema);
    if (!validate) {
      validate = ajv.compile(schema);
      compiled.set(schema, validate);
    }
    return validate(structuredClone(value)) ? [] : describeSchemaErrors(validate.errors, root);
  };
}

/** The value at a field path (['a', 'b'] → value.a.b), or undefined. */
export function valueAt(data: Record<string, unknown>, path: readonly string[]): unknown {
  let current: unknown = data;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** Whether a field path is declared in a JSON schema's (nested) `properties`. */
export function schemaHasPath(schema: JsonSchemaObject, path: readonly string[]): boolean {
  let node: unknown = schema;
  for (const part of path) {
    const properties = (node as { properties?: Record<string, unknown> } | undefined)?.properties;
    if (!properties || !(part in properties)) return false;
    node = properties[part];
  }
  return path.length > 0;
}

/** JSON with object keys sorted, so equal values give equal strings. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Multiset difference, for readable failure messages: what `actual` lacks and what it has twice or extra. */
export function diffMultisets(expected: readonly string[], actual: readonly string[]): { missing: string[]; extra: string[] } {
  const counts = new Map<string, number>();
  for (const e of expected) counts.set(e, (counts.get(e) ?? 0) + 1);
  const extra: string[] = [];
  for (const a of actual) {
    const n = counts.get(a) ?? 0;
    if (n > 0) counts.set(a, n - 1);
    else extra.push(a);
  }
  const missing = [...counts.entries()].flatMap(([value, n]) => Array<string>(n).fill(value));
  return { missing, extra };
}

export function preview(values: readonly string[], max = 5): string {
  return values.length <= max ? values.join(', ') : `${values.slice(0, max).join(', ')} … (${values.length} in all)`;
}

/** The most entries of ascending `starts` that fall within one half-open interval of `windowMs`. */
export function maxStartsWithin(starts: readonly number[], windowMs: number): number {
  let worst = 0;
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (starts[i]! - starts[j]! >= windowMs) j++;
    worst = Math.max(worst, i - j + 1);
  }
  return worst;
}

/** The connectors as the suites drive them: any `define…` result fits. */
export type SourceUnderTest = Source;
export type DestinationUnderTest = Destination;
export type WriterUnderTest = Writer;

/** A config validated against the connector's own spec, handed to its methods (see above). */
export function validated(config: RawConfig): Record<string, unknown> {
  return config;
}
