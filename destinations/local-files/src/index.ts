import { access, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defineDestination, makeDirectoryDurably, TributaryError, type ConnectorContext, type DestinationSession, type DestinationStream } from '@tributary/core';
import { openLocked, type DirectoryLock } from './directory-lock.js';
import { fsyncRename } from './durable-directory.js';
import { checkStreamFileNames, fileName } from './file-names.js';
import { MANIFEST_PATH, readManifest, writeManifest, type Manifest } from './manifest.js';
import { openStreamFile, type StreamFile } from './stream-file.js';

const connectionSpecification = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Local files destination',
  type: 'object',
  required: ['directory'],
  additionalProperties: false,
  properties: {
    directory: {
      type: 'string',
      minLength: 1,
      title: 'Directory',
      description: 'Where `<stream>.jsonl` files are written. Created if missing.',
    },
    validate_records: {
      type: 'boolean',
      default: true,
      title: 'Validate records',
      description: 'Check each record against its stream schema; failures go to `_quarantine/` with the reason.',
    },
  },
} as const;

/**
 * Writes each stream to `<directory>/<stream>.jsonl`, one JSON record per line.
 *
 * Durability: `commit()` fsyncs the files and records their committed lengths in
 * `_tributary/manifest.json` (atomic replace). On open, anything past a committed length is
 * cut off, so a crash never leaves half-written or unacknowledged lines behind.
 * Replays: keyed streams drop records identical to one already stored (`append-dedupe`).
 * Overwrite streams are staged in `_staging/` and published by rename when the sync completes.
 * Bad records (not an object, missing primary key, schema mismatch) go to
 * `_quarantine/<stream>.jsonl` with the reason and are reported to the runtime; a replayed
 * one is reported again but not stored again (see stream-file.ts).
 * Every file and directory this destination creates has its directory entry fsynced before
 * a commit can record bytes in it, and every rename before the manifest records it done.
 * One session per directory: a session of another process holding it is refused, and so is
 * one of this process while the holder has a call running; opened while the holder is idle,
 * it takes the directory over and the holder's later calls fail (see directory-lock.ts).
 */
export const localFilesDestination = defineDestination({
  name: 'local',
  version: '0.1.0',
  delivery: 'append-dedupe',
  spec: {
    connectionSpecification,
    supportedDestinationSyncModes: ['append', 'append_dedup', 'overwrite'],
  },

  async check(_ctx, config) {
    const directory = resolve(config.directory);
    try {
      await makeDirectoryDurably(directory);
      await access(directory, 2 /* W_OK */);
    } catch (error) {
      throw new TributaryError('config', { userMessage: `Cannot write to directory ${directory}`, cause: error });
    }
  },

  async open(ctx, config, streams) {
    // Before anything is created or written: a refused sync leaves the directory as it was.
    checkStreamFileNames(streams);
    const directory = resolve(config.directory);
    try {
      // Durably: the manifest in it is the commit log.
      await makeDirectoryDurably(join(directory, '_tributary'));
    } catch (error) {
      throw new TributaryError('config', { userMessage: `Cannot create directory ${directory}`, internalMessage: String(error), cause: error });
    }
    // One session per directory: held until close(), released if opening fails.
    return await openLocked(directory, (lock) => openSession(ctx, directory, config.validate_records, streams, lock));
  },
});

export default localFilesDestination;
export { fileName } from './file-names.js';

