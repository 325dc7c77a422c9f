import { describe, expect, it } from 'vitest';
import { applicableSourceCases, sourceCases, type SourceConformanceOptions } from '@tributary/conformance';
import { memorySource, type SourceFlaw } from './fixtures/memory-source.js';

// Mutation probes: the whole applicable suite runs against a source with one defect a real
// source could have, and must fail with the message that names it.

const config = { people: 23, notes: 5, api_key: 'good-key-123' };
const options = (flaw: SourceFlaw): SourceConformanceOptions => ({
  source: memorySource(flaw),
  config,
  badConfig: { people: 'many', api_key: 'good-key-123' },
  emptyConfig: { ...config, notes: 0 },
});

/** Runs every applicable case; returns `case: message` of each that failed. */
async function failures(o: SourceConformanceOptions): Promise<string[]> {
  const out: string[] = [];
  for (const name of applicableSourceCases(o)) {
    await sourceCases[name].run(o).catch((error: unknown) => out.push(`${name}: ${error instanceof Error ? error.message : String(error)}`));
  }
  return out;
}

describe('probe3: the source suite fails for these defects', () => {
  const probes: Array<[SourceFlaw, RegExp]> = [
    ['ignores-catalog', /selectedStreamsOnly: full read of notes only: 23 record\(s\) of stream\(s\) not selected: people/],
    ['unmarked-secret-in-map', /spec: .*not marked "airbyte_secret": true: stream_settings\.\*\.api_token/],
    ['unmarked-secret-in-definitions', /spec: .*not marked "airbyte_secret": true: #\/definitions\/proxy\.password/],
    ['unmarked-passphrase', /spec: .*not marked "airbyte_secret": true: ssh_key_passphrase/],
  ];
  for (const [flaw, message] of probes) {
    it(`a source that ${flaw.replace(/-/g, ' ')}`, async () => {
      expect((await failures(options(flaw))).join('\n')).toMatch(message);
    });
  }
});
