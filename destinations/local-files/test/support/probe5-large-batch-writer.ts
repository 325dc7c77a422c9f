/**
 * Child process of probe5-large-records.test.ts, run under a file size limit (`ulimit -f`):
 * opens the local destination on argv[2], commits a small batch, then writes one whose lines
 * are written out in pieces (longer than `WRITE_OUT_AT` together) and do not all fit, and
 * closes as a failed sync does (`completed: false`, which commits). Prints one JSON line per
 * step: what the destination acknowledged.
 */
import { createConnectorContext, parseConfig, type DestinationStream } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';
import { attempt } from './child-steps.js';

export const PIECE_LENGTH = 30 * 1024 * 1024;
const directory = process.argv[2]!;
const stream: DestinationStream = {
  key: 'docs',
  name: 'docs',
  syncMode: 'incremental',
  destinationSyncMode: 'append_dedup',
  primaryKey: [['id']],
  cursorField: ['id'],
  jsonSchema: { type: 'object' },
  resuming: false,
};
const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [stream]);
const text = 'x'.repeat(PIECE_LENGTH);
await attempt('first', async () => {
  await session.write({ stream: 'docs', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
  await session.commit();
});
// About 90 MiB of lines: the first two are written out before the third is added.
await attempt('second', () => session.write({ stream: 'docs', records: [{ id: 3, text }, { id: 4, text }, { id: 5, text }], emittedAt: 0 }));
await attempt('close', () => session.close({ completed: false }));
