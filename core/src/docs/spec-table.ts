/**
 * Parameter tables for connector READMEs, generated from the connector's config schema
 * (`spec.connectionSpecification`), so the documentation cannot drift from what the
 * connector accepts: `tributary docs <connector> --write README.md` regenerates a README's
 * table, `--check` (and each repository's staleness test) fails when it is out of date.
 *
 * Contract of `renderSpecTable`:
 * - One GitHub-flavoured Markdown table, columns Parameter | Type | Required | Default |
 *   Description, one row per property. Nested object properties are dotted paths
 *   (`counts.contacts`), properties of array items `list[].field`; children follow their
 *   parent. Siblings are sorted by `order` (ascending; properties without one come last),
 *   then by their appearance in the schema.
 * - Type: the JSON type (`string or null`, `array of string`), numeric bounds after it
 *   (`integer ≥ 1 and ≤ 10000`), other constraints in parentheses (`string (date-time)`,
 *   `string (non-empty)`), and `secret` for fields marked `airbyte_secret: true`.
 * - Required: `yes`, `no`, or `yes, if `parent` is set` for a field required inside an
 *   optional object.
 * - `enum` and `const` values are listed as allowed values; `examples` are listed too.
 * - `oneOf` / `anyOf`: options that are all constants read as allowed values (with their
 *   titles); options that are all scalars read as alternative types; otherwise the
 *   property's row lists the options by title, and each option gets a heading row
 *   (`` `credentials` → **OAuth** ``) followed by its fields, suffixed with the option's
 *   title (`` `credentials.client_id` (OAuth) ``).
 * - Secrets (`airbyte_secret: true`, inherited by everything nested under one): their
 *   default, examples, enum and const values are never printed, and secret fields inside
 *   a printed object default are masked.
 * - Cells escape `|` and turn line breaks into `<br>`. Values are shown in code spans,
 *   strings as they are (quoted only when empty or padded), everything else as JSON.
 * - Deterministic: the output depends only on the schema (no locale, clock or
 *   environment), so an unchanged schema regenerates a README byte for byte.
 *
 * Local `$ref`s (`#/definitions/...`, `#/$defs/...`) are followed; a reference cycle stops
 * at the first repetition. `allOf` members contribute their properties.
 */
import { TributaryError } from '../errors.js';

/** First and last line of the generated section of a README. */
export const SPEC_TABLE_START = '<!-- tributary:spec-table:start -->';
export const SPEC_TABLE_END = '<!-- tributary:spec-table:end -->';

/**
 * The marker lines of a README's table section. A README documenting several connectors (a
 * CRM package's source and writer) names each section: `<!-- tributary:spec-table:start writer -->`.
 */
export function specTableMarkers(section?: string): { start: string; end: string } {
  if (section === undefined) return { start: SPEC_TABLE_START, end: SPEC_TABLE_END };
  if (!/^[\w.-]+$/.test(section)) throw new TributaryError('config', { userMessage: `Section name "${section}" must be letters, digits, '.', '_' or '-'` });
  return { start: `<!-- tributary:spec-table:start ${section} -->`, end: `<!-- tributary:spec-table:end ${section} -->` };
}

/** What a secret field shows wherever a printed value contains it (same mask as the redactor's). */
const SECRET_MASK = '**********';
const NONE = '—';
const HEADER = ['| Parameter | Type | Required | Default | Description |', '| --- | --- | --- | --- | --- |'];

/** A JSON Schema node: read-only, keywords looked up by name. */
type Schema = Readonly<Record<string, unknown>>;

interface Row {
  parameter: string;
  type: string;
  required: string;
  default: string;
  description: string;
}

/** Where a property sits: everything its row and its descendants' rows depend on. */
interface Place {
  /** Dotted path of the property's parent ('' at the root). */
  readonly path: string;
  /** Under a secret: everything below a secret is secret. */
  readonly secret: boolean;
  /** Path of the nearest optional ancestor, if any: required fields are required only when it is set. */
  readonly optionalAncestor: string | undefined;
  /** Titles of the `oneOf`/`anyOf` options chosen on the way here. */
  readonly options: readonly string[];
  /** `$ref`s being expanded on the way here (cycle guard). */
  readonly refs: readonly string[];
}

