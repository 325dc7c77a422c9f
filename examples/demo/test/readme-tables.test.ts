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
import { lakeDestination } from '@tributary/destination-lake';
import { redisDestination } from '@tributary/destination-redis';
import { postgresSource } from '@tributary/source-postgres';
import { sampleSource } from '@tributary/source-sample';
import { sampleWriter } from '@tributary/writer-sample';
import { hubspotSource, hubspotWebhookSource, hubspotWriter } from '@tributary/connector-hubspot';
import { salesforceSource, salesforceWriter } from '@tributary/connector-salesforce';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** `section`: the named table of a README documenting several connectors (`tributary docs … --section`). */
const CONNECTORS: Array<{ readme: string; command: string; schema: object; section?: string }> = [
  { readme: 'connectors/sample/README.md', command: 'tributary docs sample', schema: sampleSource.spec.connectionSpecification },
  { readme: 'connectors/sample-writer/README.md', command: 'tributary docs sample-crm', schema: sampleWriter.spec.connectionSpecification },
  { readme: 'destinations/local-files/README.md', command: 'tributary docs local', schema: localFilesDestination.spec.connectionSpecification },
  { readme: 'destinations/redis/README.md', command: 'tributary docs redis', schema: redisDestination.spec.connectionSpecification },
  { readme: 'connectors/postgres/README.md', command: 'tributary docs postgres', schema: postgresSource.spec.connectionSpecification },
  { readme: 'destinations/lake/README.md', command: 'tributary docs lake', schema: lakeDestination.spec.connectionSpecification },
  { readme: 'connectors/hubspot/README.md', command: 'tributary docs hubspot --kind source --section source', schema: hubspotSource.spec.connectionSpecification, section: 'source' },
  { readme: 'connectors/hubspot/README.md', command: 'tributary docs hubspot --kind writer --section writer', schema: hubspotWriter.spec.connectionSpecification, section: 'writer' },
  {
    readme: 'connectors/hubspot/README.md',
    command: 'tributary docs hubspot-webhooks --kind source --section webhooks',
    schema: hubspotWebhookSource.spec.connectionSpecification,
    section: 'webhooks',
  },
  {
    readme: 'connectors/salesforce/README.md',
    command: 'tributary docs salesforce --kind source --section source',
    schema: salesforceSource.spec.connectionSpecification,
    section: 'source',
  },
  {
    readme: 'connectors/salesforce/README.md',
    command: 'tributary docs salesforce --kind writer --section writer',
    schema: salesforceWriter.spec.connectionSpecification,
    section: 'writer',
  },
];

describe('connector READMEs', () => {
  for (const { readme, command, schema, section } of CONNECTORS) {
    it(`${readme}${section ? ` (${section})` : ''} holds the parameter table generated from the connector's spec`, async () => {
      const text = await readFile(join(REPO, readme), 'utf8');
      expect(readReadmeSection(text, readme, section), `${readme} is stale: run npm run docs (or ${command} --write ${readme})`).toBe(renderSpecTable(schema));
    });
  }
});
