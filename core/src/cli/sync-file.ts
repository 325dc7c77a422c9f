import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ErrorObject } from 'ajv';
import { compileSchema, describeSchemaErrors } from '../config/schema.js';
import { TributaryError } from '../errors.js';
import type {
  AirbyteCatalog,
  AirbyteStream,
  ConfiguredAirbyteCatalog,
  ConfiguredAirbyteStream,
  DestinationSyncMode,
  SyncMode,
} from '../protocol/messages.js';
import type { BatchingOptions } from '../runtime/pipeline.js';

/** A `tributary sync` file after validation and `${ENV}` substitution. */
export interface SyncFile {
  path: string;
  /** Names the connection in the state store (default: the file's base name). */
  connection: string;
  source: { connector: string; config: Record<string, unknown> };
  /** Exactly one of `destination` and `writer` is set. */
  destination?: { connector: string; config: Record<string, unknown> };
  /** Reverse ETL: one source stream written into a target object through a writer. */
  writer?: WriterSelection;
  streams?: StreamSelection[];
  /** State store URL; default `file:<dir of the sync file>/.tributary/state`. */
  state?: string;
  batching?: BatchingOptions;
}

export interface WriterSelection {
  connector: string;
  config: Record<string, unknown>;
  object: string;
  mode: 'insert' | 'update' | 'upsert' | 'delete';
  idProperty: string;
  /** Target field ← source field; default: the source record's own fields. */
  fields?: Record<string, string>;
  dryRun: boolean;
  /** JSON-lines file receiving one entry per record result (default `<sync file>.audit.jsonl`). */
  audit: string;
}

export interface StreamSelection {
  name: string;
  namespace?: string;
  sync_mode?: SyncMode;
  destination_sync_mode?: DestinationSyncMode;
  cursor_field?: string[];
  primary_key?: string[][];
}

const syncFileSchema = {
  type: 'object',
  required: ['source'],
  oneOf: [{ required: ['destination'] }, { required: ['writer'] }],
  additionalProperties: false,
  properties: {
    connection: { type: 'string', minLength: 1 },
    source: { $ref: '#/definitions/connector' },
    destination: { $ref: '#/definitions/connector' },
    writer: {
      type: 'object',
      required: ['connector', 'object', 'id_property'],
      additionalProperties: false,
      properties: {
        connector: { type: 'string', minLength: 1 },
        config: { type: 'object' },
        object: { type: 'string', minLength: 1 },
        mode: { enum: ['insert', 'update', 'upsert', 'delete'], default: 'upsert' },
        id_property: { type: 'string', minLength: 1 },
        fields: { type: 'object', additionalProperties: { type: 'string' } },
        dry_run: { type: 'boolean', default: false },
        audit: { type: 'string', minLength: 1 },
      },
    },
    state: { type: 'string', minLength: 1 },
    streams: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          namespace: { type: 'string' },
          sync_mode: { enum: ['full_refresh', 'incremental'] },
          destination_sync_mode: { enum: ['append', 'overwrite', 'append_dedup', 'update', 'soft_delete'] },
          cursor_field: { type: 'array', items: { type: 'string' } },
          primary_key: { type: 'array', items: { type: 'array', items: { type: 'string' } } },
        },
      },
    },
    batching: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_records: { type: 'integer', minimum: 1 },
        max_bytes: { type: 'integer', minimum: 1 },
        max_age_ms: { type: 'integer', minimum: 1 },
        max_batches_in_flight: { type: 'integer', minimum: 1 },
        commit_interval_ms: { type: 'integer', minimum: 0 },
      },
    },
  },
  definitions: {
    connector: {
      type: 'object',
      required: ['connector'],
      additionalProperties: false,
      properties: { connector: { type: 'string', minLength: 1 }, config: { type: 'object' } },
    },
  },
} as const;

/**
 * Reads a sync file. Strings of the form `${NAME}` (whole or inside a string) are replaced
 * by environment variables, which is how secrets stay out of the file.
 */
