import type { DestinationStream } from '@tributary/core';

/** Under `ulimit -f 64` (64 KiB per file). */
export const FILE_SIZE_LIMIT_KIB = 64;

const schema = { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } }, required: ['id'] };

/** `data`: a keyed stream whose second batch overflows the data file; `quarantine`: an unkeyed one whose second batch overflows the quarantine file. */
export function limitedStream(mode: 'data' | 'quarantine'): DestinationStream {
  return { key: 'people', name: 'people', syncMode: 'incremental', destinationSyncMode: 'append', primaryKey: mode === 'data' ? [['id']] : [], cursorField: ['id'], jsonSchema: schema, resuming: false };
}

/** The two batches: ~10 KB that fit, then ~60 KB more that do not (in the data file, or in the quarantine file besides one valid record). */
export function limitedBatches(mode: 'data' | 'quarantine'): [unknown[], unknown[]] {
  const records = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ id: from + i, name: 'n'.repeat(1_000) }));
  if (mode === 'data') return [records(0, 10), records(10, 60)];
  // The second batch: a valid record, and one that fails the schema (quarantined) and is too large for the limit.
  return [records(0, 10), [{ id: 10, name: 'valid' }, { id: 11, name: 42, pad: 'p'.repeat(70_000) }]];
}
