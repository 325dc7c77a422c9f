import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { compileSchema, describeSchemaErrors, fsyncDirectory, makeDirectoryDurably, stringifyJson, TributaryError, type DestinationStream, type RecordData, type RejectedRecord } from '@tributary/core';

/**
 * One stream's JSON lines file plus its quarantine file.
 *
 * Replays: for keyed streams, a record is skipped when it is a line already stored that the
 * runtime can be delivering again, or the key's current version read again unchanged:
 * - the replay window: lines stored since the stream's last completed sync (the runtime
 *   replays records after its last saved checkpoint, and a completed sync saved its last
 *   one). Per key they are matched in order: a record equal to a window line after the last
 *   one matched is that line replayed;
 * - the key's last line: a record equal to it changes nothing.
 * Anything else is appended, so a change back to an older version (A → B → A) after a
 * completed sync is stored and the last line of a key stays its current version. Inside one
 * window, a record equal to a later line of its key that was not yet matched counts as a
 * replay of it. Unkeyed streams are plain append.
 *
 * Quarantine replays, keyed streams or not: a refused record is still returned as rejected
 * (the runtime must learn of every refusal), but it is not stored again when it equals the
 * record of a quarantine line in that file's replay window (the lines since the stream's
 * last completed sync, as above) that no replay has matched yet. The record itself is what
 * identifies it (a refused record may have no key), so each such line stands for one
 * delivery: the same refused record delivered twice before a crash is stored twice and
 * matched twice. A refused record equal to an unmatched window line is taken for that line
 * replayed even when it is a new delivery; it is then reported, not stored again.
 */
export interface StreamFile {
  readonly stream: DestinationStream;
  /** Relative path of the file records go to (the staging file for overwrite streams). */
  readonly dataPath: string;
  readonly quarantinePath: string;
  /** Appends accepted records, quarantines the rest; returns the rejected ones. */
  append(records: RecordData[]): Promise<RejectedRecord[]>;
  /** fsyncs both files; returns their lengths (bytes now committed). */
  sync(): Promise<{ data: number; quarantine: number }>;
  close(): Promise<void>;
  /** Records skipped as exact replays of stored ones. */
  readonly replaysSkipped: number;
  /** Refused records not stored again, being replays of quarantine lines (returned as rejected all the same). */
  readonly requarantined: number;
}

export interface StreamFileOptions {
  directory: string;
  stream: DestinationStream;
  dataPath: string;
  quarantinePath: string;
  /** Committed lengths from the manifest; longer files are cut back to them. */
  committedData: number;
  /** Byte offset in the data file where the replay window starts (its length at the stream's last completed sync). */
  windowStart: number;
  committedQuarantine: number;
  /** Byte offset in the quarantine file where its replay window starts (as `windowStart`). */
  quarantineWindowStart: number;
  validate: boolean;
}