export async function readSyncFile(path: string, env: NodeJS.ProcessEnv = process.env): Promise<SyncFile> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    throw new TributaryError('config', { userMessage: `Cannot read sync file ${path}: ${(error as Error).message}` });
  }
  let raw: unknown;
  try {
    // `<<: *anchor` merges the anchored mapping (YAML 1.1 merge keys, as in docker-compose
    // files); without `merge` it would reach the connector as a property named "<<".
    raw = parseYaml(text, { merge: true });
  } catch (error) {
    throw new TributaryError('config', { userMessage: `${path} is not valid YAML: ${(error as Error).message}` });
  }
  const validate = compileSchema(syncFileSchema);
  if (!validate(raw)) {
    throw new TributaryError('config', { userMessage: `Invalid sync file ${path}:\n  - ${syncFileProblems(raw, validate.errors).join('\n  - ')}` });
  }
  const file = substituteEnv(raw, env, 'sync') as {
    connection?: string;
    source: { connector: string; config?: Record<string, unknown> };
    destination?: { connector: string; config?: Record<string, unknown> };
    writer?: {
      connector: string;
      config?: Record<string, unknown>;
      object: string;
      mode: WriterSelection['mode'];
      id_property: string;
      fields?: Record<string, string>;
      dry_run: boolean;
      audit?: string;
    };
    streams?: StreamSelection[];
    state?: string;
    batching?: { max_records?: number; max_bytes?: number; max_age_ms?: number; max_batches_in_flight?: number; commit_interval_ms?: number };
  };
  const b = file.batching;
  const batching: BatchingOptions | undefined = b && {
    ...(b.max_records !== undefined ? { maxRecords: b.max_records } : {}),
    ...(b.max_bytes !== undefined ? { maxBytes: b.max_bytes } : {}),
    ...(b.max_age_ms !== undefined ? { maxAgeMs: b.max_age_ms } : {}),
    ...(b.max_batches_in_flight !== undefined ? { maxBatchesInFlight: b.max_batches_in_flight } : {}),
    ...(b.commit_interval_ms !== undefined ? { commitIntervalMs: b.commit_interval_ms } : {}),
  };
  const baseDir = dirname(absolute);
  return {
    path: absolute,
    connection: file.connection ?? basename(absolute, extname(absolute)),
    source: { connector: file.source.connector, config: resolvePaths(file.source.config ?? {}, baseDir) },
    ...(file.destination
      ? { destination: { connector: file.destination.connector, config: resolvePaths(file.destination.config ?? {}, baseDir) } }
      : {}),
    ...(file.writer
      ? {
          writer: {
            connector: file.writer.connector,
            config: resolvePaths(file.writer.config ?? {}, baseDir),
            object: file.writer.object,
            mode: file.writer.mode,
            idProperty: file.writer.id_property,
            ...(file.writer.fields ? { fields: file.writer.fields } : {}),
            dryRun: file.writer.dry_run,
            audit: resolve(baseDir, file.writer.audit ?? `${basename(absolute, extname(absolute))}.audit.jsonl`),
          },
        }
      : {}),
    ...(file.streams ? { streams: file.streams } : {}),
    state: resolveStateUrl(file.state, baseDir),
    ...(batching ? { batching } : {}),
  };
}

/**
 * The problems of an invalid sync file, as lines naming the offending keys. The schema's
 * `oneOf` (a destination or a writer) would only say "sync must match exactly one schema in
 * oneOf", also for an empty file or one with both: said plainly instead.
 */
function syncFileProblems(raw: unknown, errors: ErrorObject[] | null | undefined): string[] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return [`the file must be a YAML mapping with source: and destination: (or writer: for reverse ETL), not ${raw === null || raw === undefined ? 'empty' : Array.isArray(raw) ? 'a list' : `a ${typeof raw}`}`];
  }
  const fromTarget = (e: ErrorObject): boolean => e.schemaPath.startsWith('#/oneOf');
  const problems = describeSchemaErrors(errors?.filter((e) => !fromTarget(e)), 'sync');
  if (errors?.some(fromTarget)) {
    const has = (key: string): boolean => Object.hasOwn(raw, key);
    problems.push(
      has('destination') && has('writer')
        ? 'sync has both destination: and writer:; a sync writes into one of them (writer: for reverse ETL)'
        : 'sync needs destination: (or writer: for reverse ETL)',
    );
  }
  return problems;
}

/** File state paths in a sync file are relative to the file, like connector directories. */
function resolveStateUrl(url: string | undefined, baseDir: string): string {
  if (url === undefined) return `file:${resolve(baseDir, '.tributary/state')}`;
  if (url.startsWith('file://')) return url;
  if (url.startsWith('file:')) return `file:${resolve(baseDir, url.slice('file:'.length))}`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return url;
  return `file:${resolve(baseDir, url)}`;
}

