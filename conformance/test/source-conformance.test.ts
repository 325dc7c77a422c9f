import { describe, expect, it } from 'vitest';
import { applicableSourceCases, sourceCases, sourceConformance, unmarkedSecretFields, type SourceConformanceOptions } from '@tributary/conformance';
import { memorySource, type SourceFlaw } from './fixtures/memory-source.js';

const config = { people: 23, notes: 5, api_key: 'good-key-123' };
const options = (flaw?: SourceFlaw) => ({
  source: memorySource(flaw),
  config,
  badConfig: { people: 'many', api_key: 'good-key-123' },
  emptyConfig: { ...config, notes: 0 },
});

// The whole suite, registered as a connector would: every case must pass on a correct source.
sourceConformance(options());

describe('source conformance cases catch broken sources', () => {
  const catches: Array<[SourceFlaw, keyof typeof sourceCases, RegExp]> = [
    ['resume-repeats-ties', 'resumeFromEveryCheckpoint', /unexpected or duplicated/],
    ['resume-skips-ties', 'resumeFromEveryCheckpoint', /missing \(gap\)/],
    ['no-checkpoint-when-empty', 'emptyStreams', /no checkpoint for stream\(s\) notes/],
    ['unmarked-secret', 'spec', /look like secrets but are not marked "airbyte_secret": true: api_key/],
    ['record-breaks-schema', 'records', /people\.id must be integer/],
    ['records-after-last-checkpoint', 'records', /yields records after its last checkpoint/],
    ['resume-skips-first', 'resumeFromEveryCheckpoint', /1 record\(s\) missing \(gap\)/],
    ['checkpoint-before-records', 'resumeFromEveryCheckpoint', /4 record\(s\) missing \(gap\)/],
    ['duplicates-records', 'records', /full read: 5 record\(s\) yielded more than once \(same primary key and cursor value\): people \[5\]/],
  ];
  for (const [flaw, name, message] of catches) {
    it(`${name} fails on a source that ${flaw.replace(/-/g, ' ')}`, async () => {
      await expect(sourceCases[name].run(options(flaw))).rejects.toThrow(message);
    });
  }

  it('checkBadConfig fails when check() throws something other than a config error', async () => {
    const o = { ...options('check-throws-plain-error'), badConfig: { ...config, api_key: 'wrong-key-456' } };
    await expect(sourceCases.checkBadConfig.run(o)).rejects.toThrow(/expected a TributaryError of kind config, got Error: wrong key/);
    // The correct source refuses the same key with an auth error, which is the user's to fix.
    await sourceCases.checkBadConfig.run({ ...options(), badConfig: { ...config, api_key: 'wrong-key-456' } });
  });

  it('checkBadConfig fails when the bad config is accepted', async () => {
    await expect(sourceCases.checkBadConfig.run({ ...options(), badConfig: config })).rejects.toThrow(/bad config is not refused/);
  });

  it('emptyStreams fails when emptyConfig leaves every stream with records', async () => {
    await expect(sourceCases.emptyStreams.run({ ...options(), emptyConfig: config })).rejects.toThrow(/does not make any stream empty/);
  });

  it('futureState fails when the future state is not understood', async () => {
    await expect(sourceCases.futureState.run({ ...options(), futureState: () => ({ cursor: '' }) })).rejects.toThrow(/expected no records, got 28/);
  });

  it('registers no empty-stream case when emptyStreams: false is declared, and refuses silence', () => {
    const base = { source: memorySource(), config, badConfig: config };
    expect(applicableSourceCases({ ...base, emptyStreams: false })).not.toContain('emptyStreams');
    // What a test written in plain JavaScript, or with a cast, could pass.
    expect(() => applicableSourceCases(base as unknown as SourceConformanceOptions)).toThrow(/pass emptyConfig .* or declare emptyStreams: false/);
  });

  it('finds secret-looking fields in nested objects and oneOf branches', () => {
    const schema = {
      type: 'object',
      properties: {
        credentials: {
          oneOf: [
            { type: 'object', properties: { client_secret: { type: 'string' }, client_id: { type: 'string' } } },
            { type: 'object', properties: { accessKey: { type: 'string', airbyte_secret: true }, password: { type: 'string' } } },
          ],
        },
        use_token: { type: 'boolean' },
        private_key: { type: 'string' },
      },
    };
    expect(unmarkedSecretFields(schema)).toEqual(['credentials.client_secret', 'credentials.password', 'private_key']);
  });
});
