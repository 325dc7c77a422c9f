/**
 * Child process of short-write.test.ts, run under a soft file size limit (`ulimit -S -f`):
 * reopens the local destination on argv[2] as a resumed sync, writes a batch that replays
 * two stored versions of one key and adds a record too large for the limit (it fails),
 * lifts the limit (`prlimit` on this process, as space freed on a full disk would), and
 * writes the same batch again, as the runtime's retry does. Prints one JSON line per step.
 */
import { execFileSync } from 'node:child_process';
import { createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';
import { attempt } from './child-steps.js';
import { limitedStream } from './limited-batches.js';

const directory = process.argv[2]!;
const stream = { ...limitedStream('data'), resuming: true };
const batch: RecordData[] = [{ id: 1, name: 'v1' }, { id: 1, name: 'v2' }, { id: 2, name: 'n'.repeat(70_000) }];
const session = await localFilesDestination.open(createConnectorContext({}), parseConfig(localFilesDestination.spec.connectionSpecification, { directory }), [stream]);
await attempt('write', () => session.write({ stream: stream.key, records: batch, emittedAt: 0 }));
execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited']);
await attempt('retry', () => session.write({ stream: stream.key, records: batch, emittedAt: 0 }));
await attempt('close', async () => {
  await session.commit();
  await session.close({ completed: true });
});
