/**
 * Every connector README's parameter table is the one generated from the connector's config
 * schema: change a connector's `connectionSpecification` without regenerating its README
 * and this test fails. Regenerate with `npm run docs` (`tributary docs <connector> --write
 * <README.md>` for one). The connectors are imported from their packages (their TypeScript
 * sources under vitest), as users and the CLI see them.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readReadmeSection, renderSpecTable } from '@tributary/core';
import { localFilesDestination } from '@tributary/destination-local';
import { redisDestination } from '@tributary/destination-redis';
import { sampleSource } from '@tributary/source-sample';
import { sampleWriter } from '@tributary/writer-sample';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const CONNECTORS = [
  { readme: 'connectors/sample/README.md', command: 'tributary docs sample', schema: sampleSource.spec.connectionSpecification },
  { readme: 'connectors/sample-writer/README.md', command: 'tributary docs sample-crm', schema: sampleWriter.spec.connectionSpecification },
  { readme: 'destinations/local-files/README.md', command: 'tributary docs local', schema: localFilesDestination.spec.connectionSpecification },
  { readme: 'destinations/redis/README.md', command: 'tributary docs redis', schema: redisDestination.spec.connectionSpecification },
];

describe('connector READMEs', () => {
  for (const { readme, command, schema } of CONNECTORS) {
    it(`${readme} holds the parameter table generated from the connector's spec`, async () => {
      const text = await readFile(join(REPO, readme), 'utf8');
      expect(readReadmeSection(text, readme), `${readme} is stale: run npm run docs (or ${command} --write ${readme})`).toBe(renderSpecTable(schema));
    });
  }
});
