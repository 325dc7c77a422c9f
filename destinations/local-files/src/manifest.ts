import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@tributary/core';

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
  /**
   * Per data and quarantine file, its committed length when its stream's last sync
   * completed: only lines after it can be delivered again (the replay window, see
   * stream-file.ts). Absent: 0 (a quarantine file of a manifest older than this entry has
   * all its lines in the window until its stream's next completed sync).
   */
  completed?: Record<string, number>;
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

/** Replaces the manifest atomically and durably. */
export async function writeManifest(directory: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(join(directory, MANIFEST_PATH), JSON.stringify(manifest));
}
