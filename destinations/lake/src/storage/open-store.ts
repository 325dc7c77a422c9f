import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TributaryError } from '@tributary/core';
import type { LakeConfig } from '../config.js';
import { createLocalStore } from './local-store.js';
import { createS3Store } from './s3-store.js';
import type { LakeStore } from './store.js';

/** The lake's root directory when `target` is local. */
function localRoot(config: LakeConfig): string {
  return resolve(config.path ?? './lake');
}

/**
 * The lake's store, for a writer: a local directory that does not exist yet is created by
 * the first write (a sync into a new directory creates the lake). Readers and maintenance
 * use `openExistingLake`, which refuses a path that holds no lake.
 */
export function openStore(config: LakeConfig): LakeStore {
  if (config.target === 's3') {
    if (!config.bucket) throw new TributaryError('config', { userMessage: 'The lake config has target: s3 but no bucket: set `bucket`' });
    return createS3Store({
      bucket: config.bucket,
      ...(config.prefix ? { prefix: config.prefix } : {}),
      ...(config.region ? { region: config.region } : {}),
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.force_path_style ?? false,
      ...(config.access_key_id ? { accessKeyId: config.access_key_id } : {}),
      ...(config.secret_access_key ? { secretAccessKey: config.secret_access_key } : {}),
      ...(config.session_token ? { sessionToken: config.session_token } : {}),
    });
  }
  return createLocalStore(localRoot(config));
}

/**
 * Refuses (a `config` TributaryError: exit code 2 in the CLI) a local `path` that holds no
 * lake, so that a mistyped path is not read as an empty lake (nor swept by compaction). A
 * local lake is a directory with a `_tributary/` directory in it: a sync creates it when it
 * opens the lake, before its first commit, so a lake a sync has opened but not yet
 * committed to reads as empty, while a directory no sync has written to (missing, or
 * existing without `_tributary/`) is refused. On S3 every prefix is accepted (an empty
 * prefix reads as an empty lake): a sync writes nothing there before its first commit, so
 * an empty prefix cannot be told from a new lake.
 */
export async function assertLakeExists(config: LakeConfig): Promise<void> {
  if (config.target === 's3') return;
  const root = localRoot(config);
  const kind = async (path: string): Promise<'directory' | 'other' | 'missing'> =>
    stat(path).then(
      (s) => (s.isDirectory() ? 'directory' : 'other'),
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return 'missing';
        throw error;
      },
    );
  const rootKind = await kind(root);
  const hint = 'check `path` in the lake config (relative paths are resolved from the working directory); a sync into a new directory creates the lake';
  if (rootKind === 'missing') throw new TributaryError('config', { userMessage: `No lake at ${root}: the directory does not exist; ${hint}` });
  if (rootKind === 'other') throw new TributaryError('config', { userMessage: `No lake at ${root}: it is not a directory; ${hint}` });
  if ((await kind(join(root, '_tributary'))) !== 'directory') {
    throw new TributaryError('config', { userMessage: `No lake at ${root}: the directory has no _tributary/ (no sync has written to it); ${hint}` });
  }
}

/** The store of an existing lake, for readers and maintenance (see `assertLakeExists`). */
export async function openExistingLake(config: LakeConfig): Promise<LakeStore> {
  await assertLakeExists(config);
  return openStore(config);
}
