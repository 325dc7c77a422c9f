import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Destination } from '../connector/destination.js';
import type { Source } from '../connector/source.js';
import type { Connector, Writer } from '../connector/writer.js';
import { TributaryError } from '../errors.js';

export type ConnectorKind = 'source' | 'destination' | 'writer';

/** An installed connector package, found by its `tributary-connector` keyword. */
export interface InstalledConnector {
  /** Short name from the package's `tributary.name` (e.g. `sample`). */
  name: string;
  kind: ConnectorKind;
  packageName: string;
  version: string;
  directory: string;
}

interface ConnectorEntry {
  kind?: string;
  name?: string;
}

interface PackageJson {
  name?: string;
  /** CLI subcommands the package adds: `tributary <name> …` runs the module's default export. */
  tributaryCommands?: Record<string, { module?: string; description?: string }>;
  version?: string;
  keywords?: string[];
  /** One connector, or several for a package per SaaS (e.g. a CRM's source and writer). */
  tributary?: ConnectorEntry | ConnectorEntry[];
  exports?: unknown;
  main?: string;
}

/**
 * Finds connector packages: the package `from` is in (a connector being developed, so
 * `tributary spec <name>` works inside it once built), then every `node_modules` from
 * `from` up to the root, then the CLI's own installation. A package is a connector when its
 * package.json has the keyword `tributary-connector` and a `tributary: { kind, name }`
 * field, or an array of them when the package exports several connectors (a CRM's source
 * and writer); `loadConnector` then picks the export of the wanted kind. Nearer packages win.
 */
export async function listInstalledConnectors(from: string = process.cwd()): Promise<InstalledConnector[]> {
  const found = new Map<string, InstalledConnector>();
  const add = async (dir: string): Promise<void> => {
    const pkg = await readPackage(dir);
    if (!pkg?.name || !pkg.keywords?.includes('tributary-connector')) return;
    const entries = Array.isArray(pkg.tributary) ? pkg.tributary : pkg.tributary ? [pkg.tributary] : [];
    for (const entry of entries) {
      const kind = entry.kind;
      if (kind !== 'source' && kind !== 'destination' && kind !== 'writer') continue;
      const name = entry.name ?? pkg.name;
      const id = `${kind}:${name}`;
      if (!found.has(id)) found.set(id, { name, kind, packageName: pkg.name, version: pkg.version ?? '0.0.0', directory: dir });
    }
  };
  const own = await enclosingPackage(resolve(from));
  if (own !== undefined) await add(own);
  const roots = [...ancestors(resolve(from)), ...ancestors(dirname(fileURLToPath(import.meta.url)))];
  for (const root of roots) {
    for (const dir of await packageDirs(join(root, 'node_modules'))) await add(dir);
  }
  return [...found.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}

/** The nearest directory at or above `start` holding a package.json, if any. */
async function enclosingPackage(start: string): Promise<string | undefined> {
  for (const dir of ancestors(start)) {
    const exists = await stat(join(dir, 'package.json')).then(
      (s) => s.isFile(),
      () => false,
    );
    if (exists) return dir;
  }
  return undefined;
}

/**
 * Loads a connector by short name (`sample`), package name (`@acme/tributary-foo`) or a
 * path to a module (`./my-source.js`), of the given kind or, without one, of any kind.
 * Throws a `config` error listing what is installed.
 */
export async function loadConnector(reference: string, kind: 'source', from?: string): Promise<Source>;
export async function loadConnector(reference: string, kind: 'destination', from?: string): Promise<Destination>;
export async function loadConnector(reference: string, kind: 'writer', from?: string): Promise<Writer>;
export async function loadConnector(reference: string, kind?: ConnectorKind, from?: string): Promise<Connector>;
export async function loadConnector(reference: string, kind?: ConnectorKind, from = process.cwd()): Promise<Connector> {
  const wanted = (c: { kind: string }): boolean => kind === undefined || c.kind === kind;
  let moduleUrl: string;
  if (reference.startsWith('.') || isAbsolute(reference)) {
    moduleUrl = pathToFileURL(resolve(from, reference)).href;
  } else {
    const installed = await listInstalledConnectors(from);
    const match =
      installed.find((c) => wanted(c) && c.name === reference) ?? installed.find((c) => wanted(c) && c.packageName === reference);
    if (!match) {
      const available = installed.filter(wanted).map((c) => (kind ? c.name : `${c.name} (${c.kind})`));
      const listed = available.length ? available.join(', ') : '(none)';
      throw new TributaryError('config', {
        userMessage: kind
          ? `Unknown ${kind} connector "${reference}". Installed ${kind}s: ${listed}. Install its package or give a path to a module.`
          : `Unknown connector "${reference}". Installed: ${listed}`,
      });
    }
    moduleUrl = pathToFileURL(await entryPoint(match.directory)).href;
  }
  let module: Record<string, unknown>;
  try {
    module = (await import(moduleUrl)) as Record<string, unknown>;
  } catch (error) {
    throw new TributaryError('config', { userMessage: `Cannot load connector "${reference}"`, internalMessage: String(error), cause: error });
  }
  const candidates = [module.default, ...Object.values(module)];
  // A package may export several connectors of one kind (e.g. a source and a webhook
  // source): the one whose name was asked for comes first.
  const connector =
    candidates.find((c): c is Connector => isConnector(c) && wanted(c) && (c as { name?: unknown }).name === reference) ??
    candidates.find((c): c is Connector => isConnector(c) && wanted(c));
  if (!connector) {
    throw new TributaryError('config', {
      userMessage: kind
        ? `"${reference}" does not export a ${kind} (an object built by define${capitalize(kind)})`
        : `"${reference}" does not export a connector (an object built by defineSource, defineDestination or defineWriter)`,
    });
  }
  return connector;
}

function isConnector(value: unknown): value is Connector {
  return typeof value === 'object' && value !== null && 'kind' in value && 'spec' in value;
}

function capitalize(text: string): string {
  return text[0]!.toUpperCase() + text.slice(1);
}

function ancestors(start: string): string[] {
  const out: string[] = [];
  for (let dir = start; ; dir = dirname(dir)) {
    out.push(dir);
    if (dirname(dir) === dir) return out;
  }
}

async function packageDirs(modules: string): Promise<string[]> {
  const entries = await readdir(modules).catch(() => [] as string[]);
  const dirs: string[] = [];
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@')) {
      for (const scoped of await readdir(join(modules, entry)).catch(() => [] as string[])) dirs.push(join(modules, entry, scoped));
    } else dirs.push(join(modules, entry));
  }
  return dirs;
}