interface Walk {
  readonly root: Schema;
  readonly rows: Row[];
}

/** Renders the parameter table of a connector config schema (see the module comment). */
export function renderSpecTable(schema: object): string {
  const walk: Walk = { root: schema as Schema, rows: [] };
  const place: Place = { path: '', secret: false, optionalAncestor: undefined, options: [], refs: [] };
  const { schema: root, refs } = resolve(walk, schema as Schema, place.refs);
  const top: Place = { ...place, secret: root.airbyte_secret === true, refs };
  walkObject(walk, root, top);
  const options = optionsOf(walk, root, refs);
  if (options.kind === 'objects') walkOptions(walk, options.options, top);
  const rows = walk.rows.map((r) => `| ${[r.parameter, r.type, r.required, r.default, r.description].map(cell).join(' | ')} |`);
  return [...HEADER, ...rows].join('\n');
}

/**
 * Replaces the content between the README's `SPEC_TABLE_START` and `SPEC_TABLE_END` lines
 * with `table` (markers kept, the table on the lines between them). Idempotent. Keeps the
 * README's line ending style. Throws a `config` error naming `source` when the markers are
 * missing, repeated or out of order.
 */
export function updateReadmeSection(readme: string, table: string, source = 'README', section?: string): string {
  const { start, end } = sectionBounds(readme, source, specTableMarkers(section));
  const eol = readme.includes('\r\n') ? '\r\n' : '\n';
  return readme.slice(0, start) + eol + table.replace(/\r?\n/g, eol) + eol + readme.slice(end);
}

/**
 * The current content between the markers, as `updateReadmeSection` writes it: without the
 * line breaks right after the start marker and right before the end marker, with `\n`
 * line endings. Throws like `updateReadmeSection`.
 */
export function readReadmeSection(readme: string, source = 'README', section?: string): string {
  const { start, end } = sectionBounds(readme, source, specTableMarkers(section));
  return readme
    .slice(start, end)
    .replace(/\r\n/g, '\n')
    .replace(/^\n/, '')
    .replace(/\n$/, '');
}

function sectionBounds(readme: string, source: string, markers: { start: string; end: string }): { start: number; end: number } {
  const { start: open, end: close } = markers;
  const howTo = `put a line ${open} and a line ${close} where the parameter table belongs`;
  // `<!-- …:start -->` is not a substring of `<!-- …:start writer -->`: plain search suffices.
  const find = (marker: string, from = 0): number => readme.indexOf(marker, from);
  const first = find(open);
  const last = find(close);
  if (first === -1 || last === -1) {
    throw new TributaryError('config', { userMessage: `${source} has no spec table section (missing ${first === -1 ? open : close}): ${howTo}` });
  }
  if (find(open, first + 1) !== -1 || find(close, last + 1) !== -1) {
    throw new TributaryError('config', { userMessage: `${source} has more than one spec table section: keep one, ${howTo}` });
  }
  if (last < first) throw new TributaryError('config', { userMessage: `${source}: ${close} comes before ${open}` });
  return { start: first + open.length, end: last };
}

// ---------------------------------------------------------------------------------------
// Walking the schema

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Follows a local `$ref` (keywords beside it override the target's, so a reference can
 * carry its own title or description). A reference already being expanded on this path
 * resolves to the node without `$ref`: the walk stops there instead of looping.
 */
function resolve(walk: Walk, node: Schema, refs: readonly string[]): { schema: Schema; refs: readonly string[] } {
  const ref = node.$ref;
  if (typeof ref !== 'string' || !ref.startsWith('#') || refs.includes(ref)) return { schema: node, refs };
  let target: unknown = walk.root;
  for (const part of ref.slice(1).split('/').filter(Boolean)) {
    const key = decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~');
    target = isSchema(target) ? target[key] : undefined;
  }
  if (!isSchema(target)) return { schema: node, refs };
  const { $ref: _ignored, ...beside } = node;
  return resolve(walk, { ...target, ...beside }, [...refs, ref]);
}

