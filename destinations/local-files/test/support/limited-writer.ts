/**
 * Child process of short-write.test.ts, run under a file size limit (`ulimit -f`): opens the
 * local destination on argv[2], commits a first batch, then writes a second one that does
 * not fit, and closes as a failed sync does (`completed: false`, which commits). Prints one
 * JSON line per step: what the destination acknowledged.
 */
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';
import { limitedBatches, limitedStream } from './limited-batches.js';

const [directory, mode] = [process.argv[2]!, process.argv[3] as 'data' | 'quarantine'];
const report = (step: string, outcome: unknown): void => void process.stdout.write(JSON.stringify({ step, outcome }) + '\n');
const stream: DestinationStream = limitedStream(mode);
const [first, second] = limitedBatches(mode);
const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [stream]);
const attempt = async (step: string, run: () => Promise<unknown>): Promise<void> => {
  try {
    await run();
    report(step, 'ok');
  } catch (error) {
    report(step, (error as NodeJS.ErrnoException).code ?? String(error));
  }
};
await attempt('first', async () => {
  await session.write({ stream: stream.key, records: first as RecordData[], emittedAt: 0 });
  await session.commit();
});
await attempt('second', () => session.write({ stream: stream.key, records: second as RecordData[], emittedAt: 0 }));
await attempt('close', () => session.close({ completed: false }));
