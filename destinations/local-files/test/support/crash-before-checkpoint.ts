/**
 * Child process of quarantine-replay.test.ts (`node --conditions=tributary-source --import tsx`):
 * runs the real runtime (`runSync`) from the refusing source into the local destination at
 * `<argv[2]>/out`, with a file state store at `<argv[2]>/state`, and SIGKILLs itself when the
 * runtime is about to save the checkpoint that covers the refused records. The destination
 * has committed them by then (the runtime saves a checkpoint only after the commit), while
 * the store still holds the checkpoint before them: the rerun delivers them again. No
 * `close`, no `finally` runs. Prints the runtime's events as JSON lines on stdout.
 */
import { join } from 'node:path';
import { createFileStateStore, runSync, type StateStore } from '@tributary/core';
import { localFilesDestination } from '../../src/index.js';
import { batching, peopleCatalog, refusingSource } from './refusing-source.js';

/** The checkpoint after the refused records 5 and 6. */
export const KILLED_AT_OFFSET = 8;

const workDir = process.argv[2]!;
const print = (line: unknown, then?: () => void): void => void process.stdout.write(JSON.stringify(line) + '\n', then);
const store = createFileStateStore(join(workDir, 'state'));
const dying: StateStore = {
  ...store,
  location: store.location,
  async save(connection, state) {
    const offset = Number(state.streams.people?.offset ?? 0);
    if (offset < KILLED_AT_OFFSET) return store.save(connection, state);
    // Killed only once the line has been handed to the pipe, so the parent sees it.
    print({ killedBeforeSaving: offset }, () => process.kill(process.pid, 'SIGKILL'));
    return new Promise<never>(() => undefined);
  },
};

await runSync({
  connection: 'quarantine-replay',
  source: refusingSource,
  sourceConfig: {},
  destination: localFilesDestination,
  destinationConfig: { directory: join(workDir, 'out') },
  catalog: peopleCatalog,
  stateStore: dying,
  batching,
  onEvent: (event) => print(event.type === 'log' ? { log: event.level, message: event.message } : { event: event.type }),
});
print({ finished: true });