/** Properties of an object schema, its own and those of its `allOf` members, and which are required. */
function propertiesOf(walk: Walk, node: Schema, refs: readonly string[]): { properties: [string, Schema][]; required: Set<string> } {
  const properties = new Map<string, Schema>();
  const required = new Set<string>();
  const add = (schema: Schema): void => {
    if (isSchema(schema.properties)) {
      for (const [name, property] of Object.entries(schema.properties)) if (isSchema(property)) properties.set(name, property);
    }
    if (Array.isArray(schema.required)) for (const name of schema.required) if (typeof name === 'string') required.add(name);
  };
  add(node);
  if (Array.isArray(node.allOf)) for (const member of node.allOf) if (isSchema(member)) add(resolve(walk, member, refs).schema);
  return { properties: [...properties], required };
}

function orderOf(node: Schema): number {
  return typeof node.order === 'number' && Number.isFinite(node.order) ? node.order : Number.POSITIVE_INFINITY;
}

function walkObject(walk: Walk, node: Schema, place: Place): void {
  const { properties, required } = propertiesOf(walk, node, place.refs);
  const sorted = properties
    .map(([name, property], index) => ({ name, property, index, order: orderOf(property) }))
    .sort((a, b) => (a.order === b.order ? a.index - b.index : a.order < b.order ? -1 : 1));
  for (const { name, property } of sorted) walkProperty(walk, property, name, required.has(name), place);
}

type OptionKind = 'none' | 'values' | 'types' | 'objects';

function optionsOf(walk: Walk, node: Schema, refs: readonly string[]): { kind: OptionKind; options: Schema[] } {
  const list = Array.isArray(node.oneOf) ? node.oneOf : Array.isArray(node.anyOf) ? node.anyOf : [];
  const options = list.filter(isSchema).map((option) => resolve(walk, option, refs).schema);
  if (options.length === 0) return { kind: 'none', options };
  if (options.every((o) => 'const' in o)) return { kind: 'values', options };
  if (options.some((o) => o.type === 'object' || isSchema(o.properties) || Array.isArray(o.allOf))) return { kind: 'objects', options };
  return { kind: 'types', options };
}

function optionTitle(option: Schema, index: number): string {
  return typeof option.title === 'string' && option.title.trim() !== '' ? option.title.trim() : `option ${index + 1}`;
}

function walkProperty(walk: Walk, raw: Schema, name: string, isRequired: boolean, parent: Place): void {
  const { schema: node, refs } = resolve(walk, raw, parent.refs);
  const path = parent.path === '' ? name : `${parent.path}.${name}`;
  const secret = parent.secret || node.airbyte_secret === true;
  const options = optionsOf(walk, node, refs);
  walk.rows.push({
    parameter: code(path) + (parent.options.length > 0 ? ` (${parent.options.join(', ')})` : ''),
    type: typeOf(walk, node, refs, secret),
    required: !isRequired ? 'no' : parent.optionalAncestor === undefined ? 'yes' : `yes, if ${code(parent.optionalAncestor)} is set`,
    default: secret || !('default' in node) ? NONE : code(showValue(withoutSecrets(walk, node.default, node, refs))),
    description: describe(walk, node, refs, secret, options),
  });
  const place: Place = { path, secret, optionalAncestor: isRequired ? parent.optionalAncestor : path, options: parent.options, refs };
  walkObject(walk, node, place);
  if (options.kind === 'objects') walkOptions(walk, options.options, place);
  const items = arrayItems(walk, node, refs);
  if (items) walkObject(walk, items, { ...place, path: `${path}[]`, secret: secret || items.airbyte_secret === true });
}

