/**
 * Secret handling. A field is secret when its schema says `airbyte_secret: true`.
 * The runtime builds one Redactor per sync from every connector's spec and config and
 * passes every outgoing string (logs, errors, state, progress) through it.
 */

export type Redactor = (text: string) => string;

const MASK = '**********';

/** Collects the values of every `airbyte_secret` field in `config`, following the schema. */
export function collectSecrets(schema: unknown, config: unknown, out: Set<string> = new Set()): Set<string> {
  if (!schema || typeof schema !== 'object' || config === undefined || config === null) return out;
  const node = schema as Record<string, unknown>;
  if (node.airbyte_secret === true) {
    if (typeof config === 'string' && config.length > 0) out.add(config);
    else if (typeof config === 'number' || typeof config === 'object') out.add(typeof config === 'object' ? JSON.stringify(config) : String(config));
    return out;
  }
  for (const combinator of ['oneOf', 'anyOf', 'allOf']) {
    const options = node[combinator];
    if (Array.isArray(options)) for (const option of options) collectSecrets(option, config, out);
  }
  if (typeof config === 'object' && !Array.isArray(config)) {
    const properties = (node.properties ?? {}) as Record<string, unknown>;
    for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
      if (properties[key]) collectSecrets(properties[key], value, out);
    }
  } else if (Array.isArray(config) && node.items) {
    for (const item of config) collectSecrets(node.items, item, out);
  }
  return out;
}

/**
 * Returns a function that replaces every occurrence of every secret with a mask, also where
 * it appears JSON-escaped (protocol lines are redacted after JSON.stringify, which writes
 * `"`, `\` and control characters as escapes), once or twice (a JSON text inside a string).
 */
export function createRedactor(secrets: Iterable<string>): Redactor {
  // Short values would mask unrelated text ("1", "a") and are not meaningful secrets.
  const raw = [...new Set(secrets)].filter((s) => s.length >= 4);
  const escaped = (s: string): string => JSON.stringify(s).slice(1, -1);
  // Longest first: an escaped form is matched whole before the raw form inside it.
  const values = [...new Set(raw.flatMap((s) => [s, escaped(s), escaped(escaped(s))]))].sort((a, b) => b.length - a.length);
  if (values.length === 0) return (text) => text;
  const pattern = new RegExp(values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  return (text) => text.replace(pattern, MASK);
}

/** Applies a redactor to every string inside a JSON-able value. */
export function redactValue<T>(value: T, redact: Redactor): T {
  return JSON.parse(redact(JSON.stringify(value))) as T;
}

/** A copy of `config` with every secret field replaced by the mask (for display). */
export function maskConfig(schema: unknown, config: unknown): unknown {
  return redactValue(config, createRedactor(collectSecrets(schema, config)));
}