/** The session of `open`, on a directory whose lock it holds and releases at `close`. */
async function openSession(ctx: ConnectorContext, directory: string, validate: boolean, streams: readonly DestinationStream[], lock: DirectoryLock): Promise<DestinationSession> {
  const manifest = await readManifest(directory);
  await recoverInterruptedPublish(directory, manifest);

  // Every file this session may append to gets a committed length in the manifest before
  // it is opened: a file the manifest has no length for was not written by this destination
  // (or the manifest was lost), and cutting it back to "committed: 0" would erase it.
  let recorded = false;
  for (const stream of streams) {
    const finalPath = fileName(stream.key);
    // A new full refresh's staging file is discarded below anyway.
    const staged = stream.destinationSyncMode === 'overwrite';
    const paths = [...(staged && !stream.resuming ? [] : [staged ? join('_staging', finalPath) : finalPath]), join('_quarantine', finalPath)];
    for (const path of paths) {
      if (manifest.files[path] !== undefined) continue;
      await refuseUnrecorded(directory, path);
      manifest.files[path] = 0;
      recorded = true;
    }
  }
  if (recorded) await writeManifest(directory, manifest);

  const files = new Map<string, StreamFile>();
  for (const stream of streams) {
    const finalPath = fileName(stream.key);
    const dataPath = stream.destinationSyncMode === 'overwrite' ? join('_staging', finalPath) : finalPath;
    const quarantinePath = join('_quarantine', finalPath);
    if (stream.destinationSyncMode === 'overwrite' && !stream.resuming) {
      // A new full refresh starts its generation from scratch.
      await rm(join(directory, dataPath), { force: true });
      manifest.files[dataPath] = 0;
      if (manifest.completed) delete manifest.completed[dataPath];
    }
    files.set(
      stream.key,
      await openStreamFile({
        directory,
        stream,
        dataPath,
        quarantinePath,
        committedData: manifest.files[dataPath] ?? 0,
        windowStart: manifest.completed?.[dataPath] ?? 0,
        committedQuarantine: manifest.files[quarantinePath] ?? 0,
        quarantineWindowStart: manifest.completed?.[quarantinePath] ?? 0,
        validate,
      }),
    );
  }

  const commit = async (): Promise<void> => {
    for (const file of files.values()) {
      const lengths = await file.sync();
      manifest.files[file.dataPath] = lengths.data;
      manifest.files[file.quarantinePath] = lengths.quarantine;
    }
    await writeManifest(directory, manifest);
  };

  // Every call runs under the lock: a superseded session touches no file again.
  return {
    write: (batch) =>
      lock.run(async () => {
        const file = files.get(batch.stream);
        if (!file) throw new TributaryError('fatal', { userMessage: `Batch for unknown stream "${batch.stream}"` });
        const rejected = await file.append(batch.records);
        return rejected.length > 0 ? { rejected } : undefined;
      }),
    commit: () => lock.run(commit),
    async close({ completed }) {
      if (lock.superseded) {
        // Its files are the next session's now: only the handles are let go, nothing committed or published.
        for (const file of files.values()) await file.close();
        throw lock.supersededError();
      }
      try {
        await lock.run(() => closeFiles(completed));
      } finally {
        await lock.release();
      }
    },
  };

  async function closeFiles(completed: boolean): Promise<void> {
    await commit();
    for (const file of files.values()) {
      await file.close();
      if (file.replaysSkipped > 0) ctx.logger.info(`${file.stream.key}: skipped ${file.replaysSkipped} replayed record(s) already stored`);
      if (file.requarantined > 0) ctx.logger.info(`${file.stream.key}: ${file.requarantined} refused record(s) were replays already in the quarantine: reported again, not stored again`);
    }
    if (!completed) return;
    // Everything is checkpointed now: no line stored so far can be delivered again.
    manifest.completed = { ...(manifest.completed ?? {}) };
    for (const file of files.values()) {
      manifest.completed[file.dataPath] = manifest.files[file.dataPath] ?? 0;
      manifest.completed[file.quarantinePath] = manifest.files[file.quarantinePath] ?? 0;
    }
    await writeManifest(directory, manifest);
    for (const file of files.values()) {
      if (file.stream.destinationSyncMode !== 'overwrite') continue;
      await publish(directory, manifest, file.dataPath, fileName(file.stream.key));
    }
  }
}

/**
 * Refuses a non-empty file at `path` that the manifest holds no committed length for: this
 * destination records a file's length before it first writes to it, so such a file is
 * someone else's, or its manifest was lost. Opening it would cut it to zero bytes.
 */
async function refuseUnrecorded(directory: string, path: string): Promise<void> {
  const size = await stat(join(directory, path)).then(
    (s) => s.size,
    () => 0,
  );
  if (size === 0) return;
  throw new TributaryError('config', {
    userMessage: `${join(directory, path)} holds ${size} bytes that ${join(directory, MANIFEST_PATH)} has no committed length for: it was not written by this destination, or the manifest was lost. Move the file away (or restore the manifest); it is left as it is.`,
  });
}

/**
 * Makes a staged overwrite generation the visible one. The manifest is written first,
 * recording the move; `recoverInterruptedPublish` finishes the rename after a crash.
 */
async function publish(directory: string, manifest: Manifest, stagingPath: string, finalPath: string): Promise<void> {
  manifest.files[finalPath] = manifest.files[stagingPath] ?? 0;
  manifest.publishing = { ...(manifest.publishing ?? {}), [stagingPath]: finalPath };
  delete manifest.files[stagingPath];
  await writeManifest(directory, manifest);
  await rename(join(directory, stagingPath), join(directory, finalPath));
  // Durable before the manifest forgets the move: until then, an open finishes it again.
  await fsyncRename(join(directory, stagingPath), join(directory, finalPath));
  delete manifest.publishing[stagingPath];
  await writeManifest(directory, manifest);
}

async function recoverInterruptedPublish(directory: string, manifest: Manifest): Promise<void> {
  const moves = Object.entries(manifest.publishing ?? {});
  if (moves.length === 0) return;
  for (const [stagingPath, finalPath] of moves) {
    const staged = await access(join(directory, stagingPath)).then(
      () => true,
      () => false,
    );
    if (staged) await rename(join(directory, stagingPath), join(directory, finalPath));
    // Also when the crashed run renamed it: it may have died before making the rename durable.
    await fsyncRename(join(directory, stagingPath), join(directory, finalPath));
    delete manifest.publishing?.[stagingPath];
  }
  await writeManifest(directory, manifest);
}
