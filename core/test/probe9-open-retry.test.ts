/**
 * A destination's open that fails with a retryable error is retried under the destination's
 * retry policy: a transient failure there (a lake on S3 whose commit-log read lost its
 * connection) failed the whole sync, though nothing had been read or written yet. Other
 * errors still fail the sync at once.
 */
import { describe, expect, it } from 'vitest';
import { checkpoint, defineDestination, record, runSync, TributaryError, type RecordData, type SourceMessage } from '@tributary/core';
import { itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe9-open-retry-');

const source = itemsSource('two-records', async function* (): AsyncGenerator<SourceMessage> {
  yield record('items', { id: 1 });
  yield record('items', { id: 2 });
  yield checkpoint('items', { id: 2 });
});

const catalog = {
  streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental' as const] }, sync_mode: 'incremental' as const, destination_sync_mode: 'append' as const }],
};

/** A destination whose open throws `failures` errors of `kind` first; records what it was given. */
function flakyDestination(failures: number, kind: 'transient' | 'config' | 'rate_limited') {
  const seen = { opens: 0, released: 0, written: [] as RecordData[] };
  const destination = defineDestination({
    name: 'flaky',
    delivery: 'upsert',
    retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 },
    spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
    async check() {},
    async open() {
      if (++seen.opens <= failures) {
        // What a failed open took is released before it throws (the contract).
        seen.released++;
        throw new TributaryError(kind, { userMessage: `open failed (${kind}, attempt ${seen.opens})`, ...(kind === 'rate_limited' ? { retryAfterMs: 1 } : {}) });
      }
      return {
        async write(batch) {
          seen.written.push(...batch.records);
        },
        async commit() {},
        async close() {},
      };
    },
  });
  return { destination, seen };
}

describe('open is retried like a write', () => {
  it('a transient failure at open, twice, then the sync completes with every record', async () => {
    const { destination, seen } = flakyDestination(2, 'transient');
    const result = await runSync({ connection: 'transient', source, sourceConfig: {}, destination, destinationConfig: {}, catalog, stateStore: temp.store });
    expect(result.outcome).toBe('completed');
    expect(seen.opens).toBe(3);
    expect(seen.written).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await temp.store.load('transient')).toEqual({ streams: { items: { id: 2 } } });
  });

  it('a rate-limited open waits and is retried', async () => {
    const { destination, seen } = flakyDestination(1, 'rate_limited');
    const result = await runSync({ connection: 'rate-limited', source, sourceConfig: {}, destination, destinationConfig: {}, catalog, stateStore: temp.store });
    expect(result.outcome).toBe('completed');
    expect(seen.opens).toBe(2);
  });

  it('a config error at open fails the sync at once, naming the destination', async () => {
    const { destination, seen } = flakyDestination(1, 'config');
    await expect(runSync({ connection: 'config', source, sourceConfig: {}, destination, destinationConfig: {}, catalog, stateStore: temp.store })).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringContaining('open failed (config, attempt 1)') });
    expect(seen.opens).toBe(1);
  });

  it('an open that throws a plain Error fails at once, its message naming the destination', async () => {
    let opens = 0;
    const destination = defineDestination({
      name: 'broken',
      delivery: 'upsert',
      spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
      async check() {},
      async open() {
        opens++;
        throw new Error('disk on fire');
      },
    });
    await expect(runSync({ connection: 'plain', source, sourceConfig: {}, destination, destinationConfig: {}, catalog, stateStore: temp.store })).rejects.toMatchObject({
      kind: 'fatal',
      userMessage: 'Destination "broken" could not open: disk on fire',
    });
    expect(opens).toBe(1);
  });

  it('the retry policy bounds the attempts: a destination that never opens fails the sync after them', async () => {
    const { destination, seen } = flakyDestination(100, 'transient');
    await expect(runSync({ connection: 'never', source, sourceConfig: {}, destination, destinationConfig: {}, catalog, stateStore: temp.store })).rejects.toMatchObject({ kind: 'transient' });
    expect(seen.opens).toBe(4);
    expect(await temp.store.load('never')).toBeUndefined();
  });
});