async function readPackage(dir: string): Promise<PackageJson | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/** The module file a package exposes as `.` for Node's default condition. */
async function entryPoint(dir: string): Promise<string> {
  const pkg = (await readPackage(dir)) ?? {};
  const pick = (target: unknown): string | undefined => {
    if (typeof target === 'string') return target;
    if (target && typeof target === 'object') {
      const t = target as Record<string, unknown>;
      return pick(t['.']) ?? pick(t.import) ?? pick(t.default);
    }
    return undefined;
  };
  const relative = pick(pkg.exports) ?? pkg.main ?? 'index.js';
  const file = join(dir, relative);
  const built = await stat(file).then(
    () => true,
    () => false,
  );
  if (!built) {
    throw new TributaryError('config', { userMessage: `Connector package ${pkg.name ?? dir} is not built: ${file} is missing (run \`npm run build\`)` });
  }
  return file;
}

/**
 * A CLI subcommand contributed by an installed package (e.g. `tributary lake …` from the
 * lake destination). The package declares it in package.json:
 * `"tributaryCommands": { "lake": { "module": "./dist/lake-command.js", "description": "…" } }`.
 * The module's default export is a `PluginCommand`.
 */
export interface InstalledCommand {
  name: string;
  description: string;
  packageName: string;
  /** Absolute path of the module to import. */
  modulePath: string;
}

/**
 * Contract of a contributed command: receives the arguments after its name, writes to
 * stdout/stderr itself, returns the exit code (0 ok, 1 failure, 2 usage). It may throw a
 * `TributaryError`; the CLI then prints `error: …` and exits 2 for config errors, else 1.
 */
export type PluginCommand = (args: string[]) => Promise<number>;

/** Commands contributed by installed packages, found the same way as connectors. */
export async function listInstalledCommands(from: string = process.cwd()): Promise<InstalledCommand[]> {
  const found = new Map<string, InstalledCommand>();
  const add = async (dir: string): Promise<void> => {
    const pkg = await readPackage(dir);
    if (!pkg?.name || !pkg.keywords?.includes('tributary-connector') || !pkg.tributaryCommands) return;
    for (const [name, entry] of Object.entries(pkg.tributaryCommands)) {
      if (!entry.module || found.has(name)) continue;
      found.set(name, { name, description: entry.description ?? '', packageName: pkg.name, modulePath: resolve(dir, entry.module) });
    }
  };
  const own = await enclosingPackage(resolve(from));
  if (own !== undefined) await add(own);
  const roots = [...ancestors(resolve(from)), ...ancestors(dirname(fileURLToPath(import.meta.url)))];
  for (const root of roots) {
    for (const dir of await packageDirs(join(root, 'node_modules'))) await add(dir);
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Imports a contributed command's module and returns its handler. */
export async function loadCommand(command: InstalledCommand): Promise<PluginCommand> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(command.modulePath).href)) as Record<string, unknown>;
  } catch (error) {
    throw new TributaryError('config', {
      userMessage: `Cannot load command "${command.name}" from ${command.packageName} (is it built?)`,
      internalMessage: String(error),
      cause: error,
    });
  }
  if (typeof module.default !== 'function') {
    throw new TributaryError('config', { userMessage: `${command.packageName} declares command "${command.name}" but its module has no default export function` });
  }
  return module.default as PluginCommand;
}
