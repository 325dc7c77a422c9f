import { hostname } from 'node:os';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The lake's temp dirs: a session's staging dir, a reader's download cache (S3), a
 * compaction's work dir. A crashed process leaves its dir behind, so a new session removes
 * those older than an hour. Age alone (the dir's modification time, which changes only when
 * its own entries do) also matched dirs still in use: an S3 reader kept open for over an
 * hour lost its downloaded files (its queries then failed: "No files found"), and a sync
 * running for over an hour lost its staged Parquet files. Each dir therefore names its
 * owner (host and process id), and is removed only once that process is gone.
 */
const OWNER_FILE = '.tributary-owner';
/** A dir without a living owner is only removed once this old (its owner may still be creating it). */
const STALE_TEMP_MS = 60 * 60_000;

/** Creates `dir` (and parents) and records this process as its owner. */
export async function createOwnedTempDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, OWNER_FILE), JSON.stringify({ host: hostname(), pid: process.pid }));
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `dir`'s owner is a live process of this host (unknown owners, e.g. of another host, count as live: age decides alone then). */
async function ownerAlive(dir: string): Promise<boolean | undefined> {
  let owner: { host?: unknown; pid?: unknown };
  try {
    owner = JSON.parse(await readFile(join(dir, OWNER_FILE), 'utf8')) as { host?: unknown; pid?: unknown };
  } catch {
    return undefined;
  }
  if (owner.host !== hostname() || typeof owner.pid !== 'number') return undefined;
  return owner.pid === process.pid || processAlive(owner.pid);
}

/** Removes the dirs of `parent` matching `accept` that are over an hour old and whose owner process is gone. */
export async function removeStaleTempDirs(parent: string, accept: (name: string) => boolean): Promise<void> {
  let entries: string[];
  try {
    entries = (await readdir(parent, { withFileTypes: true })).filter((e) => e.isDirectory() && accept(e.name)).map((e) => join(parent, e.name));
  } catch {
    return;
  }
  for (const dir of entries) {
    const age = await stat(dir).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (!(age > STALE_TEMP_MS)) continue;
    if ((await ownerAlive(dir)) === true) continue;
    await rm(dir, { recursive: true, force: true });
  }
}
