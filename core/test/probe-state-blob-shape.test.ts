/**
 * A checkpoint's state is a JSON object (the Airbyte `stream_state` / `shared_state` is an
 * object, and the state stores refuse anything else on load). A source that yields another
 * value (`null`, an array, a string — easy from JavaScript) must fail the sync at that
 * checkpoint, with the last good state kept. Before, the runtime saved it: the sync
 * "completed", and every later sync of the connection failed to load its state.
 */
import { describe, expect, it } from 'vitest';
import { runSync, type SourceMessage } from '@tributary/core';
import { discardingDestination, itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe-blob-');

const destination = discardingDestination();

/** Yields a good checkpoint, then `bad` as the next one (as JavaScript lets a source do). */
function sourceYielding(bad: (messages: { good: SourceMessage }) => SourceMessage) {
  return itemsSource('js', async function* (): AsyncGenerator<SourceMessage> {
    const good: SourceMessage = { kind: 'checkpoint', stream: 'items', state: { page: 1 } };
    yield { kind: 'record', stream: 'items', data: { id: 1 } };
    yield good;
    yield { kind: 'record', stream: 'items', data: { id: 2 } };
    yield bad({ good });
  });
}

const cases: Array<[string, () => SourceMessage]> = [
  ['a null stream state', () => ({ kind: 'checkpoint', stream: 'items', state: null as unknown as Record<string, unknown> })],
  ['an array stream state', () => ({ kind: 'checkpoint', stream: 'items', state: [2] as unknown as Record<string, unknown> })],
  ['a string shared state', () => ({ kind: 'global-checkpoint', shared: 'lsn/2' as unknown as Record<string, unknown>, streams: [{ stream: 'items', state: { page: 2 } }] })],
];

describe('a checkpoint whose state is not a JSON object', () => {
  it.each(cases)('%s fails the sync and keeps the last good state loadable', async (_what, bad) => {
    const run = (source: ReturnType<typeof sourceYielding>) =>
      runSync({
        connection: 'c',
        source,
        sourceConfig: {},
        destination,
        destinationConfig: {},
        catalog: { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] },
        stateStore: temp.store,
        batching: { commitIntervalMs: 0 },
      });
    const result = await run(sourceYielding(bad));
    expect(result.outcome).toBe('failed');
    expect(result.error?.kind).toBe('fatal');
    expect(result.error?.userMessage).toContain('JSON object');
    // The connection still syncs: its state is the last good one.
    expect(await temp.store.load('c')).toEqual({ streams: { items: { page: 1 } } });
  });
});
