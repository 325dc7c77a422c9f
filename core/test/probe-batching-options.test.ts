/**
 * Batching options come from a destination's declaration and from the caller of `runSync`
 * (the sync file's are checked by its schema, these are not). One that cannot work — no
 * batch ever allowed in flight — made the sync wait forever for queue space, with the
 * destination session open and the connection locked. It is refused before anything is
 * opened or read, as a config error naming the option.
 */
import { describe, expect, it } from 'vitest';
import { checkpoint, record, runSync, type BatchingOptions, type SourceMessage } from '@tributary/core';
import { discardingDestination, itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe-batching-');

const source = itemsSource('one', async function* (): AsyncGenerator<SourceMessage> {
  yield record('items', { id: 1 });
  yield checkpoint('items', { page: 1 });
});

function sync(batching: BatchingOptions, opened: string[]) {
  const destination = discardingDestination({ batching, onOpen: () => opened.push('open') });

  return runSync({
    connection: 'c',
    source,
    sourceConfig: {},
    destination,
    destinationConfig: {},
    catalog: { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] },
    stateStore: temp.store,
  });
}

/** Settles with the sync's outcome, or 'still running' if it has not settled after 2 s (a hang). */
async function settle(run: Promise<unknown>): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise((resolve) => (timer = setTimeout(() => resolve('still running after 2 s'), 2_000)));
  try {
    return await Promise.race([run.then((r) => ({ resolved: r }), (e: unknown) => ({ rejected: e })), hang]);
  } finally {
    clearTimeout(timer);
  }
}

describe('batching options that cannot work are refused, not waited on forever', () => {
  it.each<[string, BatchingOptions]>([
    ['maxBatchesInFlight', { maxBatchesInFlight: 0 }],
    ['maxBatchesInFlight', { maxBatchesInFlight: -1 }],
  ])('%s in %j', async (field, batching) => {
    const opened: string[] = [];
    const outcome = (await settle(sync(batching, opened))) as { rejected?: { kind?: string; userMessage?: string } };
    expect(outcome.rejected?.kind).toBe('config');
    expect(outcome.rejected?.userMessage).toContain(field);
    expect(opened).toEqual([]);
  });

  it('valid options still sync', async () => {
    const opened: string[] = [];
    const outcome = (await settle(sync({ maxBatchesInFlight: 1, maxRecords: 1, commitIntervalMs: 0 }, opened))) as { resolved?: { outcome: string } };
    expect(outcome.resolved?.outcome).toBe('completed');
  });
});
