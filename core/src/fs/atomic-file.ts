import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Replaces `path` with `data` atomically and durably: after this resolves, a crash (of the
 * process or the machine) leaves the new content; before it, the old one — never a mix.
 * Writes a temp file beside the target, fsyncs it, renames it over the target and fsyncs
 * the directory (a rename is durable only once the directory entry is). Errors are thrown
 * as they come from the file system; the temp file is removed on failure.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const directory = dirname(path);
  const temp = await writeDurableTemp(directory, basename(path), data);
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await fsyncDirectory(directory);
}

/**
 * Writes `data` to a new temp file in `directory` (named after `name`, never an existing
 * file) and fsyncs it; returns its path, for the caller to rename or link into place and
 * then remove. A temp file whose writing failed is removed.
 */
export async function writeDurableTemp(directory: string, name: string, data: string | Uint8Array): Promise<string> {
  const temp = join(directory, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  return temp;
}

/** Makes a file's content, or a directory's entries (creations, renames, deletions), durable. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes the entries of `directory` (creations, renames, deletions) durable. */
export async function fsyncDirectory(directory: string): Promise<void> {
  await fsyncPath(directory);
}

/**
 * `mkdir -p` whose result survives a power loss: a new directory entry is durable only once
 * the directory holding it is fsynced (fsyncing the new directory itself does not do it), so
 * the parent of every directory created here is. Resolves once they all are; returns whether
 * anything was created (a directory that exists costs one `mkdir` call).
 */
export async function makeDirectoryDurably(path: string): Promise<boolean> {
  const first = await mkdir(path, { recursive: true });
  if (first === undefined) return false;
  const top = resolve(first);
  for (let created = resolve(path); ; created = dirname(created)) {
    await fsyncDirectory(dirname(created));
    if (created === top || dirname(created) === created) return true;
  }
}
