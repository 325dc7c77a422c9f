import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applicableDestinationCases, destinationCases, type DestinationConformanceOptions } from '@tributary/conformance';
import { naiveDestination, readNaive, type DestinationFlaw } from './fixtures/naive-destination.js';

// Mutation probes: the whole applicable suite runs against a destination with one defect a
// real destination could have, and must fail with the message that names it.

const root = mkdtempSync(join(tmpdir(), 'tributary-probe3-destination-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

const options = (flaw: DestinationFlaw): DestinationConformanceOptions => ({
  destination: naiveDestination,
  config: () => ({ directory: join(root, `target-${++counter}`), flaw }),
  readBack: readNaive,
  module: new URL('./fixtures/naive-destination.ts', import.meta.url).href,
  batchSize: 10,
});

/** Runs every applicable case; returns `case: message` of each that failed. */
async function failures(o: DestinationConformanceOptions): Promise<string[]> {
  const out: string[] = [];
  for (const name of applicableDestinationCases(o)) {
    await destinationCases[name].run(o).catch((error: unknown) => out.push(`${name}: ${error instanceof Error ? error.message : String(error)}`));
  }
  return out;
}

describe('probe3: the destination suite fails for these defects', () => {
  it('a destination that silently ignores every stream but the first', async () => {
    const failed = await failures(options('first-stream-only'));
    expect(failed.join('\n')).toMatch(/committedSurvivesRestart: after the restart: 20 of 20 record\(s\) missing from conformance_deals/);
  }, 300_000);

  it('a destination that moves the key out of the records it was given (a retry of that batch then has no key)', async () => {
    const failed = await failures(options('moves-key-out'));
    expect(failed.join('\n')).toMatch(/retriedWrite: write\(\) changed the records of the batch it was given/);
  }, 300_000);

  it('a destination whose commit-time MERGE inserts every staged row of a key new to the table (a retried write stores it twice)', async () => {
    const failed = await failures(options('merge-duplicates-new-keys'));
    expect(failed.join('\n')).toMatch(/retriedWrite: after a retried write: 10 key\(s\) of conformance_people stored more than once/);
  }, 300_000);

  it('a destination whose commit rewrites its file in place (truncate, then write): a crash between the two loses what was committed', async () => {
    const failed = await failures(options('rewrites-in-place'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/^crashAtIoSteps: after a crash at I\/O step \d+ of \d+ of writing and committing the second batch, and its replay \(first batch, committed before\): 10 of 10 record\(s\) missing from conformance_people/);
  }, 600_000);
});
