import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { createAjv, describeSchemaErrors } from '@tributary/core';

/**
 * Validation against the Airbyte protocol v0 schema. The schema is not vendored: it is
 * read from `<repoRoot>/../shared/specs/airbyte_protocol_v0.yaml`, the copy of `shared/`
 * that sits beside every clone (developer machines and CI alike).
 */

const SPEC_RELATIVE_PATH = join('shared', 'specs', 'airbyte_protocol_v0.yaml');

/** Which payload property each message type must carry (the protocol schema leaves it optional). */
const PAYLOAD_OF_TYPE: Record<string, string> = {
  RECORD: 'record',
  STATE: 'state',
  LOG: 'log',
  TRACE: 'trace',
  SPEC: 'spec',
  CATALOG: 'catalog',
  CONNECTION_STATUS: 'connectionStatus',
  CONTROL: 'control',
  DESTINATION_CATALOG: 'destination_catalog',
};

/** The monorepo root: the nearest ancestor of this package whose package.json declares workspaces. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { workspaces?: unknown };
      if (parsed.workspaces !== undefined) return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`Cannot find the repository root (a package.json with "workspaces") above ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
}

/**
 * Absolute path of the Airbyte protocol schema this package validates against: the copy the
 * build placed in `dist/` (what a published package carries), else the repository's
 * `<repoRoot>/../shared/specs` (tests run from sources).
 */
export function airbyteProtocolSchemaPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const bundled of [join(here, 'airbyte_protocol_v0.yaml'), join(here, '..', 'dist', 'airbyte_protocol_v0.yaml')]) {
    if (existsSync(bundled)) return bundled;
  }
  return resolve(findRepoRoot(), '..', SPEC_RELATIVE_PATH);
}

interface ProtocolValidators {
  byDefinition(name: string): ValidateFunction;
}

let loaded: ProtocolValidators | undefined;

function protocol(): ProtocolValidators {
  if (loaded) return loaded;
  const path = airbyteProtocolSchemaPath();
  if (!existsSync(path)) {
    throw new Error(
      `The Airbyte protocol schema is missing: expected ${path}. ` +
        'Build the package (`npm run build`, which bundles it) or place a copy of shared/ beside the repository clone.',
    );
  }
  const document = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const id = typeof document.$id === 'string' ? document.$id : 'airbyte_protocol_v0';
  // A dedicated instance: the protocol document carries Java codegen keywords
  // (existingJavaType) that the shared instance's non-strict mode ignores all the same.
  const ajv = createAjv();
  ajv.addSchema({ ...document, $id: id });
  const cache = new Map<string, ValidateFunction>();
  loaded = {
    byDefinition(name) {
      let validate = cache.get(name);
      if (!validate) {
        validate = ajv.getSchema(`${id}#/definitions/${name}`);
        if (!validate) throw new Error(`The Airbyte protocol schema at ${path} has no definition "${name}"`);
        cache.set(name, validate);
      }
      return validate;
    },
  };
  return loaded;
}

/**
 * Validates `value` against one definition of the protocol schema (e.g.
 * `ConfiguredAirbyteCatalog`). Returns the problems as `path message` lines; empty when valid.
 * The value is not modified (validation runs on a copy, because ajv fills defaults in).
 */
export function validateAirbyteDefinition(definition: string, value: unknown): string[] {
  const validate = protocol().byDefinition(definition);
  const copy: unknown = structuredClone(value);
  return validate(copy) ? [] : describeSchemaErrors(validate.errors, definition);
}

/**
 * Validates one Airbyte message (an object, or one JSON line as printed on stdout) against
 * `AirbyteMessage` of the protocol schema, and checks that the payload its `type` names
 * is present (the schema itself leaves every payload optional).
 * Returns the problems as lines; an empty array means the message is valid.
 */
export function validateAirbyteMessage(message: unknown): string[] {
  let value = message;
  if (typeof message === 'string') {
    try {
      value = JSON.parse(message) as unknown;
    } catch (error) {
      return [`not a JSON line: ${(error as Error).message}`];
    }
  }
  const problems = validateAirbyteDefinition('AirbyteMessage', value);
  if (problems.length > 0) return problems;
  const object = value as Record<string, unknown>;
  const payload = PAYLOAD_OF_TYPE[String(object.type)];
  if (payload !== undefined && (object[payload] === undefined || object[payload] === null)) {
    return [`AirbyteMessage of type ${String(object.type)} has no "${payload}"`];
  }
  return [];
}
