/**
 * Child process of the file-store crash test. Saves growingState(first), growingState(first + 1), …
 * forever into a file store and prints each index to stdout after its save resolved.
 * Writes to a pipe are synchronous on Linux, so every printed index reached the parent
 * even when this process is SIGKILLed right after.
 *
 * Usage: node --conditions=tributary-source --import tsx state-writer.ts <dir> <connection> <first>
 */
import { createFileStateStore } from '@tributary/core';
import { growingState } from './growing-state.js';

const [dir, connection, first] = process.argv.slice(2);
if (!dir || !connection || !first) throw new Error('usage: state-writer.ts <dir> <connection> <first>');
const store = createFileStateStore(dir);
for (let i = Number(first); ; i++) {
  await store.save(connection, growingState(i));
  process.stdout.write(`${i}\n`);
}