function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, at: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name];
      if (found === undefined) {
        throw new TributaryError('config', { userMessage: `Environment variable ${name} is not set (referenced at ${at})` });
      }
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, `${at}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, `${at}.${k}`)]));
  }
  return value;
}

/** Relative `directory`/`path` values in connector configs are relative to the sync file. */
function resolvePaths(config: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const out = { ...config };
  for (const key of ['directory', 'path']) {
    const value = out[key];
    if (typeof value === 'string' && !value.includes('://')) out[key] = resolve(baseDir, value);
  }
  return out;
}

/**
 * Turns a discovered catalog and a selection into a configured catalog. Without a
 * selection every stream is synced. Defaults: incremental when supported, then
 * `append_dedup` for keyed incremental streams, `overwrite` for full refresh, else `append`.
 */
export function configureCatalog(
  discovered: AirbyteCatalog,
  selection: StreamSelection[] | undefined,
  supportedDestinationModes: readonly DestinationSyncMode[],
): ConfiguredAirbyteCatalog {
  const chosen: StreamSelection[] = selection ?? discovered.streams.map((s) => ({ name: s.name, ...(s.namespace ? { namespace: s.namespace } : {}) }));
  const streams: ConfiguredAirbyteStream[] = chosen.map((sel) => {
    const stream = selectStream(discovered, sel);
    // `overwrite` replaces the destination's data with what one run reads: with an
    // incremental read that is only what changed since the last run, so the two are never
    // combined; `destination_sync_mode: overwrite` alone therefore means a full refresh.
    const syncMode: SyncMode =
      sel.sync_mode ??
      (sel.destination_sync_mode !== 'overwrite' && stream.supported_sync_modes.includes('incremental') ? 'incremental' : 'full_refresh');
    if (syncMode === 'incremental' && sel.destination_sync_mode === 'overwrite') {
      throw new TributaryError('config', {
        userMessage:
          `Stream "${sel.name}": sync_mode incremental with destination_sync_mode overwrite would replace the destination's data with only the records changed since the last run. ` +
          'Use sync_mode full_refresh with overwrite, or incremental with append or append_dedup.',
      });
    }
    checkFieldPaths(stream, sel);
    const primaryKey = sel.primary_key ?? stream.source_defined_primary_key ?? [];
    const preferred: DestinationSyncMode =
      syncMode === 'incremental' ? (primaryKey.length > 0 ? 'append_dedup' : 'append') : 'overwrite';
    const destinationSyncMode =
      sel.destination_sync_mode ?? (supportedDestinationModes.includes(preferred) ? preferred : 'append');
    const cursorField = sel.cursor_field ?? stream.default_cursor_field;
    if (syncMode === 'incremental' && (!cursorField || cursorField.length === 0)) {
      throw new TributaryError('config', { userMessage: `Stream "${sel.name}": incremental sync needs a cursor_field` });
    }
    return {
      stream,
      sync_mode: syncMode,
      destination_sync_mode: destinationSyncMode,
      ...(cursorField ? { cursor_field: cursorField } : {}),
      ...(primaryKey.length > 0 ? { primary_key: primaryKey } : {}),
    };
  });
  return { streams };
}

const describeStream = (s: AirbyteStream): string => (s.namespace ? `${s.namespace}.${s.name}` : s.name);

/** The discovered stream a selection names; refuses a name that is absent or, without a namespace, ambiguous. */
function selectStream(discovered: AirbyteCatalog, sel: StreamSelection): AirbyteStream {
  const matches = discovered.streams.filter((s) => s.name === sel.name && (sel.namespace === undefined || s.namespace === sel.namespace));
  if (matches.length === 0) {
    const named = sel.namespace === undefined ? `"${sel.name}"` : `"${sel.name}" in namespace "${sel.namespace}"`;
    throw new TributaryError('config', {
      userMessage: `Unknown stream ${named}. The source offers: ${discovered.streams.map(describeStream).join(', ')}`,
    });
  }
  if (matches.length > 1) {
    throw new TributaryError('config', {
      userMessage: `Stream "${sel.name}" exists in several namespaces (${matches.map((s) => s.namespace ?? '(none)').join(', ')}): add namespace: to pick one`,
    });
  }
  return matches[0]!;
}