/** A heading row per option, then the option's own fields. */
function walkOptions(walk: Walk, options: Schema[], place: Place): void {
  options.forEach((option, index) => {
    const title = optionTitle(option, index);
    const secret = place.secret || option.airbyte_secret === true;
    walk.rows.push({
      parameter: `${place.path === '' ? '' : `${code(place.path)} `}→ **${title}**`,
      type: typeOf(walk, option, place.refs, secret),
      required: NONE,
      default: NONE,
      description: typeof option.description === 'string' && option.description.trim() !== '' ? option.description.trim() : NONE,
    });
    walkObject(walk, option, { ...place, secret, options: [...place.options, title] });
  });
}

function arrayItems(walk: Walk, node: Schema, refs: readonly string[]): Schema | undefined {
  return isSchema(node.items) ? resolve(walk, node.items, refs).schema : undefined;
}

// ---------------------------------------------------------------------------------------
// Cells

function typesOf(node: Schema): string[] {
  if (typeof node.type === 'string') return [node.type];
  if (Array.isArray(node.type)) return node.type.filter((t): t is string => typeof t === 'string');
  return [];
}

/** The JSON type of a value, as JSON Schema names it. */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value === 'string' || typeof value === 'boolean' ? typeof value : 'object';
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** The Type cell (see the module comment); `secret` adds the `secret` annotation. */
function typeOf(walk: Walk, node: Schema, refs: readonly string[], secret: boolean): string {
  const options = optionsOf(walk, node, refs);
  let types = typesOf(node);
  if (types.length === 0) {
    if (Array.isArray(node.enum)) types = unique(node.enum.map(jsonType));
    else if ('const' in node) types = [jsonType(node.const)];
    else if (options.kind === 'values') types = unique(options.options.map((o) => jsonType(o.const)));
    else if (isSchema(node.properties)) types = ['object'];
  }
  let base: string;
  if (options.kind === 'objects') {
    base = `one of: ${options.options.map(optionTitle).join(', ')}`;
  } else if (types.length === 0 && options.kind === 'types') {
    base = unique(options.options.map((o) => typeOf(walk, o, refs, false))).join(' or ');
  } else if (types.length === 0) {
    base = 'any';
  } else {
    const items = arrayItems(walk, node, refs);
    base = types.map((t) => (t === 'array' && items ? `array of ${typeOf(walk, items, refs, false)}` : t)).join(' or ');
  }
  const bounds = [
    typeof node.minimum === 'number' ? `≥ ${node.minimum}` : undefined,
    typeof node.exclusiveMinimum === 'number' ? `> ${node.exclusiveMinimum}` : undefined,
    typeof node.maximum === 'number' ? `≤ ${node.maximum}` : undefined,
    typeof node.exclusiveMaximum === 'number' ? `< ${node.exclusiveMaximum}` : undefined,
  ].filter((b): b is string => b !== undefined);
  const notes = [
    typeof node.format === 'string' ? node.format : undefined,
    lengthNote(node.minLength, node.maxLength, ''),
    typeof node.pattern === 'string' ? `pattern ${code(node.pattern)}` : undefined,
    lengthNote(node.minItems, node.maxItems, ' items'),
    node.uniqueItems === true ? 'unique items' : undefined,
    isSchema(node.additionalProperties) && !isSchema(node.properties) ? `values: ${typeOf(walk, node.additionalProperties, refs, false)}` : undefined,
    secret ? 'secret' : undefined,
  ].filter((n): n is string => n !== undefined);
  return base + (bounds.length > 0 ? ` ${bounds.join(' and ')}` : '') + (notes.length > 0 ? ` (${notes.join(', ')})` : '');
}

function lengthNote(min: unknown, max: unknown, unit: string): string | undefined {
  const low = typeof min === 'number' && min > 0 ? min : undefined;
  const high = typeof max === 'number' ? max : undefined;
  if (low === 1 && high === undefined && unit === '') return 'non-empty';
  const parts = [low === undefined ? undefined : `≥ ${low}`, high === undefined ? undefined : `≤ ${high}`].filter((p): p is string => p !== undefined);
  if (parts.length === 0) return undefined;
  return unit === '' ? `length ${parts.join(' and ')}` : `${parts.join(' and ')}${unit}`;
}

