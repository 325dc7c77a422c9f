/**
 * What every scaffolded connector package shares, whatever its kind: naming, the versions
 * it depends on, package.json, tsconfig.json, README and .gitignore. The kind-specific
 * files (src/index.ts, test/conformance.test.ts) come from source.ts, destination.ts and
 * writer.ts. Templates are plain functions returning file contents: no template engine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConnectorKind } from '../cli/connector-registry.js';
import { SPEC_TABLE_END, SPEC_TABLE_START, renderSpecTable } from '../docs/spec-table.js';
import { TributaryError } from '../errors.js';

/** A config schema of a template: plain JSON, written into src/index.ts by `tsLiteral`. */
export type TemplateSchema = Readonly<Record<string, unknown>>;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * `value` (plain JSON) as TypeScript source in the templates' own style: identifier keys
 * unquoted, strings single-quoted, one property per line, arrays of scalars on one line.
 * Each template writes its config schema with it, so that the schema in src/index.ts and
 * the README's parameter table (rendered from the same object) cannot differ.
 */
export function tsLiteral(value: unknown, indent = ''): string {
  if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return `[${value.map((v) => tsLiteral(v)).join(', ')}]`;
    return `[\n${value.map((v) => `${inner}${tsLiteral(v, inner)},\n`).join('')}${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  const key = (name: string): string => (IDENTIFIER.test(name) ? name : tsLiteral(name));
  return `{\n${entries.map(([name, v]) => `${inner}${key(name)}: ${tsLiteral(v, inner)},\n`).join('')}${indent}}`;
}

/** One file of the generated package, `path` relative to its directory, `/`-separated. */
export interface ScaffoldFile {
  path: string;
  content: string;
}

/** Every name a template needs, derived once from the `<name>` the user typed. */
export interface ConnectorNames {
  kind: ConnectorKind;
  /** The connector's short name (`tributary.name`): what sync files and the CLI use, e.g. `acme-crm`. */
  name: string;
  /** The npm package name: `tributary-<kind>-<name>`, or the scoped name as given. */
  packageName: string;
  /** The exported constant, e.g. `acmeCrmSource`. */
  identifier: string;
  /** For titles and prose, e.g. `Acme Crm`. */
  title: string;
}

/**
 * Version ranges of the packages the generated package depends on. Read at run time from
 * the packages installed beside this @tributary/core, so a scaffold matches the toolchain
 * it was generated with. A build tool not found there (the usual case when the CLI runs
 * from `npx --package @tributary/core`, with nothing else installed) gets the range of
 * `TESTED_TOOLCHAIN`; @tributary/conformance, which has no such range, gets `latest`
 * (see `missing`).
 */
export interface DependencyVersions {
  core: string;
  conformance: string;
  vitest: string;
  typescript: string;
  tsx: string;
  typesNode: string;
  /** Packages that were not found beside @tributary/core (written as `latest`). */
  missing: string[];
}

// A connector short name: lower-case words of letters and digits joined by single hyphens,
// starting with a letter. Safe as an npm name segment, a file name, a sync-file value, and
// (camel-cased) a JavaScript identifier.
const SHORT_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const MAX_SHORT_NAME = 50;
// npm's rules for a scope and a package name segment (lower case, URL-safe, no leading . or _).
const SCOPED_NAME = /^@([a-z0-9][a-z0-9._-]*)\/([a-z0-9][a-z0-9._-]*)$/;
/** npm's limit on a full package name. */
const MAX_PACKAGE_NAME = 214;

const KIND_NOUN: Record<ConnectorKind, string> = { source: 'Source', destination: 'Destination', writer: 'Writer' };

/**
 * Validates `<name>` and derives the other names from it. Accepts a short name (`acme`,
 * `acme-crm`), which becomes `tributary-<kind>-<name>`, or a scoped package name
 * (`@acme/tributary-source-crm`), kept as is; its short name is the part after the scope,
 * without a leading `tributary-<kind>-` or `tributary-`. Throws a `config` error saying
 * what a valid name looks like.
 */
export function connectorNames(kind: ConnectorKind, input: string): ConnectorNames {
  const scoped = SCOPED_NAME.exec(input);
  const packageName = scoped ? input : `tributary-${kind}-${input}`;
  const name = scoped ? scoped[2]!.replace(new RegExp(`^tributary-(?:${kind}-)?`), '') : input;
  const problem = !SHORT_NAME.test(name)
    ? scoped
      ? `the name after the scope ("${name}") must be lower-case letters, digits and single hyphens, starting with a letter`
      : 'use lower-case letters, digits and single hyphens, starting with a letter (e.g. "acme" or "acme-crm"), or a scoped package name (e.g. "@acme/tributary-source-crm")'
    : name.length > MAX_SHORT_NAME
      ? `the connector name is longer than ${MAX_SHORT_NAME} characters`
      : packageName.length > MAX_PACKAGE_NAME
        ? `the package name is longer than ${MAX_PACKAGE_NAME} characters`
        : undefined;
  if (problem !== undefined) throw new TributaryError('config', { userMessage: `Invalid connector name "${input}": ${problem}` });
  const words = name.split('-');
  const camel = words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
  const title = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' ');
  return { kind, name, packageName, identifier: `${camel}${KIND_NOUN[kind]}`, title };
}

/** The directory `tributary new` creates when `--dir` is not given: `./<name>` (the unscoped part). */
export function defaultDirectoryName(input: string): string {
  const scoped = SCOPED_NAME.exec(input);
  return scoped ? scoped[2]! : input;
}

/** The directory of this @tributary/core installation (the one holding its package.json). */
function corePackageDirectory(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === '@tributary/core') return dir;
    if (dirname(dir) === dir) throw new Error(`@tributary/core: no package.json of @tributary/core above ${fileURLToPath(import.meta.url)}`);
  }
}

function versionIn(manifest: string): string | undefined {
  try {
    const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The installed version of `name` as Node would resolve it from `from`: the first
 * `node_modules/<name>/package.json` walking up. Read directly, not through `require.resolve`:
 * packages with an `exports` map (ours included) do not expose their package.json.
 */
function installedVersion(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const version = versionIn(join(dir, 'node_modules', ...name.split('/'), 'package.json'));
    if (version !== undefined) return version;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The build tools' ranges this release is built and tested with (the repository's own
 * devDependencies; a test keeps them equal). Used for a tool not installed beside
 * @tributary/core. Never `latest`: a tag resolves to whatever is newest at install time —
 * a vitest outside @tributary/conformance's peer range, a TypeScript or a @types/node for
 * another Node — and a lockfile made from it no longer satisfies the package.json
 * (`npm ci` refuses it, `npm ls` reports it invalid).
 */
export const TESTED_TOOLCHAIN = {
  vitest: '^3.2.7',
  typescript: '^5.9.3',
  tsx: '^4.23.15',
  '@types/node': '^20.19.43',
} as const;

/**
 * See `DependencyVersions`. Caret ranges of the versions installed beside the
 * @tributary/core in `coreDir` (default: this one).
 */
export function dependencyVersions(coreDir: string = corePackageDirectory()): DependencyVersions {
  const missing: string[] = [];
  const range = (name: string, version: string | undefined): string => {
    if (version !== undefined) return `^${version}`;
    missing.push(name);
    return 'latest';
  };
  const find = (name: string): string => range(name, installedVersion(name, coreDir));
  const tool = (name: keyof typeof TESTED_TOOLCHAIN): string => {
    const version = installedVersion(name, coreDir);
    return version !== undefined ? `^${version}` : TESTED_TOOLCHAIN[name];
  };
  return {
    core: range('@tributary/core', versionIn(join(coreDir, 'package.json'))),
    conformance: find('@tributary/conformance'),
    vitest: tool('vitest'),
    typescript: tool('typescript'),
    tsx: tool('tsx'),
    typesNode: tool('@types/node'),
    missing,
  };
}

const KIND_SUMMARY: Record<ConnectorKind, string> = {
  source: 'reads records from Acme into any Tributary destination, with full refresh and incremental sync',
  destination: 'stores the records of any Tributary source, durably and replay-safe',
  writer: 'pushes records into Acme (reverse ETL), idempotently and within its rate limit',
};

function summaryOf(names: ConnectorNames): string {
  return KIND_SUMMARY[names.kind].replace('Acme', names.title);
}

/**
 * package.json. The `keywords` and `tributary` fields are what the CLI's connector discovery
 * looks for (cli/connector-registry.ts); `exports.default` is what it loads (the build);
 * the `tributary-source` condition lets tools that opt in (tsx, vitest, a workspace) run the
 * TypeScript sources directly.
 */
export function packageJson(names: ConnectorNames, versions: DependencyVersions): string {
  const manifest = {
    name: names.packageName,
    version: '0.1.0',
    description: `Tributary ${names.kind} that ${summaryOf(names)}`,
    type: 'module',
    keywords: ['tributary-connector'],
    tributary: { kind: names.kind, name: names.name },
    exports: {
      '.': {
        'tributary-source': './src/index.ts',
        types: './dist/index.d.ts',
        default: './dist/index.js',
      },
    },
    files: ['dist', 'src'],
    scripts: {
      build: 'tsc -p tsconfig.json',
      test: 'npm run build && vitest run',
    },
    dependencies: {
      '@tributary/core': versions.core,
    },
    devDependencies: {
      '@tributary/conformance': versions.conformance,
      '@types/node': versions.typesNode,
      tsx: versions.tsx,
      typescript: versions.typescript,
      vitest: versions.vitest,
    },
  };
  return JSON.stringify(manifest, null, 2) + '\n';
}

/** A standalone tsconfig (no `extends`): strict, NodeNext modules, `src/` built to `dist/`. */
export function tsconfigJson(): string {
  const config = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023'],
      types: ['node'],
      strict: true,
      noUncheckedIndexedAccess: true,
      noImplicitOverride: true,
      noUnusedLocals: true,
      declaration: true,
      sourceMap: true,
      esModuleInterop: true,
      skipLibCheck: true,
      forceConsistentCasingInFileNames: true,
      isolatedModules: true,
      verbatimModuleSyntax: true,
      rootDir: 'src',
      outDir: 'dist',
    },
    include: ['src'],
  };
  return JSON.stringify(config, null, 2) + '\n';
}

/**
 * The package's own vitest config. Without it, a package generated inside another project
 * (e.g. this monorepo) would run under that project's config and find no tests of its own.
 */
export function vitestConfig(): string {
  return [
    "import { defineConfig } from 'vitest/config';",
    '',
    '// Conformance cases start real child processes and wait on rate limits: allow them time.',
    "export default defineConfig({ test: { include: ['test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } });",
    '',
  ].join('\n');
}

export function gitignore(): string {
  return ['node_modules/', 'dist/', '*.tsbuildinfo', 'coverage/', ''].join('\n');
}

/** A sync file using the connector, for the README; its peer is one of the repository's own connectors. */
function syncFileExample(names: ConnectorNames): string {
  const { name } = names;
  const envVar = `${name.toUpperCase().replace(/-/g, '_')}_API_KEY`;
  switch (names.kind) {
    case 'source':
      return [
        `connection: ${name}-to-files`,
        `source: { connector: ${name}, config: { api_key: "\${${envVar}}" } }`,
        'destination: { connector: local, config: { directory: ./out } }',
        'streams: [{ name: contacts, sync_mode: incremental, destination_sync_mode: append_dedup }]',
      ].join('\n');
    case 'destination':
      return [
        `connection: sample-to-${name}`,
        'source: { connector: sample, config: { seed: 7 } }',
        `destination: { connector: ${name}, config: { directory: ./out } }`,
        'streams: [{ name: contacts, sync_mode: incremental, destination_sync_mode: append_dedup }]',
      ].join('\n');
    case 'writer':
      return [
        `connection: contacts-to-${name}`,
        'source: { connector: sample, config: { seed: 7 } }',
        'streams: [{ name: contacts, sync_mode: incremental }]',
        'writer:',
        `  connector: ${name}`,
        '  config: { directory: ./crm }',
        '  object: contacts',
        '  mode: upsert',
        '  id_property: email',
        '  fields: { email: email, name: last_name, score: score }   # target ← source',
      ].join('\n');
  }
}

const README_WHAT: Record<ConnectorKind, string> = {
  source:
    'The generated source reads one stream, `contacts`, from an in-memory stand-in for the API. ' +
    'It supports full refresh and incremental sync with `(updated_at, id)` checkpoints, so a sync ' +
    'resumes exactly where it stopped even when records share an `updated_at`.',
  destination:
    'The generated destination writes each stream to `<directory>/<stream>.jsonl`. A commit fsyncs ' +
    'the files and records their lengths in `_tributary/manifest.json`; anything written after the ' +
    'last commit is cut off on the next open, and replayed records identical to a stored one are ' +
    'dropped (per primary key). Malformed records go to `_quarantine/<stream>.jsonl` with the reason.',
  writer:
    'The generated writer keeps its target in a JSON file per object (`<directory>/contacts.json`), ' +
    'standing in for a CRM API. Writes are per record (partial failures are reported, not thrown), ' +
    'idempotent (a replayed change answers `unchanged`) and serialized per file.',
};

/**
 * README: what the package is, what to replace, how to test it, how the CLI finds it, and
 * the config's parameter table (`tributary docs`' markers around `renderSpecTable` of the
 * template's schema), so that `tributary docs <name> --check/--write README.md` works in
 * the package as generated.
 */
export function readme(names: ConnectorNames, schema: TemplateSchema): string {
  const { kind, name, packageName, identifier } = names;
  const suite = `${kind}Conformance`;
  return `# ${packageName}

A Tributary ${kind} that ${summaryOf(names)}.

Generated by \`tributary new ${kind} ${name}\`. ${README_WHAT[kind]}

Everything marked \`REPLACE\` in \`src/index.ts\` is a stand-in for the real system: swap it
for calls to it, and keep the contracts the comments state — the conformance suite checks
them.

## Layout

| file | |
| --- | --- |
| \`src/index.ts\` | the connector: \`${identifier}\`, built by \`define${KIND_NOUN[kind]}\` from \`@tributary/core\` |
| \`test/conformance.test.ts\` | the shared conformance suite (\`${suite}\` from \`@tributary/conformance\`) in one call |

## Tests

\`\`\`sh
npm install
npm test        # builds (tsc) and runs the conformance suite (vitest)
\`\`\`

The suite registers one test per case of the ${kind} contract; see the README of
\`@tributary/conformance\` for what each case proves. Add tests for what is specific to your
connector beside it in \`test/\`.

## Configuration

Generated from \`connectionSpecification\` in \`src/index.ts\` by \`tributary docs\`. After
changing the schema, regenerate it (the CLI reads the build); \`--check\` instead of
\`--write\` fails while it is stale:

\`\`\`sh
npm run build && npx tributary docs ${name} --kind ${kind} --write README.md
\`\`\`

${SPEC_TABLE_START}
${renderSpecTable(schema)}
${SPEC_TABLE_END}

## How the CLI finds it

The \`tributary\` CLI discovers connector packages by their package.json: the keyword
\`tributary-connector\` and \`"tributary": { "kind": "${kind}", "name": "${name}" }\`. It looks in
every \`node_modules\` from the current directory up, in its own installation, and at the
package of the current directory itself. It loads the build (\`dist/\`), so run
\`npm run build\` first.

\`\`\`sh
npx tributary connectors           # here: lists ${kind} ${name}
npx tributary spec ${name} --kind ${kind}
\`\`\`

Once published, \`npm install ${packageName}\` in a project makes \`${name}\` usable in its sync
files:

\`\`\`yaml
${syncFileExample(names)}
\`\`\`

(\`sample\` and \`local\` are the packages \`@tributary/source-sample\` and
\`@tributary/destination-local\`; any installed connector of the other side will do.)
`;
}

/** The files every kind shares; `schema` is the config schema of the kind's template. */
export function sharedFiles(names: ConnectorNames, versions: DependencyVersions, schema: TemplateSchema): ScaffoldFile[] {
  return [
    { path: 'package.json', content: packageJson(names, versions) },
    { path: 'tsconfig.json', content: tsconfigJson() },
    { path: 'vitest.config.ts', content: vitestConfig() },
    { path: 'README.md', content: readme(names, schema) },
    { path: '.gitignore', content: gitignore() },
  ];
}
