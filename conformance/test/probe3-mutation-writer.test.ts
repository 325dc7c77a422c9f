import { describe, expect, it } from 'vitest';
import { writerCases, type WriterCaseName, type WriterConformanceOptions } from '@tributary/conformance';
import { memoryWriter, type WriterFlaw } from './fixtures/memory-writer.js';

// Mutation probes: the whole suite runs against a writer with one defect a real writer could
// have, and must fail with the message that names it.

let counter = 0;
const options = (flaw: WriterFlaw): WriterConformanceOptions => ({
  writer: memoryWriter(flaw),
  config: () => ({ target: `probe3-table-${++counter}` }),
  object: 'contacts',
  idProperty: 'email',
  records: (n) => Array.from({ length: n }, (_, i) => ({ email: `person${i}@example.com`, name: `Person ${i}` })),
  invalidRecord: () => ({ email: `invalid-${++counter}@example.com` }),
});

/** Runs every case; returns `case: message` of each that failed. */
async function failures(o: WriterConformanceOptions): Promise<string[]> {
  const out: string[] = [];
  for (const name of Object.keys(writerCases) as WriterCaseName[]) {
    await writerCases[name].run(o).catch((error: unknown) => out.push(`${name}: ${error instanceof Error ? error.message : String(error)}`));
  }
  return out;
}

describe('probe3: the writer suite fails for these defects', () => {
  it('a writer that reports created from a ledger of its own and never writes the row', async () => {
    expect((await failures(options('ledger-without-write'))).join('\n')).toMatch(/sameBatchTwice: .*10 applied record\(s\) are not in the target/);
  });

  it('a writer that leaves a stored row as it is when a changed record of its key comes', async () => {
    expect((await failures(options('never-updates'))).join('\n')).toMatch(/changedRecords: .*10 changed record\(s\) came back unchanged/);
  });
});
