import { open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The commit log of a local-files directory: for every data file, how many bytes are
 * committed. Bytes past that length were written but never acknowledged, so they are cut
 * off when the directory is opened again (after a crash) before the runtime replays them.
 */
export interface Manifest {
  version: 1;
  files: Record<string, number>;
  /** Staged overwrite files being renamed into place (staging path → final path). */
  publishing?: Record<string, string>;
}

export const MANIFEST_PATH = join('_tributary', 'manifest.json');

export async function readManifest(directory: string): Promise<Manifest> {
  try {
    const parsed = JSON.parse(await readFile(join(directory, MANIFEST_PATH), 'utf8')) as Manifest;
    if (parsed.version !== 1 || typeof parsed.files !== 'object') throw new Error('unknown manifest version');
    return parsed;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, files: {} };
    throw error;
  }
}

/** Replaces the manifest atomically and durably (temp file, fsync, rename, fsync dir). */
export async function writeManifest(directory: string, manifest: Manifest): Promise<void> {
  const target = join(directory, MANIFEST_PATH);
  const temp = `${target}.${process.pid}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(JSON.stringify(manifest));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, target);
  await fsyncDirectory(dirname(target));
}

export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
