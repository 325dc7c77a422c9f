import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { applicableDestinationCases, destinationCases, type DestinationConformanceOptions } from '@tributary/conformance';
import { naiveDestination, readNaive, type DestinationFlaw } from './fixtures/naive-destination.js';

const root = mkdtempSync(join(tmpdir(), 'tributary-conformance-destination-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

const options = (flaw: DestinationFlaw): DestinationConformanceOptions => ({
  destination: naiveDestination,
  config: () => ({ directory: join(root, `target-${++counter}`), flaw }),
  readBack: readNaive,
  module: new URL('./fixtures/naive-destination.ts', import.meta.url).href,
  batchSize: 10,
});

describe('destination conformance cases catch broken destinations', () => {
  const catches: Array<[DestinationFlaw, keyof typeof destinationCases, RegExp]> = [
    ['duplicates-on-replay', 'replayAfterCrash', /after the crash and replay: 20 key\(s\) of conformance_people stored more than once/],
    ['forgets-on-restart', 'committedSurvivesRestart', /after the restart: 20 of 20 record\(s\) missing/],
    ['drops-malformed', 'malformedRecord', /missing primary key: wrote 3 record\(s\), read back 2 and 0 rejected: a record was dropped silently/],
    ['drops-new-column', 'newColumn', /with a new column: 10 record\(s\) came back different/],
    ['overwrite-appends', 'overwrite', /after the second overwrite conformance_people holds 30 row\(s\) for 10 written/],
    ['drops-last-of-batch', 'committedSurvivesRestart', /after the restart: 2 of 20 record\(s\) missing from conformance_people: \[10\], \[20\]/],
    // Passes every case that replays the committed batch or reads in the same process.
    ['acks-before-write', 'committedSurvivesCrash', /after a crash right after the commit of the first batch \(not replayed\): 10 of 10 record\(s\) missing/],
    ['keeps-first-version', 'changedRecords', /each key must hold its latest version\): 5 record\(s\) came back different/],
    ['reverses-batch', 'changedRecords', /each key must hold its latest version\): 2 record\(s\) came back different/],
  ];
  for (const [flaw, name, message] of catches) {
    it(`${name} fails on a destination that ${flaw.replace(/-/g, ' ')}`, async () => {
      await expect(destinationCases[name].run(options(flaw))).rejects.toThrow(message);
    });
  }

  it('every case passes on the correct variant (one row per key, the last written)', async () => {
    for (const name of applicableDestinationCases(options('none'))) await destinationCases[name].run(options('none'));
  }, 300_000);

  it('changedRecords: an append log must keep every version', async () => {
    // The same files read as a log (delivery append-dedupe): the first versions are there, the changes are lost.
    const asLog = { ...naiveDestination, delivery: 'append-dedupe' as const };
    await expect(destinationCases.changedRecords.run({ ...options('keeps-first-version'), destination: asLog })).rejects.toThrow(
      /an append log keeps every version\): 12 record\(s\) came back different/,
    );
    await destinationCases.changedRecords.run({ ...options('duplicates-on-replay'), destination: asLog });
  });

  it('the crash runner reports a destination it cannot load', async () => {
    const o = { ...options('duplicates-on-replay'), exportName: 'noSuchExport' };
    await expect(destinationCases.replayAfterCrash.run(o)).rejects.toThrow(/did not reach its crash point \(exit code 1[\s\S]*exports no destination named "naive-files" as noSuchExport/);
  });

  it('registers the overwrite case only for destinations that support overwrite', () => {
    expect(applicableDestinationCases(options('overwrite-appends'))).toContain('overwrite');
    const appendOnly = { ...naiveDestination, spec: { ...naiveDestination.spec, supportedDestinationSyncModes: ['append' as const] } };
    expect(applicableDestinationCases({ ...options('overwrite-appends'), destination: appendOnly })).not.toContain('overwrite');
  });
});
