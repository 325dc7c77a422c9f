/**
 * Child process of the file-store lock takeover test. Opens a file store, waits for a line on
 * stdin (so that every contender starts at the same moment), tries to take the connection's
 * lock and prints `won` or `lost`. A winner keeps the lock (never releases it) and exits when
 * stdin closes, so that a second winner cannot be explained by a release.
 *
 * Usage: node --conditions=tributary-source --import tsx lock-contender.ts <dir> <connection>
 */
import { createInterface } from 'node:readline';
import { createFileStateStore } from '@tributary/core';

const [dir, connection] = process.argv.slice(2);
if (!dir || !connection) throw new Error('usage: lock-contender.ts <dir> <connection>');
const store = createFileStateStore(dir);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
process.stdout.write('ready\n');
await lines.next();
let outcome: string;
try {
  await store.lock!(connection);
  outcome = 'won';
} catch (error) {
  outcome = `lost ${error instanceof Error ? error.message : String(error)}`.replace(/\n/g, ' ');
}
process.stdout.write(`${outcome}\n`);
while (!(await lines.next()).done);
process.exit(0);
