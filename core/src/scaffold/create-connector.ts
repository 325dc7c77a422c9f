/**
 * `tributary new`: writes a connector package from the templates (shared.ts plus the
 * module of its kind) into a new or empty directory.
 */
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { ConnectorKind } from '../cli/connector-registry.js';
import { TributaryError } from '../errors.js';
import { destinationConfigSchema, destinationFiles } from './destination.js';
import { connectorNames, defaultDirectoryName, dependencyVersions, sharedFiles, type ConnectorNames, type ScaffoldFile, type TemplateSchema } from './shared.js';
import { sourceConfigSchema, sourceFiles } from './source.js';
import { writerConfigSchema, writerFiles } from './writer.js';

export const CONNECTOR_KINDS: readonly ConnectorKind[] = ['source', 'destination', 'writer'];

export function isConnectorKind(value: string | undefined): value is ConnectorKind {
  return value !== undefined && (CONNECTOR_KINDS as readonly string[]).includes(value);
}

export interface CreateConnectorOptions {
  kind: ConnectorKind;
  /** As typed by the user: a short name (`acme`) or a scoped package name (`@acme/tributary-source-crm`). */
  name: string;
  /** Where to create the package; default `./<name>` (the unscoped part) under `cwd`. */
  directory?: string;
  /** Base of a relative `directory`; default `process.cwd()`. */
  cwd?: string;
}

export interface CreatedConnector {
  names: ConnectorNames;
  /** Absolute path of the package directory. */
  directory: string;
  /** Paths of the files written, relative to `directory`. */
  files: string[];
  /** Dependencies not found beside @tributary/core, written as `latest` (pin them). */
  unpinned: string[];
}

const KIND_FILES: Record<ConnectorKind, (names: ConnectorNames) => ScaffoldFile[]> = {
  source: sourceFiles,
  destination: destinationFiles,
  writer: writerFiles,
};

/** Each template's config schema: written into its src/index.ts, and its README's table. */
const KIND_SCHEMA: Record<ConnectorKind, (names: ConnectorNames) => TemplateSchema> = {
  source: sourceConfigSchema,
  destination: destinationConfigSchema,
  writer: writerConfigSchema,
};

/** Refuses a directory that exists and is not empty, or is not a directory: nothing is ever overwritten. */
async function assertUsableDirectory(directory: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(directory)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new TributaryError('config', { userMessage: `Cannot use ${directory}: ${(error as Error).message}` });
  }
  if (!isDirectory) throw new TributaryError('config', { userMessage: `${directory} exists and is not a directory` });
  const entries = await readdir(directory);
  if (entries.length > 0) {
    throw new TributaryError('config', { userMessage: `${directory} is not empty (${entries.length} entries): choose a new or empty directory with --dir` });
  }
}

/**
 * Validates the name (before touching the disk), refuses a non-empty target, then writes
 * every file. Throws `config` TributaryErrors for everything the user can fix.
 */
export async function createConnectorPackage(options: CreateConnectorOptions): Promise<CreatedConnector> {
  const names = connectorNames(options.kind, options.name);
  const directory = resolve(options.cwd ?? process.cwd(), options.directory ?? defaultDirectoryName(options.name));
  await assertUsableDirectory(directory);
  const versions = dependencyVersions();
  const files = [...sharedFiles(names, versions, KIND_SCHEMA[options.kind](names)), ...KIND_FILES[options.kind](names)];
  for (const file of files) {
    const path = join(directory, ...file.path.split('/'));
    await mkdir(dirname(path), { recursive: true });
    // 'wx': never overwrite, even if something appeared since the check.
    await writeFile(path, file.content, { flag: 'wx' });
  }
  return { names, directory, files: files.map((f) => f.path), unpinned: versions.missing };
}

/** What `tributary new` prints once the package is written. */
export function describeCreated(created: CreatedConnector, cwd: string = process.cwd()): string {
  const { names, directory, files } = created;
  // Relative when inside cwd (what the user typed, usually), absolute otherwise.
  const inside = relative(cwd, directory);
  const shown = inside !== '' && !inside.startsWith('..') && !isAbsolute(inside) ? `./${inside}` : directory;
  const lines = [
    `Created ${names.packageName} (${names.kind} "${names.name}") in ${shown}:`,
    ...files.map((f) => `  ${f}`),
  ];
  if (created.unpinned.length > 0) {
    lines.push('', `warning: not installed beside this tributary CLI, so written as "latest": ${created.unpinned.join(', ')}. Pin them in package.json.`);
  }
  lines.push('', 'Next:', `  cd ${shown}`, '  npm install', '  npm test        # build, then the conformance suite', '');
  return lines.join('\n');
}
