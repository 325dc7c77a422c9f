/**
 * Child process of probe4-directory-lock.test.ts (`node --conditions=tributary-source --import tsx`):
 * opens the local destination on the directory argv[2] with one keyed stream `notes`,
 * appends a batch without committing it, prints `{"open":true}` and waits until it is
 * killed — a session of another process, in the middle of its sync.
 */
import { createConnectorContext, parseConfig } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';

const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory: process.argv[2]! }), [
  {
    key: 'notes',
    name: 'notes',
    syncMode: 'incremental',
    destinationSyncMode: 'append_dedup',
    primaryKey: [['id']],
    cursorField: ['id'],
    jsonSchema: { type: 'object', properties: { id: { type: 'integer' } } },
    resuming: false,
  },
]);
await session.write({ stream: 'notes', records: [{ id: 1 }, { id: 2 }], emittedAt: 0 });
process.stdout.write(JSON.stringify({ open: true }) + '\n');
// Keeps the process (and its session) alive until the test kills it.
setInterval(() => undefined, 60_000);
