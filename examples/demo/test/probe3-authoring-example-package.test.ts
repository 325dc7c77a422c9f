/**
 * docs/guide.md builds examples/http-crm and ends with "Installed next to @tributary/core, the
 * CLI finds the connector by its short name (`tributary connectors`, `tributary check
 * http-crm …`)". The example is the finished code of that guide, so its package must be
 * one the CLI finds (the `tributary-connector` keyword and a `tributary` entry per
 * connector) and one whose tarball carries its build (`exports` points at dist/, which the
 * repository's .gitignore would otherwise keep out of `npm pack`).
 * Runs the BUILT CLI (`npx tsc -b` first), as the other CLI tests do.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(REPO, 'core', 'bin', 'tributary.js');
const EXAMPLE = join(REPO, 'examples', 'http-crm');

/** The environment of a child: without the parent npm run's lifecycle variables. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.toLowerCase().startsWith('npm_') || key.startsWith('VITEST') || key.startsWith('TRIBUTARY_') || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  env.NO_COLOR = '1';
  return env;
}

function run(command: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { cwd: EXAMPLE, env: childEnv(), encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('examples/http-crm as a connector package', () => {
  it('is listed by `tributary connectors` as a source and a writer named http-crm, and both load', () => {
    if (!existsSync(join(EXAMPLE, 'dist', 'index.js'))) throw new Error('examples/http-crm/dist is missing: build first (npx tsc -b)');
    const listed = run(process.execPath, [CLI, 'connectors']);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = listed.stdout.split('\n').map((line) => line.trim().split(/\s+/));
    expect(rows).toEqual(
      expect.arrayContaining([
        ['source', 'http-crm', '@tributary/example-http-crm', '0.0.0'],
        ['writer', 'http-crm', '@tributary/example-http-crm', '0.0.0'],
      ]),
    );
    for (const kind of ['source', 'writer']) {
      const spec = run(process.execPath, [CLI, 'spec', 'http-crm', '--kind', kind]);
      expect(spec.code, spec.stderr).toBe(0);
      expect(JSON.parse(spec.stdout.trim())).toMatchObject({ type: 'SPEC', spec: { connectionSpecification: { title: `HTTP CRM ${kind}` } } });
    }
  });

  it("documents both connectors' configs in its README with the tables `tributary docs` generates", () => {
    for (const kind of ['source', 'writer']) {
      const checked = run(process.execPath, [CLI, 'docs', 'http-crm', '--kind', kind, '--section', kind, '--check', 'README.md']);
      expect(checked.code, checked.stderr).toBe(0);
    }
  });

  it('packs its build: the tarball holds what `exports` points at', () => {
    const packed = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
    expect(packed.code, packed.stderr).toBe(0);
    const [tarball] = JSON.parse(packed.stdout) as Array<{ files: Array<{ path: string }> }>;
    const files = tarball!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'src/index.ts', 'package.json']));
    expect(files.filter((f) => f.startsWith('test/'))).toEqual([]);
  });
});
