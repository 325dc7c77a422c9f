/**
 * Appends that the file system takes only in part. A full disk or a file size limit makes
 * `write` store fewer bytes than asked, without an error; the next write then fails. Run in
 * a child process under a real file size limit (`ulimit -f`), then reopened without it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { localFilesDestination } from '../src/index.js';
import { FILE_SIZE_LIMIT_KIB, limitedBatches, limitedStream } from './support/limited-batches.js';

const runner = join(dirname(fileURLToPath(import.meta.url)), 'support', 'limited-writer.ts');
const retryRunner = join(dirname(fileURLToPath(import.meta.url)), 'support', 'retry-writer.ts');

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'tributary-local-limit-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Runs the writer under the limit; returns each step's outcome. */
function runLimited(mode: 'data' | 'quarantine'): Record<string, string> {
  const child = spawnSync('bash', ['-c', `ulimit -f ${FILE_SIZE_LIMIT_KIB}; exec "$0" "$@"`, process.execPath, '--conditions=tributary-source', '--import', 'tsx', runner, directory, mode], {
    encoding: 'utf8',
  });
  expect(child.status, child.stderr).toBe(0);
  const steps: Record<string, string> = {};
  for (const line of child.stdout.split('\n').filter(Boolean)) {
    const { step, outcome } = JSON.parse(line) as { step: string; outcome: string };
    steps[step] = outcome;
  }
  return steps;
}

async function storedIds(): Promise<unknown[]> {
  const text = await readFile(join(directory, 'people.jsonl'), 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as RecordData).id);
}

/** Reopens without the limit and replays the batch that failed, as the next sync does. */
async function replaySecond(mode: 'data' | 'quarantine'): Promise<void> {
  const stream = { ...limitedStream(mode), resuming: true };
  const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [stream]);
  await session.write({ stream: 'people', records: limitedBatches(mode)[1] as RecordData[], emittedAt: 0 });
  await session.close({ completed: true });
}

describe('appends the file system takes only in part', () => {
  it('a batch that does not fit in the data file fails, leaves no partial line, and is stored whole by the replay', async () => {
    const steps = runLimited('data');
    expect(steps).toEqual({ first: 'ok', second: 'EFBIG', close: 'ok' });
    expect(await storedIds()).toEqual(Array.from({ length: 10 }, (_, i) => i));
    await replaySecond('data');
    expect(await storedIds()).toEqual(Array.from({ length: 70 }, (_, i) => i));
  });

  it('a batch whose quarantine lines do not fit stores none of its records: the retry adds each once', async () => {
    const steps = runLimited('quarantine');
    expect(steps).toEqual({ first: 'ok', second: 'EFBIG', close: 'ok' });
    expect(await storedIds()).toEqual(Array.from({ length: 10 }, (_, i) => i));
    await replaySecond('quarantine');
    expect(await storedIds()).toEqual([...Array.from({ length: 10 }, (_, i) => i), 10]);
    const quarantined = (await readFile(join(directory, '_quarantine', 'people.jsonl'), 'utf8')).split('\n').filter(Boolean);
    expect(quarantined.map((line) => (JSON.parse(line) as { record: RecordData }).record.id)).toEqual([11]);
  });

  it('a batch retried after its write failed is still matched against the replay window: replayed versions of a key are not stored again', async () => {
    // A sync that stored two versions of key 1 and did not complete: both are in the replay window.
    const first = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [limitedStream('data')]);
    await first.write({ stream: 'people', records: [{ id: 1, name: 'v1' }, { id: 1, name: 'v2' }], emittedAt: 0 });
    await first.close({ completed: false });
    const child = spawnSync('bash', ['-c', `ulimit -S -f ${FILE_SIZE_LIMIT_KIB}; exec "$0" "$@"`, process.execPath, '--conditions=tributary-source', '--import', 'tsx', retryRunner, directory], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    const steps = Object.fromEntries(child.stdout.split('\n').filter(Boolean).map((line) => { const { step, outcome } = JSON.parse(line) as { step: string; outcome: string }; return [step, outcome]; }));
    expect(steps).toEqual({ write: 'EFBIG', retry: 'ok', close: 'ok' });
    const text = await readFile(join(directory, 'people.jsonl'), 'utf8');
    expect(text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as RecordData).map((r) => [r.id, String(r.name).slice(0, 2)])).toEqual([
      [1, 'v1'],
      [1, 'v2'],
      [2, 'nn'],
    ]);
  });
});