export async function openStreamFile(options: StreamFileOptions): Promise<StreamFile> {
  const { stream } = options;
  const data = await openAt(options.directory, options.dataPath, options.committedData);
  const quarantine = await openAt(options.directory, options.quarantinePath, options.committedQuarantine);
  const keyPaths = stream.primaryKey;
  const keyed = keyPaths.length > 0;
  const index = new Map<string, string>();
  const window = new Map<string, WindowLines>();
  if (keyed) await loadIndex(join(options.directory, options.dataPath), keyPaths, options.windowStart, index, window);
  // Identity → quarantine lines of the window not yet matched by a replay.
  const quarantineWindow = await loadQuarantineWindow(quarantine.path, options.quarantineWindowStart);
  const validate = options.validate ? compileSchema(stream.jsonSchema) : undefined;
  let replaysSkipped = 0;
  let requarantined = 0;

  return {
    stream,
    dataPath: options.dataPath,
    quarantinePath: options.quarantinePath,
    get replaysSkipped() {
      return replaysSkipped;
    },
    get requarantined() {
      return requarantined;
    },
    async append(records) {
      let lines = '';
      let quarantined = '';
      const rejected: RejectedRecord[] = [];
      // This batch's lines (key, hash) in order, and its last line per key: they enter the
      // index and the window only once the batch is written, so a retry of a failed write
      // does not take its own records for replays.
      const latest = new Map<string, string>();
      const written: Array<[string, string]> = [];
      // How far this batch's replays matched each key's window lines: applied to the window
      // only once the batch is written, so a retry of a failed write matches them again.
      const matched = new Map<string, number>();
      // Quarantine lines this batch replays, per identity: taken from the window only once the
      // batch is written, for the same reason.
      const replayed = new Map<string, number>();
      // All of the batch or none of it: a batch that fails leaves both files as they were,
      // so a retry of it (or the commit of a failed sync) stores none of its lines twice.
      const dataBefore = data.size;
      const quarantineBefore = quarantine.size;
      try {
        for (let i = 0; i < records.length; i++) {
          const record = records[i];
          const reason = problemWith(record, keyPaths, validate);
          if (reason !== undefined) {
            rejected.push({ index: i, reason });
            const identity = quarantineIdentity(record);
            const taken = replayed.get(identity) ?? 0;
            if (taken < (quarantineWindow.get(identity) ?? 0)) {
              replayed.set(identity, taken + 1);
              continue;
            }
            const entry = stringifyJson({ stream: stream.key, reason, record, quarantined_at: new Date().toISOString() })!;
            if (quarantined.length + entry.length >= WRITE_OUT_AT) quarantined = await writeOut(quarantine, quarantined);
            quarantined += entry + '\n';
            continue;
          }
          const line = stringifyJson(record)!;
          if (keyed) {
            const key = keyOf(record as RecordData, keyPaths);
            const hash = hashLine(line);
            if (isReplay(window.get(key), matched, key, hash) || (latest.get(key) ?? index.get(key)) === hash) {
              replaysSkipped++;
              continue;
            }
            latest.set(key, hash);
            written.push([key, hash]);
          }
          // One comparison per record: the batch's text is written out before it outgrows a string.
          if (lines.length + line.length >= WRITE_OUT_AT) lines = await writeOut(data, lines);
          lines += line + '\n';
        }
        await writeOut(data, lines);
        await writeOut(quarantine, quarantined);
      } catch (error) {
        if (data.size !== dataBefore) await cutBack(data, dataBefore);
        if (quarantine.size !== quarantineBefore) await cutBack(quarantine, quarantineBefore);
        throw error;
      }
      // Stored now: the replays matched, each key's last line, and in the window, but never
      // matched as a replay within this session.
      for (const [key, at] of matched) window.get(key)!.matched = at;
      for (const [key, hash] of written) {
        index.set(key, hash);
        const lines = window.get(key) ?? { hashes: [], matched: 0 };
        lines.hashes.push(hash);
        lines.matched = lines.hashes.length;
        window.set(key, lines);
      }
      for (const [identity, taken] of replayed) {
        const left = (quarantineWindow.get(identity) ?? 0) - taken;
        if (left > 0) quarantineWindow.set(identity, left);
        else quarantineWindow.delete(identity);
        requarantined += taken;
      }
      return rejected;
    },
    async sync() {
      for (const file of [data, quarantine]) if (file.broken) throw file.broken;
      await data.handle.sync();
      await quarantine.handle.sync();
      return { data: data.size, quarantine: quarantine.size };
    },
    async close() {
      await data.handle.close();
      await quarantine.handle.close();
    },
  };
}

/** An open data or quarantine file: `size` is the length its appends reached, all whole lines. */
interface OpenFile {
  readonly path: string;
  readonly handle: FileHandle;
  size: number;
  /** Set when a failed append could not be cut back: `size` is no longer the file's length. */
  broken?: TributaryError;
}

/**
 * How long (UTF-16 code units) a batch's pending lines may grow before they are written out.
 * Each record's line fits in a string, but a batch's lines together need not (the runtime
 * sizes batches from a sample of their records: two lines of 300 MB each came in one batch
 * and failed it, and every replay of it, as "longer than the longest string").
 */
const WRITE_OUT_AT = 64 * 1024 * 1024;

/** Appends `text` (when there is any) with `appendAll`; returns the empty text to go on with. */
async function writeOut(file: OpenFile, text: string): Promise<string> {
  if (text) await appendAll(file, text);
  return '';
}

/**
 * Appends all of `text`, or leaves the file at `file.size`. One `write` may store only part
 * of it (a full disk, a file size limit: the call then reports fewer bytes, no error), so
 * it is continued until every byte is written or a write fails; a failure cuts the file
 * back, so no partial line stays behind to be committed with the next batch.
 */
async function appendAll(file: OpenFile, text: string): Promise<void> {
  if (file.broken) throw file.broken;
  const bytes = Buffer.from(text, 'utf8');
  let written = 0;
  try {
    while (written < bytes.length) {
      const { bytesWritten } = await file.handle.write(bytes, written, bytes.length - written);
      if (bytesWritten === 0) throw new Error(`writing ${file.path} stored no bytes`);
      written += bytesWritten;
    }
  } catch (error) {
    if (written > 0) await cutBack(file, file.size);
    throw error;
  }
  file.size += written;
}

