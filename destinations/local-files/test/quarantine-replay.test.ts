/**
 * The quarantine under at-least-once delivery: a record the destination refused, committed,
 * and delivered again after a crash (the checkpoint after it was never saved) is refused
 * again — the runtime must learn it — but the quarantine holds it once.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createFileStateStore, runSync, type RecordData } from '@tributary/core';
import { localFilesDestination } from '../src/index.js';
import { batching, peopleCatalog, peopleRecord, RECORD_COUNT, REFUSED, REFUSED_AT, refusingSource } from './support/refusing-source.js';

const runner = join(dirname(fileURLToPath(import.meta.url)), 'support', 'crash-before-checkpoint.ts');

let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tributary-local-quarantine-'));
});
afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function jsonLines(relative: string): Promise<RecordData[]> {
  const text = await readFile(join(workDir, 'out', relative), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RecordData);
}

const quarantined = async (): Promise<unknown[]> => (await jsonLines(join('_quarantine', 'people.jsonl'))).map((line) => line.record);

it('a refused record replayed after a SIGKILL between its commit and its checkpoint is reported rejected again and quarantined once', async () => {
  // The crashed sync: the commit of records 4‥7 (5 and 6 refused) went through, the checkpoint after them was never saved.
  const crashed = spawnSync(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', runner, workDir], { encoding: 'utf8', timeout: 60_000 });
  expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
  const printed = crashed.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(printed).toContainEqual({ killedBeforeSaving: 8 });
  expect(printed).toContainEqual({ log: 'WARN', message: expect.stringMatching(/^\[runtime\] 2 record\(s\) of people quarantined by the destination: /) as unknown });
  expect(await quarantined()).toEqual(REFUSED);

  // The rerun resumes from the last saved checkpoint (offset 4): 4‥7 are delivered again.
  const rejectedPerState: number[] = [];
  const rerun = await runSync({
    connection: 'quarantine-replay',
    source: refusingSource,
    sourceConfig: {},
    destination: localFilesDestination,
    destinationConfig: { directory: join(workDir, 'out') },
    catalog: peopleCatalog,
    stateStore: createFileStateStore(join(workDir, 'state')),
    batching,
    onEvent: (event) => {
      if (event.type === 'state') rejectedPerState.push(event.streams.people?.rejected ?? 0);
    },
  });
  expect(rerun.error?.userMessage ?? '').toBe('');
  expect(rerun.outcome).toBe('completed');
  // Reported again: the runtime counts both refusals of this sync, with the checkpoint after them.
  expect(rerun.streams.find((s) => s.key === 'people')?.rejected).toBe(2);
  expect(rejectedPerState).toEqual([2, 0]);
  // Stored once, in the quarantine and in the data file alike.
  expect(await quarantined()).toEqual(REFUSED);
  const stored = Array.from({ length: RECORD_COUNT }, (_, i) => i)
    .filter((i) => !REFUSED_AT.includes(i))
    .map(peopleRecord);
  expect(await jsonLines('people.jsonl')).toEqual(stored);
});
