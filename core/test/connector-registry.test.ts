import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listInstalledConnectors, loadConnector } from '../src/index.js';

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
      }),
    );
    await writeFile(
      join(pkg, 'index.js'),
      "export const crmSource = { kind: 'source', spec: { name: 'crm-source' } };\n" +
        "export const crmWriter = { kind: 'writer', spec: { name: 'crm-writer' } };\n",
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