/** Truncates the file to `size` (a batch that failed after this file was appended to). */
async function cutBack(file: OpenFile, size: number): Promise<void> {
  try {
    await file.handle.truncate(size);
    file.size = size;
  } catch (error) {
    file.broken = new TributaryError('fatal', {
      userMessage: `${file.path} could not be cut back to ${size} bytes after a failed write; reopen the directory (it is cut back to its committed length then)`,
      cause: error,
    });
  }
}

/**
 * Opens a data or quarantine file for appending, cut back to its committed length, creating
 * it (and its directory) if missing. A file created here has its directory entry fsynced
 * before this resolves, so before any commit can record a length for it: the manifest,
 * fsynced at the commit, must never name committed bytes of a file a power loss could take
 * away with its entry. The entry of a missing directory is made durable the same way.
 */
async function openAt(directory: string, relative: string, committed: number): Promise<OpenFile> {
  const path = join(directory, relative);
  await makeDirectoryDurably(dirname(path));
  const existing = await stat(path).then(
    (s) => s.size,
    () => undefined,
  );
  const size = existing ?? 0;
  if (size < committed) {
    throw new TributaryError('fatal', {
      userMessage: `${path} is shorter (${size} bytes) than its committed length (${committed} bytes): committed data was removed or the manifest is wrong`,
    });
  }
  const handle = await open(path, 'a+');
  try {
    if (existing === undefined) await fsyncDirectory(dirname(path));
    if (size > committed) await handle.truncate(committed); // bytes never acknowledged: the runtime replays them
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
  return { path, handle, size: committed };
}

function problemWith(record: unknown, keyPaths: string[][], validate: ReturnType<typeof compileSchema> | undefined): string | undefined {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return 'record is not a JSON object';
  for (const path of keyPaths) {
    const value = valueAt(record as RecordData, path);
    if (value === undefined || value === null) return `primary key field ${path.join('.')} is missing`;
  }
  if (validate && !validate(record)) return `does not match the stream schema: ${describeSchemaErrors(validate.errors, 'record').join('; ')}`;
  return undefined;
}

function valueAt(record: RecordData, path: string[]): unknown {
  let value: unknown = record;
  for (const part of path) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
  return value;
}

function keyOf(record: RecordData, keyPaths: string[][]): string {
  return keyPaths.length === 1 ? stringifyJson(valueAt(record, keyPaths[0]!))! : stringifyJson(keyPaths.map((p) => valueAt(record, p)))!;
}

function hashLine(line: string): string {
  return createHash('sha1').update(line).digest('base64');
}

/** What makes two refused records the same one: their JSON, as a quarantine line stores it. */
function quarantineIdentity(record: unknown): string {
  return hashLine(stringifyJson(record) ?? 'undefined');
}

/**
 * Counts the quarantine lines from `windowStart` on per identity (of their `record`). The
 * file was cut back to its committed length first, so these are whole, committed lines.
 */
async function loadQuarantineWindow(path: string, windowStart: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8', start: windowStart }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    const identity = quarantineIdentity((JSON.parse(line) as { record?: unknown }).record);
    counts.set(identity, (counts.get(identity) ?? 0) + 1);
  }
  return counts;
}

/** A key's lines in the replay window, in file order, and how many of them a replay has matched. */
interface WindowLines {
  hashes: string[];
  matched: number;
}

/** Whether `hash` is a window line of `key` not yet matched (it is then matched in `matched`, with every line before it). */
function isReplay(lines: WindowLines | undefined, matched: Map<string, number>, key: string, hash: string): boolean {
  if (lines === undefined) return false;
  const at = lines.hashes.indexOf(hash, matched.get(key) ?? lines.matched);
  if (at === -1) return false;
  matched.set(key, at + 1);
  return true;
}

/** Indexes the last line of every key in the file (later lines replace earlier ones), and the lines from `windowStart` on per key. */
async function loadIndex(path: string, keyPaths: string[][], windowStart: number, index: Map<string, string>, window: Map<string, WindowLines>): Promise<void> {
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (!exists) return;
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let offset = 0;
  for await (const line of lines) {
    const at = offset;
    offset += Buffer.byteLength(line) + 1;
    if (!line) continue;
    const key = keyOf(JSON.parse(line) as RecordData, keyPaths);
    const hash = hashLine(line);
    index.set(key, hash);
    if (at < windowStart) continue;
    const inWindow = window.get(key) ?? { hashes: [], matched: 0 };
    inWindow.hashes.push(hash);
    window.set(key, inWindow);
  }
}
