/**
 * End-to-end tests of `tributary new`, run through the BUILT CLI (`npx tsc -b` first;
 * `npm test` builds before vitest). For each kind, the CLI generates a package in a temporary
 * directory outside the repository, as a connector author would; the test then points the
 * package's two @tributary dependencies at this checkout (`file:` links, which npm installs
 * as symlinks: no registry publish of our packages), installs it (vitest, typescript, tsx and
 * @types/node come from the registry, through one npm cache shared by the three installs),
 * runs the package's own `npm test` (its build, then its conformance suite) and checks that
 * the CLI, run inside the package, lists it and loads it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destinationCases, sourceCases, validateAirbyteMessage, writerCases } from '@tributary/conformance';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(REPO, 'core', 'bin', 'tributary.js');
const KINDS = ['source', 'destination', 'writer'] as const;
type Kind = (typeof KINDS)[number];

/** Tests registered by each generated package's suite. The destination template omits `overwrite`, so that case is not registered. */
const EXPECTED_TESTS: Record<Kind, number> = {
  // Not `completeness`: it needs expectedKeys, the truth from a real peer the template has not.
  source: Object.keys(sourceCases).length - 1,
  destination: Object.keys(destinationCases).length - 1,
  writer: Object.keys(writerCases).length,
};

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The environment of every child: this process's, without what would leak the parent run
 * into the child's (npm's lifecycle variables of a root `npm test`, vitest's worker state
 * and forced colours, NODE_ENV, NODE_OPTIONS, TRIBUTARY_*). Output is plain text.
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase();
    if (lower.startsWith('npm_') || key.startsWith('VITEST') || key.startsWith('TRIBUTARY_')) continue;
    if (['NODE_OPTIONS', 'NODE_ENV', 'INIT_CWD', 'TEST', 'FORCE_COLOR'].includes(key)) continue;
    env[key] = value;
  }
  env.NO_COLOR = '1';
  return env;
}

function run(command: string, args: string[], cwd: string, timeoutMs = 150_000): Promise<Result> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout: plain(stdout), stderr: plain(stderr), ms: Date.now() - started });
    });
  });
}

/** Without ANSI escape sequences, should a tool colour its output regardless. */
function plain(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

const tributary = (args: string[], cwd: string): Promise<Result> => run(process.execPath, [CLI, ...args], cwd, 60_000);

/** The child's output, for failure messages. */
function output(result: Result): string {
  return `exit ${String(result.code)}\n--- stdout\n${result.stdout.slice(-6000)}\n--- stderr\n${result.stderr.slice(-6000)}`;
}

function expectOk(result: Result, what: string): void {
  if (result.code !== 0) throw new Error(`${what} failed:\n${output(result)}`);
}

function versionOf(packageDir: string): string {
  return (JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string }).version;
}

