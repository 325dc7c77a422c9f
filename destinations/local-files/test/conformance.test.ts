import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { destinationConformance } from '@tributary/conformance';
import { fileName, localFilesDestination } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'tributary-local-conformance-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let targets = 0;

destinationConformance({
  destination: localFilesDestination,
  config: () => ({ directory: join(root, `target-${++targets}`) }),
  readBack: async (config, stream) =>
    (await readFile(join(String(config.directory), fileName(stream)), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>),
  module: '@tributary/destination-local',
});
