import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { listInstalledCommands, listInstalledConnectors, loadCommand, loadConnector } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

// A package for one SaaS that exports a source and a writer and declares both in
// package.json `tributary` as an array.
describe('connector registry: a package declaring several connectors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'registry-'));
    const pkg = join(dir, 'node_modules', '@acme', 'tributary-crm');
    await mkdir(pkg, { recursive: true });
    await writeFile(
      join(pkg, 'package.json'),
      JSON.stringify({
        name: '@acme/tributary-crm',
        version: '1.2.3',
        type: 'module',
        keywords: ['tributary-connector'],
        tributary: [
          { kind: 'source', name: 'crm' },
          { kind: 'writer', name: 'crm' },
        ],
        exports: { '.': './index.js' },
        tributaryCommands: { crm: { module: './command.js', description: 'inspect the CRM' } },
      }),
    );
    await writeFile(
      join(pkg, 'index.js'),
      "export const crmSource = { kind: 'source', spec: { name: 'crm-source' } };\n" +
        "export const crmWriter = { kind: 'writer', spec: { name: 'crm-writer' } };\n",
    );
    await writeFile(
      join(pkg, 'command.js'),
      "export default async function (args) { process.stdout.write('crm command ' + JSON.stringify(args) + '\\n'); return args.includes('--fail') ? 1 : 0; }\n",
    );
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('lists each declared connector with its kind', async () => {
    const installed = (await listInstalledConnectors(dir)).filter((c) => c.packageName === '@acme/tributary-crm');
    expect(installed.map((c) => [c.kind, c.name, c.version])).toEqual([
      ['source', 'crm', '1.2.3'],
      ['writer', 'crm', '1.2.3'],
    ]);
  });

  it('loads the export of the requested kind under the shared name', async () => {
    const source = await loadConnector('crm', 'source', dir);
    const writer = await loadConnector('crm', 'writer', dir);
    expect((source as unknown as { spec: { name: string } }).spec.name).toBe('crm-source');
    expect((writer as unknown as { spec: { name: string } }).spec.name).toBe('crm-writer');
    await expect(loadConnector('crm', 'destination', dir)).rejects.toThrow(/Unknown destination connector "crm"/);
  });
});

describe('commands contributed by installed packages', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'registry-cmd-'));
    const pkg = join(dir, 'node_modules', 'tributary-lake-like');
    await mkdir(pkg, { recursive: true });
    await writeFile(
      join(pkg, 'package.json'),
      JSON.stringify({
        name: 'tributary-lake-like',
        version: '0.0.1',
        type: 'module',
        keywords: ['tributary-connector'],
        tributaryCommands: { pond: { module: './pond.js', description: 'look into the pond' } },
      }),
    );
    await writeFile(
      join(pkg, 'pond.js'),
      "export default async function (args) { process.stdout.write('pond ' + JSON.stringify(args) + '\\n'); return args.includes('--fail') ? 1 : 0; }\n",
    );
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('lists the command and loads its handler', async () => {
    const commands = await listInstalledCommands(dir);
    const pond = commands.find((c) => c.name === 'pond');
    expect(pond).toMatchObject({ packageName: 'tributary-lake-like', description: 'look into the pond' });
    expect(typeof (await loadCommand(pond!))).toBe('function');
  });

  it('runs through the CLI with its arguments and exit code, and shows up in help', async () => {
    const run = promisify(execFile);
    const ok = await run(process.execPath, [BIN, 'pond', 'query', 'select 1'], { cwd: dir });
    expect(ok.stdout).toBe('pond ["query","select 1"]\n');
    const failed = await run(process.execPath, [BIN, 'pond', '--fail'], { cwd: dir }).catch((e: { code: number; stdout: string }) => e);
    expect((failed as { code: number }).code).toBe(1);
    const help = await run(process.execPath, [BIN, 'help'], { cwd: dir });
    expect(help.stdout).toMatch(/Commands from installed packages:\n/);
    expect(help.stdout).toMatch(/^\s+tributary pond\s+…\s+look into the pond \(from tributary-lake-like\)$/m);
  });
});
