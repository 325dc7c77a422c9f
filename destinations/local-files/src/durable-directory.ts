import { dirname } from 'node:path';
import { fsyncDirectory } from '@tributary/core';

/**
 * Makes a rename durable: the entry it added to the target's directory and the one it
 * removed from the source's (both, when they differ). A source directory that is gone has
 * no entry left to make durable.
 */
export async function fsyncRename(from: string, to: string): Promise<void> {
  await fsyncDirectory(dirname(to));
  if (dirname(from) === dirname(to)) return;
  try {
    await fsyncDirectory(dirname(from));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
