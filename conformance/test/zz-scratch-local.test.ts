import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destinationConformance } from '@tributary/conformance';
import { localFilesDestination } from '@tributary/destination-local';

const root = mkdtempSync(join(tmpdir(), 'scratch-local-'));
let n = 0;
destinationConformance({
  destination: localFilesDestination,
  config: () => ({ directory: join(root, `t${++n}`) }),
  readBack: async (config, stream) => (await readFile(join(String(config.directory), `${stream}.jsonl`), 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => JSON.parse(l)),
  module: '@tributary/destination-local',
});
