import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fsyncDirectory } from '@tributary/core';

/**
 * `mkdir -p` whose result survives a power loss: a new directory entry is durable only once
 * the directory holding it is fsynced, so the parent of every directory created here is.
 * Resolves once they all are; an existing directory costs one `mkdir` call.
 */
export async function makeDirectory(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true });
  if (first === undefined) return;
  const top = resolve(first);
  for (let created = resolve(path); ; created = dirname(created)) {
    await fsyncDirectory(dirname(created));
    if (created === top || dirname(created) === created) return;
  }
}

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
