import { appendFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream } from '@tributary/core';
import { localFilesDestination } from '../src/index.js';

const schema = {
  type: 'object',
  properties: { id: { type: 'integer' }, name: { type: 'string' } },
  required: ['id'],
};

function stream(extra: Partial<DestinationStream> = {}): DestinationStream {
  return {
    key: 'people',
    name: 'people',
    syncMode: 'incremental',
    destinationSyncMode: 'append_dedup',
    primaryKey: [['id']],
    cursorField: ['id'],
    jsonSchema: schema,
    resuming: false,
    ...extra,
  };
}

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'tributary-local-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const ctx = createConnectorContext({});
const open = (s: DestinationStream[]) =>
  localFilesDestination.open(ctx, parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), s);

describe('local files destination', () => {
  it('cuts off bytes written after the last commit when reopened (torn or unacknowledged lines)', async () => {
    const session = await open([stream()]);
    await session.write({ stream: 'people', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
    await session.commit();
    await session.write({ stream: 'people', records: [{ id: 3 }], emittedAt: 0 });
    // Simulated crash: the session is abandoned, and a torn half line sits at the end.
    await appendFile(join(directory, 'people.jsonl'), '{"id": 4, "na');
    const reopened = await open([stream({ resuming: true })]);
    await reopened.close({ completed: false });
    expect((await lines(join(directory, 'people.jsonl'))).map((r) => r.id)).toEqual([1, 2]);
  });

  it('a crash in the first sync, before any commit, leaves nothing behind: the rerun stores each record once', async () => {
    const session = await open([stream()]);
    await session.write({ stream: 'people', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
    // Simulated crash before the first commit: the session is abandoned.
    const rerun = await open([stream()]);
    await rerun.write({ stream: 'people', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
    await rerun.commit();
    await rerun.close({ completed: true });
    expect((await lines(join(directory, 'people.jsonl'))).map((r) => r.id)).toEqual([1, 2]);
  });

  it('refuses a non-empty file it has no committed length for (the manifest lost, or not its file) and leaves it as it is', async () => {
    const session = await open([stream()]);
    await session.write({ stream: 'people', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
    await session.commit();
    await session.close({ completed: true });
    await rm(join(directory, '_tributary', 'manifest.json'));
    const before = await readFile(join(directory, 'people.jsonl'), 'utf8');
    await expect(open([stream({ resuming: true })])).rejects.toThrow(/people\.jsonl holds \d+ bytes that .*manifest\.json has no committed length for/);
    expect(await readFile(join(directory, 'people.jsonl'), 'utf8')).toBe(before);
  });

  it('drops exact replays of stored keyed records but keeps new versions', async () => {
    const first = await open([stream()]);
    await first.write({ stream: 'people', records: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }], emittedAt: 0 });
    await first.close({ completed: true });
    const second = await open([stream({ resuming: true })]);
    await second.write({ stream: 'people', records: [{ id: 1, name: 'a' }, { id: 2, name: 'B' }, { id: 1, name: 'a' }], emittedAt: 0 });
    await second.close({ completed: true });
    expect(await lines(join(directory, 'people.jsonl'))).toEqual([
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
      { id: 2, name: 'B' },
    ]);
  });

  it('quarantines malformed records with the reason and reports them', async () => {
    const session = await open([stream()]);
    const outcome = await session.write({
      stream: 'people',
      records: [{ id: 1 }, { name: 'no key' }, { id: 'x' }, { id: 4 }],
      emittedAt: 0,
    });
    await session.close({ completed: true });
    expect(outcome?.rejected?.map((r) => r.index)).toEqual([1, 2]);
    expect(outcome?.rejected?.[0]?.reason).toMatch(/primary key field id is missing/);
    expect(outcome?.rejected?.[1]?.reason).toMatch(/record\.id must be integer/);
    const quarantined = await lines(join(directory, '_quarantine', 'people.jsonl'));
    expect(quarantined.map((q) => q.record)).toEqual([{ name: 'no key' }, { id: 'x' }]);
    expect((await lines(join(directory, 'people.jsonl'))).map((r) => r.id)).toEqual([1, 4]);
  });

  it('publishes an overwrite generation only when the sync completes', async () => {
    const overwrite = stream({ syncMode: 'full_refresh', destinationSyncMode: 'overwrite' });
    const first = await open([overwrite]);
    await first.write({ stream: 'people', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
    await first.close({ completed: true });
    expect((await lines(join(directory, 'people.jsonl'))).map((r) => r.id)).toEqual([1, 2]);

    const interrupted = await open([overwrite]);
    await interrupted.write({ stream: 'people', records: [{ id: 3 }], emittedAt: 0 });
    await interrupted.close({ completed: false });
    // Readers still see the previous generation.
    expect((await lines(join(directory, 'people.jsonl'))).map((r) => r.id)).toEqual([1, 2]);

    const resumed = await open([{ ...overwrite, resuming: true }]);
    await resumed.write({ stream: 'people', records: [{ id: 4 }], emittedAt: 0 });
    await resumed.close({ completed: true });
    expect((await lines(join(directory, 'people.jsonl'))).map((r) => r.id)).toEqual([3, 4]);
    expect(await readdir(join(directory, '_staging'))).toEqual([]);
  });

  it('check fails with a config error for a directory that cannot be created', async () => {
    await appendFile(join(directory, 'a-file'), 'x');
    const config = parseConfig(localFilesDestination.spec.connectionSpecification, { directory: join(directory, 'a-file', 'out') });
    await expect(localFilesDestination.check(ctx, config)).rejects.toMatchObject({ kind: 'config' });
  });
});

describe('local files destination: what a replay may drop', () => {
  it('appends a change back to an older version (A → B → A): the last line stays the current version', async () => {
    // Three syncs, each a session: a reverted value is a change, not a replay.
    for (const name of ['a', 'b', 'a']) {
      const session = await open([stream({ resuming: true })]);
      await session.write({ stream: 'people', records: [{ id: 1, name }], emittedAt: 0 });
      await session.close({ completed: true });
    }
    // Within one batch too.
    const session = await open([stream({ resuming: true })]);
    await session.write({ stream: 'people', records: [{ id: 2, name: 'x' }, { id: 2, name: 'y' }, { id: 2, name: 'x' }], emittedAt: 0 });
    await session.close({ completed: true });
    expect(await lines(join(directory, 'people.jsonl'))).toEqual([
      { id: 1, name: 'a' },
      { id: 1, name: 'b' },
      { id: 1, name: 'a' },
      { id: 2, name: 'x' },
      { id: 2, name: 'y' },
      { id: 2, name: 'x' },
    ]);
  });

  it('a replay after a crash of several versions of one key adds nothing; a change back after a completed sync is stored', async () => {
    // Two changes of one row committed, then the sync dies before its checkpoint is saved.
    const crashed = await open([stream({ resuming: true })]);
    await crashed.write({ stream: 'people', records: [{ id: 3, name: 'a' }, { id: 3, name: 'b' }], emittedAt: 0 });
    await crashed.commit();
    await crashed.close({ completed: false });
    // The rerun delivers both again, then a new change.
    const rerun = await open([stream({ resuming: true })]);
    await rerun.write({ stream: 'people', records: [{ id: 3, name: 'a' }, { id: 3, name: 'b' }, { id: 3, name: 'c' }], emittedAt: 0 });
    await rerun.close({ completed: true });
    // After the completed sync nothing can be replayed: the same value again is a change back.
    const later = await open([stream({ resuming: true })]);
    await later.write({ stream: 'people', records: [{ id: 3, name: 'b' }], emittedAt: 0 });
    await later.close({ completed: true });
    expect((await lines(join(directory, 'people.jsonl'))).filter((r) => r.id === 3)).toEqual([
      { id: 3, name: 'a' },
      { id: 3, name: 'b' },
      { id: 3, name: 'c' },
      { id: 3, name: 'b' },
    ]);
  });

  it('a refused record replayed after a crash is rejected again but quarantined once per delivery before the crash', async () => {
    // Refused twice (two deliveries of one bad record) and committed; the sync dies before its checkpoint is saved.
    const crashed = await open([stream({ resuming: true })]);
    const first = await crashed.write({ stream: 'people', records: [{ id: 1 }, { id: 'x' }, { id: 'x' }], emittedAt: 0 });
    await crashed.commit();
    await crashed.close({ completed: false });
    // The rerun delivers both again, then the same bad record a third time.
    const logged: string[] = [];
    const logger = { debug: () => undefined, info: (m: string) => void logged.push(m), warn: () => undefined, error: () => undefined };
    const config = parseConfig(localFilesDestination.spec.connectionSpecification, { directory });
    const rerun = await localFilesDestination.open(createConnectorContext({ logger }), config, [stream({ resuming: true })]);
    const second = await rerun.write({ stream: 'people', records: [{ id: 1 }, { id: 'x' }, { id: 'x' }, { id: 'x' }], emittedAt: 0 });
    await rerun.close({ completed: true });
    expect(first?.rejected?.map((r) => r.index)).toEqual([1, 2]);
    expect(second?.rejected?.map((r) => r.index)).toEqual([1, 2, 3]);
    // The two replays match the two stored lines; the third delivery is a new one.
    expect((await lines(join(directory, '_quarantine', 'people.jsonl'))).map((q) => q.record)).toEqual([{ id: 'x' }, { id: 'x' }, { id: 'x' }]);
    expect(logged).toContainEqual('people: 2 refused record(s) were replays already in the quarantine: reported again, not stored again');
  });

  it('after a completed sync nothing is replayed: the same refused record delivered again is quarantined again', async () => {
    for (let sync = 0; sync < 2; sync++) {
      const session = await open([stream({ resuming: true })]);
      const outcome = await session.write({ stream: 'people', records: [{ id: 'x' }], emittedAt: 0 });
      await session.close({ completed: true });
      expect(outcome?.rejected?.map((r) => r.index)).toEqual([0]);
    }
    expect((await lines(join(directory, '_quarantine', 'people.jsonl'))).map((q) => q.record)).toEqual([{ id: 'x' }, { id: 'x' }]);
  });

  it('refuses two streams that would share one file', async () => {
    await expect(open([stream({ key: 'a/b', name: 'a/b' }), stream({ key: 'a_b', name: 'a_b' })])).rejects.toMatchObject({ kind: 'config' });
  });
});
