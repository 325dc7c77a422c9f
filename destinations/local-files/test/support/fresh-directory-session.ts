/**
 * Child process of directory-fsync.test.ts, run under `strace`: opens the local destination
 * on the missing directory argv[2] with a keyed append stream and an overwrite stream,
 * writes a batch to each (one record refused), commits, and closes as a completed sync
 * (which publishes the overwrite stream by rename).
 */
import { createConnectorContext, parseConfig, type DestinationStream } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';

const directory = process.argv[2]!;
const jsonSchema = { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] };
const stream = (name: string, overwrite: boolean): DestinationStream => ({
  key: name,
  name,
  syncMode: overwrite ? 'full_refresh' : 'incremental',
  destinationSyncMode: overwrite ? 'overwrite' : 'append_dedup',
  primaryKey: [['id']],
  cursorField: ['id'],
  jsonSchema,
  resuming: false,
});
const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [
  stream('people', false),
  stream('companies', true),
]);
await session.write({ stream: 'people', records: [{ id: 1 }, { id: 'refused' }], emittedAt: 0 });
await session.write({ stream: 'companies', records: [{ id: 7 }], emittedAt: 0 });
await session.commit();
await session.close({ completed: true });
