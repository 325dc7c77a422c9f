import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig, TributaryError } from '@tributary/core';
import { commitEntry, loadLakeState, type LakeFile } from '../src/commit-log.js';
import { lakeConfigSchema, openStore, type LakeStore } from '../src/index.js';

// A commit whose log entry was stored although its writer saw the write fail (on S3: every
// request of the PUT lost its answer), retried by the runtime: the retry must find its
// earlier attempt instead of logging the same files a second time.
let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-lake-commit-retry-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const file: LakeFile = { path: 'data/s/tenant_id=t/event_date=2024-01-01/a.parquet', stream: 's', tenant: 't', partition: '2024-01-01', rows: 1, bytes: 1, schemaVersion: 1, minEventTime: 0, maxEventTime: 0, sessions: ['session-1'] };

it('a retried commit whose first attempt was stored unseen is logged once', async () => {
  const store = openStore(parseConfig(lakeConfigSchema, { path: join(dir, 'lake') }));
  let answerLost = true;
  const flaky: LakeStore = {
    ...store,
    async createIfAbsent(key, body) {
      const created = await store.createIfAbsent(key, body);
      if (answerLost) {
        answerLost = false;
        throw new TributaryError('transient', { userMessage: 'the answer was lost' });
      }
      return created;
    },
  };
  try {
    const state = await loadLakeState(store);
    const draft = { session: 'session-1', kind: 'append' as const, commit: 'commit-1', add: [file] };
    await expect(commitEntry(flaky, state, draft)).rejects.toMatchObject({ kind: 'transient' });
    // The runtime retries the commit: the same files, the same commit id, the state as it was.
    const entry = await commitEntry(flaky, state, draft);
    expect(entry?.seq).toBe(1);
    const log = await loadLakeState(store);
    expect(log.seq).toBe(1);
    expect([...log.files.keys()]).toEqual([file.path]);
    // A different commit still goes after it.
    expect((await commitEntry(flaky, state, { ...draft, commit: 'commit-2', add: [{ ...file, path: file.path.replace('a.parquet', 'b.parquet') }] }))?.seq).toBe(2);
  } finally {
    store.close();
  }
});
