/**
 * Child process of short-write.test.ts, run under a file size limit (`ulimit -f`): opens the
 * local destination on argv[2], commits a first batch, then writes a second one that does
 * not fit, and closes as a failed sync does (`completed: false`, which commits). Prints one
 * JSON line per step: what the destination acknowledged.
 */
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';
import { attempt } from './child-steps.js';
import { limitedBatches, limitedStream } from './limited-batches.js';

const [directory, mode] = [process.argv[2]!, process.argv[3] as 'data' | 'quarantine'];
const stream: DestinationStream = limitedStream(mode);
const [first, second] = limitedBatches(mode);
const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [stream]);
await attempt('first', async () => {
  await session.write({ stream: stream.key, records: first as RecordData[], emittedAt: 0 });
  await session.commit();
});
await attempt('second', () => session.write({ stream: stream.key, records: second as RecordData[], emittedAt: 0 }));
await attempt('close', () => session.close({ completed: false }));
