import { describe, expect, it } from 'vitest';
import { maxStartsWithin, writerCases, writerConformance, type WriterConformanceOptions } from '@tributary/conformance';
import { memoryWriter, type WriterFlaw } from './fixtures/memory-writer.js';

let counter = 0;
const options = (flaw?: WriterFlaw): WriterConformanceOptions => ({
  writer: memoryWriter(flaw),
  config: () => ({ target: `table-${++counter}` }),
  object: 'contacts',
  idProperty: 'email',
  records: (n) => Array.from({ length: n }, (_, i) => ({ email: `person${i}@example.com`, name: `Person ${i}` })),
  invalidRecord: () => ({ email: `invalid-${++counter}@example.com` }),
});

// The whole suite on a correct writer, as a connector registers it.
writerConformance(options());

describe('writer conformance cases catch broken writers', () => {
  const catches: Array<[WriterFlaw, keyof typeof writerCases, RegExp]> = [
    ['not-idempotent', 'sameBatchTwice', /replaying the same batch changed 10 record\(s\) again/],
    ['dry-run-writes', 'dryRun', /dry and real runs disagree on 10 record\(s\)/],
    ['fails-whole-batch', 'partialFailures', /a valid record next to invalid ones was not applied/],
    ['accepts-invalid', 'partialFailures', /an invalid record came back created, expected failed/],
  ];
  for (const [flaw, name, message] of catches) {
    it(`${name} fails on a writer that ${flaw.replace(/-/g, ' ')}`, async () => {
      await expect(writerCases[name].run(options(flaw))).rejects.toThrow(message);
    });
  }

  it('dryRun refuses a target where nothing would change (it would prove nothing)', async () => {
    const o = { ...options(), config: () => ({ target: 'shared-table' }) };
    await writerCases.sameBatchTwice.run(o);
    await expect(writerCases.dryRun.run(o)).rejects.toThrow(/config\(\) must give a fresh target/);
  });

  it('counts starts in half-open sliding windows', () => {
    expect(maxStartsWithin([], 1000)).toBe(0);
    expect(maxStartsWithin([0, 999, 1000, 1999, 2000], 1000)).toBe(2);
    expect(maxStartsWithin([0, 10, 20, 1000, 1010], 1000)).toBe(3);
    expect(maxStartsWithin([0, 10, 20, 1000, 1010], 1001)).toBe(4);
  });
});