interface Manifest {
  name: string;
  type: string;
  keywords: string[];
  tributary: { kind: string; name: string };
  exports: Record<string, Record<string, string>>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

async function manifestOf(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest;
}

let root: string;
let npmCache: string;

beforeAll(async () => {
  for (const built of ['core/dist/scaffold/create-connector.js', 'core/dist/index.js', 'conformance/dist/index.js']) {
    if (!existsSync(join(REPO, built))) throw new Error(`${built} is missing: build first (npx tsc -b)`);
  }
  root = await mkdtemp(join(tmpdir(), 'tributary-scaffold-'));
  npmCache = join(root, 'npm-cache');
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('tributary new: arguments', () => {
  it('refuses invalid names, unknown kinds, missing names and non-empty directories, writing nothing', async () => {
    const cwd = await mkdtemp(join(root, 'refusals-'));
    for (const name of ['Acme', '9lives', 'acme_crm', 'acme--crm', 'acme-', '@Acme/tributary-source-x', '@acme/tributary-source-', 'a'.repeat(51)]) {
      const result = await tributary(['new', 'source', name], cwd);
      expect(result.code, output(result)).toBe(2);
      expect(result.stderr).toContain(`Invalid connector name "${name}"`);
    }
    for (const args of [['new', 'gadget', 'acme'], ['new', 'source'], ['new'], ['new', 'source', 'acme', 'extra']]) {
      const result = await tributary(args, cwd);
      expect(result.code, output(result)).toBe(2);
      expect(result.stderr).toContain('Usage: tributary new source|destination|writer <name> [--dir <path>]');
    }
    expect(await readdir(cwd)).toEqual([]);

    const taken = join(cwd, 'taken');
    await mkdir(taken);
    await writeFile(join(taken, 'notes.txt'), 'mine');
    const nonEmpty = await tributary(['new', 'writer', 'acme', '--dir', taken], cwd);
    expect(nonEmpty.code, output(nonEmpty)).toBe(2);
    expect(nonEmpty.stderr).toMatch(/is not empty/);
    expect(await readdir(taken)).toEqual(['notes.txt']);

    const file = join(cwd, 'a-file');
    await writeFile(file, 'x');
    const notDirectory = await tributary(['new', 'destination', 'acme', '--dir', file], cwd);
    expect(notDirectory.code, output(notDirectory)).toBe(2);
    expect(notDirectory.stderr).toMatch(/exists and is not a directory/);

    // An existing empty directory is fine.
    const empty = join(cwd, 'empty');
    await mkdir(empty);
    expectOk(await tributary(['new', 'source', 'acme', '--dir', empty], cwd), 'new into an empty directory');
    expect((await manifestOf(empty)).name).toBe('tributary-source-acme');
  });

  it('defaults to ./<name>, derives names from it, keeps scoped names, and pins this workspace\'s versions', async () => {
    const cwd = await mkdtemp(join(root, 'names-'));
    const created = await tributary(['new', 'writer', 'acme-crm'], cwd);
    expectOk(created, 'new writer acme-crm');
    expect(created.stdout).toContain('Created tributary-writer-acme-crm (writer "acme-crm") in ./acme-crm');
    const dir = join(cwd, 'acme-crm');
    expect((await readdir(dir)).sort()).toEqual(['.gitignore', 'README.md', 'package.json', 'src', 'test', 'tsconfig.json', 'vitest.config.ts']);
    const manifest = await manifestOf(dir);
    expect(manifest).toMatchObject({
      name: 'tributary-writer-acme-crm',
      type: 'module',
      keywords: ['tributary-connector'],
      tributary: { kind: 'writer', name: 'acme-crm' },
      exports: { '.': { 'tributary-source': './src/index.ts', types: './dist/index.d.ts', default: './dist/index.js' } },
    });
    expect(Object.keys(manifest.scripts).sort()).toEqual(['build', 'test']);
    // The versions installed in this workspace, read by the CLI at run time.
    expect(manifest.dependencies).toEqual({ '@tributary/core': `^${versionOf(join(REPO, 'core'))}` });
    expect(manifest.devDependencies).toEqual({
      '@tributary/conformance': `^${versionOf(join(REPO, 'conformance'))}`,
      '@types/node': `^${versionOf(join(REPO, 'node_modules', '@types', 'node'))}`,
      tsx: `^${versionOf(join(REPO, 'node_modules', 'tsx'))}`,
      typescript: `^${versionOf(join(REPO, 'node_modules', 'typescript'))}`,
      vitest: `^${versionOf(join(REPO, 'node_modules', 'vitest'))}`,
    });
    expect(await readFile(join(dir, 'src', 'index.ts'), 'utf8')).toContain('export const acmeCrmWriter = defineWriter({');
    expect(await readFile(join(dir, 'test', 'conformance.test.ts'), 'utf8')).toContain('writerConformance({');

    const scoped = await tributary(['new', 'destination', '@acme-co/tributary-destination-lake'], cwd);
    expectOk(scoped, 'new destination with a scoped name');
    const scopedManifest = await manifestOf(join(cwd, 'tributary-destination-lake'));
    expect(scopedManifest.name).toBe('@acme-co/tributary-destination-lake');
    expect(scopedManifest.tributary).toEqual({ kind: 'destination', name: 'lake' });
  });
});

describe.sequential('tributary new: generated packages install outside the repository and pass their conformance suites', () => {
  let schemaPathChecked = false;

  it.each(KINDS)('%s', async (kind) => {
    const dir = join(root, `acme-${kind}`);
    const created = await tributary(['new', kind, 'acme', '--dir', dir], root);
    expectOk(created, `tributary new ${kind}`);
    const files = ['package.json', 'tsconfig.json', 'README.md', '.gitignore', 'src/index.ts', 'test/conformance.test.ts'];
    for (const file of files) expect(created.stdout).toContain(`  ${file}\n`);
    for (const file of files) expect(existsSync(join(dir, file)), file).toBe(true);
    expect(await readFile(join(dir, 'test', 'conformance.test.ts'), 'utf8')).toContain(`${kind}Conformance({`);

    // Our packages come from this checkout, not the registry. npm links `file:` folders as
    // symlinks, so they resolve (and find their own dependencies) in the workspace.
    const manifest = await manifestOf(dir);
    manifest.dependencies['@tributary/core'] = `file:${join(REPO, 'core')}`;
    manifest.devDependencies['@tributary/conformance'] = `file:${join(REPO, 'conformance')}`;
    await writeFile(join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--cache', npmCache], dir);
    expectOk(install, `npm install (${kind})`);
    for (const name of ['core', 'conformance']) {
      expect((await lstat(join(dir, 'node_modules', '@tributary', name))).isSymbolicLink()).toBe(true);
      expect(await realpath(join(dir, 'node_modules', '@tributary', name))).toBe(join(REPO, name));
    }

    if (!schemaPathChecked) {
      // @tributary/conformance carries the Airbyte protocol schema in its build output (what a
      // published package ships): the copy must be there and equal the shared spec.
      const linked = pathToFileURL(join(dir, 'node_modules', '@tributary', 'conformance', 'dist', 'airbyte-protocol.js')).href;
      const probe = await run(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(linked)}).then((m) => console.log(m.airbyteProtocolSchemaPath()))`], dir, 30_000);
      expectOk(probe, 'resolving the protocol schema through the link');
      const expected = resolve(REPO, 'conformance', 'dist', 'airbyte_protocol_v0.yaml');
      expect(probe.stdout.trim()).toBe(expected);
      expect(readFileSync(expected, 'utf8')).toBe(readFileSync(resolve(REPO, '..', 'shared', 'specs', 'airbyte_protocol_v0.yaml'), 'utf8'));
      schemaPathChecked = true;
    }

    const test = await run('npm', ['test'], dir);
    expectOk(test, `npm test (${kind})`);
    const n = EXPECTED_TESTS[kind];
    expect(test.stdout, output(test)).toMatch(new RegExp(`Tests\\s+${n} passed \\(${n}\\)`));
    expect(existsSync(join(dir, 'dist', 'index.js'))).toBe(true);

    // Inside the package, the CLI finds it (its own package) and loads its build.
    const listed = await tributary(['connectors'], dir);
    expectOk(listed, 'tributary connectors');
    expect(listed.stdout).toMatch(new RegExp(`^${kind}\\s+acme\\s+tributary-${kind}-acme\\s+0\\.1\\.0$`, 'm'));
    const spec = await tributary(['spec', 'acme', '--kind', kind], dir);
    expectOk(spec, 'tributary spec');
    expect(validateAirbyteMessage(spec.stdout.trim())).toEqual([]);

    console.info(`tributary new ${kind}: generate ${created.ms} ms, npm install ${install.ms} ms, npm test ${test.ms} ms`);
  }, 240_000);
});
