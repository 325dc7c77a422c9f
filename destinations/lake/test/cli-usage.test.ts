import { join } from 'node:path';
import { expect, it } from 'vitest';
import lakeCommand from '../src/lake-command.js';
import { repoRoot, runCli } from './helpers.js';

it('the lake command is listed by `tributary --help` and explains its usage', async () => {
  const help = await runCli(['--help'], repoRoot);
  expect(help.stdout + help.stderr).toMatch(/tributary lake\s+…\s+query the event lake/);
  const bare = await runCli(['lake'], repoRoot);
  expect(bare.code).toBe(2);
  expect(bare.stdout).toMatch(/tributary lake query "<SQL>"/);
  const noConfig = await runCli(['lake', 'query', 'select 1'], repoRoot);
  expect(noConfig.code).toBe(2);
  expect(noConfig.stderr).toMatch(/needs --config/);
});

it('called directly, usage and config errors are TributaryErrors of kind config', async () => {
  await expect(lakeCommand(['frobnicate', '--config', join(repoRoot, 'examples', 'demo', 'demo-lake-sync.yaml')])).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/Unknown lake command "frobnicate"/) });
  await expect(lakeCommand(['query', 'select 1', '--config', join(repoRoot, 'examples', 'demo', 'demo-sync.yaml')])).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/destination is not the lake/) });
  await expect(lakeCommand(['as-of', '--config', join(repoRoot, 'examples', 'demo', 'demo-lake-sync.yaml')])).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/needs --stream/) });
});

it('the README parameter table matches the spec', async () => {
  const check = await runCli(['docs', 'lake', '--check', 'destinations/lake/README.md'], repoRoot);
  expect(check.code, check.stdout + check.stderr).toBe(0);
});
