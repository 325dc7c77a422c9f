/**
 * `tributary new` run from `npx --package @tributary/core` (what the guide tells a newcomer
 * to run in an empty directory) has nothing installed beside @tributary/core but its own
 * dependencies. The generated package.json then got `"latest"` for vitest, typescript, tsx
 * and @types/node: vitest's latest is outside @tributary/conformance's peer range (and
 * needs a newer Node), so the lockfile `npm install` wrote no longer satisfied the
 * package.json — `npm ci` refused it and `npm ls` reported the tools invalid. Those tools
 * now get the ranges this release is tested with.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TESTED_TOOLCHAIN, dependencyVersions } from '../src/scaffold/shared.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('tributary new: dependency versions', () => {
  it('pins the build tools to the tested ranges, not "latest", when none is installed beside @tributary/core', async () => {
    // A @tributary/core installed alone, outside this repository (as npx installs it).
    const coreDir = await mkdtemp(join(tmpdir(), 'probe3-lone-core-'));
    scratch.push(coreDir);
    await writeFile(join(coreDir, 'package.json'), JSON.stringify({ name: '@tributary/core', version: '0.1.0' }));
    const versions = dependencyVersions(coreDir);
    expect(versions).toMatchObject({
      core: '^0.1.0',
      vitest: TESTED_TOOLCHAIN.vitest,
      typescript: TESTED_TOOLCHAIN.typescript,
      tsx: TESTED_TOOLCHAIN.tsx,
      typesNode: TESTED_TOOLCHAIN['@types/node'],
    });
    // Only the package without a known range is left to the user (with the CLI's warning).
    expect(versions.conformance).toBe('latest');
    expect(versions.missing).toEqual(['@tributary/conformance']);
  });

  it("keeps the tested ranges equal to the repository's own toolchain and within @tributary/conformance's peer ranges", () => {
    const root = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const conformance = JSON.parse(readFileSync(join(REPO, 'conformance', 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
    for (const [name, range] of Object.entries(TESTED_TOOLCHAIN)) expect(range, name).toBe(root.devDependencies[name]);
    for (const [name, range] of Object.entries(conformance.peerDependencies)) expect(TESTED_TOOLCHAIN[name as keyof typeof TESTED_TOOLCHAIN], name).toBe(range);
  });
});
