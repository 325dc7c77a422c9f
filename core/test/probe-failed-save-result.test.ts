/**
 * `SyncResult.state` is the last committed state: what the next sync resumes from. When the
 * state store refuses a save (disk full, a lost database), the checkpoint of that save was
 * not committed, and the result must not report it as if it were.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkpoint, createFileStateStore, defineDestination, defineSource, record, runSync, TributaryError, type SourceMessage, type StateStore } from '@tributary/core';

let dir: string;
let store: StateStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-save-'));
  store = createFileStateStore(dir);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const source = defineSource({
  name: 'three-pages',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [{ name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], source_defined_cursor: true, default_cursor_field: ['id'] }] };
  },
  async *read(): AsyncGenerator<SourceMessage> {
    for (let page = 1; page <= 3; page++) {
      yield record('items', { id: page });
      yield checkpoint('items', { page });
    }
  },
});

const destination = defineDestination({
  name: 'sink',
  delivery: 'upsert',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
  async check() {},
  async open() {
    return { async write() {}, async commit() {}, async close() {} };
  },
});

describe('a save the state store refused is not reported as committed', () => {
  it('SyncResult.state is the state the store holds, not the checkpoint it refused', async () => {
    let saves = 0;
    // The real file store, whose disk fills up at the second save.
    const fillsUp: StateStore = {
      ...store,
      async save(connection, state) {
        if (++saves === 2) throw new TributaryError('config', { userMessage: `Cannot write state to ${dir} (ENOSPC)` });
        await store.save(connection, state);
      },
    };
    const result = await runSync({
      connection: 'c',
      source,
      sourceConfig: {},
      destination,
      destinationConfig: {},
      catalog: {
        streams: [
          { stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' },
        ],
      },
      stateStore: fillsUp,
      // One commit per checkpoint: the second save is the one of { page: 2 }.
      batching: { commitIntervalMs: 0, maxRecords: 1 },
    });
    expect(result.outcome).toBe('failed');
    expect(result.error?.userMessage).toContain('ENOSPC');
    const stored = await store.load('c');
    expect(stored).toEqual({ streams: { items: { page: 1 } } });
    expect(result.state).toEqual(stored);
  });
});