/**
 * A cursor_field or primary_key path that names no field of the stream is a typo: the source
 * would ignore or query by an unknown cursor, and a destination would find no key in any
 * record (quarantining every one of them, or deduplicating on nothing). Both are refused at
 * plan time, before anything is read or written. A source-defined cursor cannot be changed,
 * so another one is refused rather than silently ignored; a primary_key other than the
 * source-defined one is allowed, because the destination, not the source, applies it.
 *
 * A path is checked against the `properties` the schema declares, whatever its
 * `additionalProperties` says: an open schema (the JSON Schema default) still lists the
 * fields its source produces, as the connector contract requires for keys and cursors, and a
 * field it does not declare is not one every record can be relied on to carry. Only a level
 * that declares no `properties` (a schemaless stream or object field) cannot prove a field
 * absent; such a path is accepted, and records that lack it are the destination's to refuse.
 */
function checkFieldPaths(stream: AirbyteStream, sel: StreamSelection): void {
  if (sel.cursor_field) refuseUnknownField(stream, sel, 'cursor_field', sel.cursor_field);
  for (const path of sel.primary_key ?? []) refuseUnknownField(stream, sel, 'primary_key', path);
  const defined = stream.default_cursor_field ?? [];
  if (sel.cursor_field && stream.source_defined_cursor === true && defined.length > 0 && sel.cursor_field.join('.') !== defined.join('.')) {
    throw new TributaryError('config', {
      userMessage: `Stream "${sel.name}": the source defines its cursor (${defined.join('.')}); cursor_field ${sel.cursor_field.join('.')} would be ignored. Remove it from the sync file.`,
    });
  }
}

/**
 * Refuses a configured stream (of a catalog given whole, e.g. `tributary write --catalog`)
 * whose primary_key or cursor_field names no field of its schema, as `checkFieldPaths` does
 * for a sync file's selection. An empty cursor_field is the source's own choice and passes.
 */
export function checkConfiguredFields(configured: ConfiguredAirbyteStream): void {
  const sel: StreamSelection = { name: configured.stream.name };
  const cursor = configured.cursor_field ?? [];
  if (cursor.length > 0) refuseUnknownField(configured.stream, sel, 'cursor_field', cursor);
  for (const path of configured.primary_key ?? []) refuseUnknownField(configured.stream, sel, 'primary_key', path);
}

/** Refuses `path` as the stream's `setting` when the stream's schema proves it names no field, listing the fields there are. */
function refuseUnknownField(stream: AirbyteStream, sel: StreamSelection, setting: 'cursor_field' | 'primary_key', path: string[]): void {
  const missing = missingField(stream.json_schema, path);
  if (missing === undefined) return;
  // The fields of the level where the path left the schema: the stream's own for a top-level
  // name, the parent object's for a nested one (where the typo is).
  const parent = missing.parent.join('.');
  const listed =
    missing.parent.length === 0
      ? missing.fields.length > 0
        ? ` (its fields: ${missing.fields.join(', ')})`
        : ''
      : missing.fields.length > 0
        ? ` (fields of ${parent}: ${missing.fields.join(', ')})`
        : ` (${parent} has no fields)`;
  throw new TributaryError('config', {
    userMessage: `Stream "${sel.name}": ${setting} ${path.join('.') || '(empty)'} is not a field of the stream${listed}`,
  });
}

/**
 * Undefined when `path` is declared in the schema, or cannot be checked: it reaches a level
 * that declares no `properties` and may be an object. Else the path up to the level where it
 * leaves the declared fields, and the field names declared there (none for an empty path or
 * a level that cannot hold fields, e.g. a string).
 */
function missingField(schema: Record<string, unknown>, path: string[]): { parent: string[]; fields: string[] } | undefined {
  if (path.length === 0) return { parent: [], fields: [] };
  let node: unknown = schema;
  for (const [depth, part] of path.entries()) {
    const properties = (node as { properties?: unknown } | undefined)?.properties;
    if (!properties || typeof properties !== 'object') {
      return cannotBeObject(node) ? { parent: path.slice(0, depth), fields: [] } : undefined;
    }
    if (!Object.hasOwn(properties, part)) return { parent: path.slice(0, depth), fields: Object.keys(properties) };
    node = (properties as Record<string, unknown>)[part];
  }
  return undefined;
}

/** A schema whose `type` excludes "object" (e.g. `string`, `["integer", "null"]`) has no fields; without a `type` it may have any. */
function cannotBeObject(schema: unknown): boolean {
  const type = (schema as { type?: unknown } | undefined)?.type;
  if (typeof type === 'string') return type !== 'object';
  if (Array.isArray(type)) return !type.includes('object');
  return false;
}
