import { randomBytes } from 'node:crypto';
import { access, link, mkdir, readFile, readdir, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fsyncDirectory, fsyncPath, makeDirectoryDurably, TributaryError, writeDurableTemp, writeFileAtomic } from '@tributary/core';
import type { LakeStore } from './store.js';

/** The lake in a local directory. Atomic replace = write a temp file, fsync, rename, fsync the directory. */
export function createLocalStore(root: string): LakeStore {
  const base = resolve(root);
  const pathOf = (key: string): string => join(base, ...key.split('/'));
  /**
   * Creates the directory of `path` durably (core's `makeDirectoryDurably`: the parent of
   * every directory created is fsynced), so that a partition directory created for a
   * commit, or `_tributary/log/` itself, cannot be gone after a power loss while the log
   * entry made durable after it names it. The lake root and `_tributary/` may have been
   * created by others without that (the session's temp dir is created inside them), so the
   * first time this store creates a directory it also fsyncs the root and the root's parent.
   */
  let rootDurable = false;
  const ensureDir = async (path: string): Promise<void> => {
    if (!(await makeDirectoryDurably(dirname(path))) || rootDurable) return;
    await fsyncDirectory(base);
    await fsyncDirectory(dirname(base));
    rootDurable = true;
  };
  return {
    location: pathToFileURL(base).href,
    async put(key, body) {
      const path = pathOf(key);
      await ensureDir(path);
      await writeFileAtomic(path, body);
    },
    async putFile(key, localPath) {
      const path = pathOf(key);
      await ensureDir(path);
      // Published now, whenever it was written: rename keeps the file's modification time,
      // and compaction deletes unnamed files by that age (an orphan is an hour old). A file
      // sealed over an hour before a long session's commit would be deleted by a compaction
      // running between its publishing and the commit's log entry, which then names a file
      // that is gone.
      const now = new Date();
      await utimes(localPath, now, now);
      await fsyncPath(localPath);
      await rename(localPath, path);
      await fsyncDirectory(dirname(path));
    },
    async createIfAbsent(key, body) {
      const path = pathOf(key);
      await ensureDir(path);
      const temp = await writeDurableTemp(dirname(path), basename(path), body);
      try {
        // link(2) fails with EEXIST instead of replacing: an atomic create-if-absent.
        await link(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      } finally {
        await unlink(temp).catch(() => undefined);
      }
      await fsyncDirectory(dirname(path));
      return true;
    },
    async get(key) {
      try {
        return await readFile(pathOf(key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    async list(prefix, startAfter) {
      const dir = pathOf(prefix.replace(/\/$/, ''));
      let entries: string[];
      try {
        entries = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
      const keys = entries
        .map((p) => p.slice(base.length + 1).split(sep).join('/'))
        .filter((k) => !k.split('/').pop()!.startsWith('.'))
        .sort();
      return startAfter === undefined ? keys : keys.filter((k) => k > startAfter);
    },
    async listDetailed(prefix) {
      const keys = await this.list(prefix);
      const out: Array<{ key: string; modifiedMs: number }> = [];
      for (const key of keys) {
        const modifiedMs = await stat(pathOf(key)).then((s) => s.mtimeMs, () => undefined);
        if (modifiedMs !== undefined) out.push({ key, modifiedMs });
      }
      return out;
    },
    async delete(keys) {
      for (const key of keys) await rm(pathOf(key), { force: true });
    },
    async localCopy(key) {
      return pathOf(key);
    },
    async check() {
      try {
        await mkdir(base, { recursive: true });
        await access(base, 2 /* W_OK */);
        const probe = join(base, `.tributary-check-${randomBytes(4).toString('hex')}`);
        await writeFile(probe, 'ok');
        await unlink(probe);
      } catch (error) {
        throw new TributaryError('config', { userMessage: `Cannot write to the lake directory ${base}: check the path and its permissions`, cause: error });
      }
    },
    close() {},
  };
}
