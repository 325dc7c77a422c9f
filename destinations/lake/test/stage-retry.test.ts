import { expect, it } from 'vitest';
import { parseConfig, TributaryError } from '@tributary/core';
import { lakeConfigSchema, resolveMapping } from '../src/config.js';
import { openDuckDb } from '../src/duck.js';
import { columnsOfSchema, type PayloadColumn } from '../src/schema-registry.js';
import { StreamStage } from '../src/stream-stage.js';
import { keyedStream } from './helpers.js';

// The runtime repeats a write that failed with a retryable error. A batch whose staging
// failed after some of its records were staged (here: the schema widening a record needs
// mid-batch fails) must not be retryable: the retry would stage those records again, and
// the lake would store them twice.
it('a batch that fails after part of it was staged fails the sync instead of being retried', async () => {
  const duck = await openDuckDb();
  try {
    const stream = keyedStream('rows');
    let widenings = 0;
    const onNewColumns = async (added: PayloadColumn[]) => {
      // The first widening (a new field, `score`) works; the second (`score` to number, needed mid-batch) fails transiently.
      if (++widenings > 1) throw new TributaryError('transient', { userMessage: 'registry unavailable' });
      return { version: 2, columns: [...columnsOfSchema(stream.jsonSchema), ...added] };
    };
    const stage = new StreamStage(duck.connection, 0, resolveMapping(parseConfig(lakeConfigSchema, {}), stream), columnsOfSchema(stream.jsonSchema), 1, undefined, undefined, onNewColumns);
    await stage.create();
    const records = [
      { id: 1, tenant_id: 't', customer_id: 'c1', score: 1 },
      { id: 2, tenant_id: 't', customer_id: 'c2', score: 2.5 },
    ];
    const error = await stage.append(records, Date.now()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(stage.rows).toBe(1); // the first record was staged before the widening failed
    expect(error).toBeInstanceOf(TributaryError);
    expect(error).toMatchObject({ kind: 'fatal', retryable: false });
    stage.close();
  } finally {
    duck.close();
  }
});

it('a batch that fails before any record is staged stays retryable, and its retry stages it once', async () => {
  const duck = await openDuckDb();
  try {
    const stream = keyedStream('rows');
    let failNext = true;
    const onNewColumns = async (added: PayloadColumn[]) => {
      if (failNext) {
        failNext = false;
        throw new TributaryError('transient', { userMessage: 'registry unavailable' });
      }
      return { version: 2, columns: [...columnsOfSchema(stream.jsonSchema), ...added] };
    };
    const stage = new StreamStage(duck.connection, 0, resolveMapping(parseConfig(lakeConfigSchema, {}), stream), columnsOfSchema(stream.jsonSchema), 1, undefined, undefined, onNewColumns);
    await stage.create();
    const records = [{ id: 1, tenant_id: 't', customer_id: 'c1', score: 1 }];
    await expect(stage.append(records, Date.now())).rejects.toMatchObject({ kind: 'transient' });
    expect(stage.rows).toBe(0);
    expect(await stage.append(records, Date.now())).toEqual([]);
    expect(stage.rows).toBe(1);
    stage.close();
  } finally {
    duck.close();
  }
});
