/**
 * Where the lake's objects live: a local directory or an S3 bucket. Keys are `/`-separated
 * paths relative to the lake root. Both implementations give the commit protocol the two
 * primitives it needs:
 * - `put` / `putFile` replace an object atomically (a reader sees the old or the new bytes,
 *   never a part), and are durable once they resolve;
 * - `createIfAbsent` creates an object only if no object has that key, atomically (a
 *   conditional write: `If-None-Match: *` on S3, `link(2)` locally). The commit log is a
 *   sequence of such creations, so two writers can never both commit the same sequence
 *   number.
 */
export interface LakeStore {
  /** `file:///…` or `s3://bucket/prefix`, for messages. */
  readonly location: string;
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Publishes a finished local file under `key` (moved when local, uploaded to S3). */
  putFile(key: string, localPath: string): Promise<void>;
  /**
   * False when an object with this key already exists, created by another call. True also
   * when a retried request of this call finds the object its own earlier attempt created
   * (it holds exactly `body`): callers must therefore never create one key with the same
   * bytes from two calls (log entries differ by session and time).
   */
  createIfAbsent(key: string, body: Uint8Array | string): Promise<boolean>;
  /** Undefined when absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Keys under `prefix`, sorted, strictly after `startAfter` when given. */
  list(prefix: string, startAfter?: string): Promise<string[]>;
  /** Like `list`, with each object's last-modified time (epoch ms, on this machine's clock). */
  listDetailed(prefix: string): Promise<Array<{ key: string; modifiedMs: number }>>;
  delete(keys: readonly string[]): Promise<void>;
  /** A local path DuckDB can read for `key`: the file itself locally, a downloaded copy in `cacheDir` on S3. */
  localCopy(key: string, cacheDir: string): Promise<string>;
  /** Proves the target is reachable and writable (throws a `config`/`auth` TributaryError). */
  check(): Promise<void>;
  close(): void;
}
