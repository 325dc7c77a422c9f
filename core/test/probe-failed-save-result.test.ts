/**
 * `SyncResult.state` is the last committed state: what the next sync resumes from. When the
 * state store refuses a save (disk full, a lost database), the checkpoint of that save was
 * not committed, and the result must not report it as if it were.
 */
import { describe, expect, it } from 'vitest';
import { checkpoint, record, runSync, TributaryError, type SourceMessage, type StateStore } from '@tributary/core';
import { discardingDestination, itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe-save-');

const source = itemsSource(
  'three-pages',
  async function* (): AsyncGenerator<SourceMessage> {
    for (let page = 1; page <= 3; page++) {
      yield record('items', { id: page });
      yield checkpoint('items', { page });
    }
  },
  { source_defined_cursor: true, default_cursor_field: ['id'] },
);

const destination = discardingDestination();

describe('a save the state store refused is not reported as committed', () => {
  it('SyncResult.state is the state the store holds, not the checkpoint it refused', async () => {
    let saves = 0;
    // The real file store, whose disk fills up at the second save.
    const fillsUp: StateStore = {
      ...temp.store,
      async save(connection, state) {
        if (++saves === 2) throw new TributaryError('config', { userMessage: `Cannot write state to ${temp.dir} (ENOSPC)` });
        await temp.store.save(connection, state);
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
    const stored = await temp.store.load('c');
    expect(stored).toEqual({ streams: { items: { page: 1 } } });
    expect(result.state).toEqual(stored);
  });
});