/** The Description cell: title and description, then allowed values and examples on lines of their own. */
function describe(walk: Walk, node: Schema, refs: readonly string[], secret: boolean, options: { kind: OptionKind; options: Schema[] }): string {
  const title = typeof node.title === 'string' ? node.title.trim() : '';
  const text = typeof node.description === 'string' ? node.description.trim() : '';
  const lines = [title && text ? `**${title}**: ${text}` : title ? `**${title}**` : text];
  if (!secret) {
    const values = allowedValues(node, options);
    if (values) lines.push(values);
    const items = arrayItems(walk, node, refs);
    const itemValues = items && !(items.airbyte_secret === true) ? allowedValues(items, optionsOf(walk, items, refs)) : undefined;
    if (itemValues) lines.push(itemValues.replace(/^Allowed values/, 'Allowed items'));
    if ('examples' in node) {
      const examples = (Array.isArray(node.examples) ? node.examples : [node.examples]).map((e) => code(showValue(withoutSecrets(walk, e, node, refs))));
      if (examples.length > 0) lines.push(`${examples.length === 1 ? 'Example' : 'Examples'}: ${examples.join(', ')}`);
    }
  }
  const content = lines.filter((l) => l !== '');
  return content.length > 0 ? content.join('\n') : NONE;
}

function allowedValues(node: Schema, options: { kind: OptionKind; options: Schema[] }): string | undefined {
  if (Array.isArray(node.enum)) return `Allowed values: ${node.enum.map((v) => code(showValue(v))).join(', ')}`;
  if ('const' in node) return `Must be ${code(showValue(node.const))}`;
  if (options.kind === 'values') {
    const values = options.options.map((o) => {
      const title = typeof o.title === 'string' && o.title.trim() !== '' ? ` (${o.title.trim()})` : '';
      return code(showValue(o.const)) + title;
    });
    return `Allowed values: ${values.join(', ')}`;
  }
  return undefined;
}

/**
 * A copy of `value` (a default or an example of `node`) with every field the schema marks
 * secret replaced by the mask: an object default must not print a secret default inside it.
 */
function withoutSecrets(walk: Walk, value: unknown, node: Schema, refs: readonly string[]): unknown {
  if (node.airbyte_secret === true) return SECRET_MASK;
  if (Array.isArray(value)) {
    const items = arrayItems(walk, node, refs);
    return items ? value.map((v) => withoutSecrets(walk, v, items, refs)) : value;
  }
  if (!isSchema(value)) return value;
  const candidates = [node, ...optionsOf(walk, node, refs).options];
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const schemas = candidates.flatMap((c) => {
      const own = propertiesOf(walk, c, refs).properties.find(([name]) => name === key)?.[1];
      return own ? [own] : isSchema(c.additionalProperties) ? [c.additionalProperties] : [];
    });
    // Masked if any schema that could describe the field says it is secret.
    const resolved = schemas.map((s) => resolve(walk, s, refs).schema);
    const secretOne = resolved.find((s) => s.airbyte_secret === true);
    out[key] = secretOne ? SECRET_MASK : resolved[0] ? withoutSecrets(walk, child, resolved[0], refs) : child;
  }
  return out;
}

/** A value as shown in a code span: strings as they are (JSON-quoted when empty or padded), the rest as JSON. */
function showValue(value: unknown): string {
  if (typeof value === 'string' && value !== '' && value.trim() === value && !/[\r\n]/.test(value)) return value;
  return JSON.stringify(value) ?? String(value);
}

/** A Markdown code span that survives any backticks in `text`. */
function code(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') || (text.startsWith(' ') && text.endsWith(' ') && text.trim() !== '') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/** One table cell: `|` escaped (also inside code spans, as GFM requires), line breaks as `<br>`. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r\n|\r|\n/g, '<br>');
}
