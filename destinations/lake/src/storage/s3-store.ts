import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import type * as S3 from '@aws-sdk/client-s3';
import { TributaryError } from '@tributary/core';
import type { LakeStore } from './store.js';

// Loaded on first use, as CommonJS: local lakes never load the SDK, and the SDK's ESM build
// (picked under a `module` resolve condition) uses extensionless imports Node cannot follow.
let sdk: typeof S3 | undefined;
function loadSdk(): typeof S3 {
  sdk ??= createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof S3;
  return sdk;
}

export interface S3StoreOptions {
  bucket: string;
  prefix?: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /**
   * Files larger than this go up in parts of (at least) this size; smaller ones in one
   * PutObject. Default 64 MiB. S3 takes at most 5 GB in one PUT, parts of at least 5 MiB
   * (but the last), and 10,000 parts; Node reads no file over 2 GiB into one buffer.
   */
  partBytes?: number;
}

const DEFAULT_PART_BYTES = 64 * 1024 * 1024;
/**
 * Retries of a conditional create answered 409 (a conflicting write in flight), with a
 * backoff doubling from CONFLICT_BACKOFF_MS up to 2 s: about 25 s in all, then the 409 is a
 * transient error (the caller cannot tell whether its own write is the one in flight).
 */
const CONFLICT_RETRIES = 16;
const CONFLICT_BACKOFF_MS = 50;
const MAX_PARTS = 10_000;
/**
 * Attempts at a GET whose answer broke off in its body. The SDK retries a request that
 * fails before its answer's headers, but hands a GetObject's body over as a stream it does
 * not read: a connection dropped mid-body failed the read at once, so one such drop among
 * the log entries a session reads at open failed the whole sync (the runtime does not retry
 * opening), and one during a reader's download failed its query.
 */
const BODY_ATTEMPTS = 3;
/** Error codes of a connection lost while a body was read (Node gives `aborted` ECONNRESET): worth another GET. */
const BODY_NETWORK_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT']);
const bodyBrokeOff = (error: unknown): boolean => BODY_NETWORK_CODES.has(String((error as { code?: unknown } | null)?.code));

/**
 * S3 error codes that no retry can fix although S3 answers them with HTTP 400 or 3xx: the
 * credentials expired or are not valid (the user must renew them), or the request went to
 * the wrong region or endpoint. Retried as transient, a sync spent its retries on them and
 * then failed as a transient error instead of asking the user to act.
 */
const AUTH_CODES = new Set(['ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied']);
const CONFIG_CODES = new Set(['AuthorizationHeaderMalformed', 'PermanentRedirect', 'IllegalLocationConstraintException', 'InvalidBucketName']);

/** Classifies an S3 failure: throttling and 5xx are retried by the runtime, auth and missing buckets are config errors. */
export function toS3Error(error: unknown, what: string): TributaryError {
  if (TributaryError.is(error)) return error;
  const status = error instanceof loadSdk().S3ServiceException ? error.$metadata.httpStatusCode : undefined;
  const name = error instanceof Error ? error.name : 'Error';
  const internalMessage = `${what}: ${name} ${error instanceof Error ? error.message : String(error)}`;
  if (name === 'SlowDown' || status === 429 || status === 503) return new TributaryError('rate_limited', { userMessage: `S3 asked to slow down (${what})`, internalMessage, cause: error });
  if (status === 403 || AUTH_CODES.has(name)) {
    return new TributaryError('auth', { userMessage: `S3 refused the credentials (${what}): check access_key_id / secret_access_key / session_token and the bucket policy`, internalMessage, cause: error });
  }
  // No credentials configured and none found by the SDK's chain (environment, profile, instance role).
  if (name === 'CredentialsProviderError') {
    return new TributaryError('auth', { userMessage: `No S3 credentials (${what}): set access_key_id / secret_access_key, or provide them to the AWS SDK (environment, profile, instance role)`, internalMessage, cause: error });
  }
  if (name === 'NoSuchBucket') return new TributaryError('config', { userMessage: `The S3 bucket does not exist (${what}): create it or fix \`bucket\``, internalMessage, cause: error });
  if (CONFIG_CODES.has(name) || (status !== undefined && status >= 300 && status < 400)) {
    return new TributaryError('config', { userMessage: `S3 refused the request as addressed (${what}): check \`bucket\`, \`region\` and \`endpoint\``, internalMessage, cause: error });
  }
  return new TributaryError('transient', { userMessage: `S3 request failed (${what})`, internalMessage, cause: error });
}

/** The lake in an S3 bucket: PutObject is atomic per object; the commit log uses `If-None-Match: *`. */
export function createS3Store(options: S3StoreOptions): LakeStore {
  const {
    AbortMultipartUploadCommand,
    CompleteMultipartUploadCommand,
    CreateMultipartUploadCommand,
    DeleteObjectsCommand,
    GetObjectCommand,
    HeadBucketCommand,
    ListObjectsV2Command,
    PutObjectCommand,
    S3Client,
    S3ServiceException,
    UploadPartCommand,
  } = loadSdk();
  const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
  const prefix = options.prefix ? options.prefix.replace(/\/?$/, '/').replace(/^\//, '') : '';
  const config: S3.S3ClientConfig = {
    region: options.region ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle ?? false,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.accessKeyId && options.secretAccessKey
      ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey, ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}) } }
      : {}),
  };
  const client = new S3Client(config);
  const Bucket = options.bucket;
  const full = (key: string): string => prefix + key;

  const call = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw toS3Error(error, what);
    }
  };

  const get = async (key: string): Promise<Uint8Array | undefined> => {
    for (let attempt = 1; ; attempt++) {
      let out: S3.GetObjectCommandOutput;
      try {
        out = await client.send(new GetObjectCommand({ Bucket, Key: full(key) }));
      } catch (error) {
        if (error instanceof Error && error.name === 'NoSuchKey') return undefined;
        throw toS3Error(error, `get ${key}`);
      }
      try {
        return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
      } catch (error) {
        // The body broke off (see BODY_ATTEMPTS): a GET is safe to send again.
        if (!bodyBrokeOff(error) || attempt >= BODY_ATTEMPTS) throw toS3Error(error, `get ${key}`);
      }
    }
  };

  /**
   * A multipart upload, one part in memory at a time. The object appears whole when the
   * upload completes (never in part); a failed upload is aborted, so its parts are not kept
   * (and billed) by S3.
   */
  const uploadInParts = async (key: string, localPath: string, size: number): Promise<void> => {
    const part = Math.max(partBytes, Math.ceil(size / MAX_PARTS));
    const Key = full(key);
    const { UploadId } = await call(`start upload ${key}`, () => client.send(new CreateMultipartUploadCommand({ Bucket, Key })));
    if (!UploadId) throw new TributaryError('transient', { userMessage: `S3 started no multipart upload for ${key}` });
    const handle = await open(localPath, 'r');
    try {
      const parts: Array<{ ETag: string; PartNumber: number }> = [];
      for (let number = 1, offset = 0; offset < size; number++, offset += part) {
        const body = Buffer.alloc(Math.min(part, size - offset));
        for (let read = 0; read < body.length; ) {
          const { bytesRead } = await handle.read(body, read, body.length - read, offset + read);
          if (bytesRead === 0) throw new TributaryError('fatal', { userMessage: `${localPath} ended before its ${size} bytes were read` });
          read += bytesRead;
        }
        const { ETag } = await call(`upload part ${number} of ${key}`, () => client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: number, Body: body })));
        if (!ETag) throw new TributaryError('transient', { userMessage: `S3 answered part ${number} of ${key} without an ETag` });
        parts.push({ ETag, PartNumber: number });
      }
      await call(`finish upload ${key}`, () => client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } })));
    } catch (error) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw error;
    } finally {
      await handle.close();
    }
  };

  return {
    location: `s3://${Bucket}/${prefix}`,
    async put(key, body) {
      await call(`put ${key}`, () => client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body })));
    },
    async putFile(key, localPath) {
      const size = (await stat(localPath)).size;
      if (size > partBytes) return uploadInParts(key, localPath, size);
      const body = await readFile(localPath);
      await call(`upload ${key}`, () => client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body })));
    },
    async createIfAbsent(key, body) {
      for (let conflicts = 0; ; conflicts++) {
        try {
          await client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body, IfNoneMatch: '*' }));
          return true;
        } catch (error) {
          const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
          // 409: another conditional write to this key is in flight, and S3 asks for a retry.
          // That write can be an earlier attempt of this very call (the SDK retried it after a
          // timeout) that lands after the 409: the key was then still absent, and answering
          // "lost race" made the caller re-read the log, find its own entry as another
          // writer's, and act on it as such (a compaction refused its own inputs as removed
          // by a concurrent commit, reported failure and dropped its trash record, so an
          // orphan sweep deleted the removed files under readers on the older snapshot).
          // Retried until the write in flight is settled: then 412 or success says who won.
          if (status === 409 && conflicts < CONFLICT_RETRIES) {
            await new Promise((r) => setTimeout(r, Math.min(CONFLICT_BACKOFF_MS * 2 ** conflicts, 2_000)));
            continue;
          }
          // 412: the key exists.
          if (status !== 412) throw toS3Error(error, `create ${key}`);
          // The SDK retries a PUT whose answer was lost (reset, timeout, 5xx); when the first
          // attempt was stored, the retry is refused by that very object. The object holding
          // exactly `body` means this call created it: reported as a lost race, the caller
          // would commit its log entry a second time under the next number.
          const existing = await get(key);
          return existing !== undefined && Buffer.from(existing).equals(typeof body === 'string' ? Buffer.from(body) : body);
        }
      }
    },
    get,
    async list(listPrefix, startAfter) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await call(`list ${listPrefix}`, () =>
          client.send(
            new ListObjectsV2Command({
              Bucket,
              Prefix: full(listPrefix),
              ...(token ? { ContinuationToken: token } : startAfter !== undefined ? { StartAfter: full(startAfter) } : {}),
            }),
          ),
        );
        for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key.slice(prefix.length));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys.sort();
    },
    async listDetailed(listPrefix) {
      const out: Array<{ key: string; modifiedMs: number }> = [];
      let token: string | undefined;
      do {
        const page = await call(`list ${listPrefix}`, () => client.send(new ListObjectsV2Command({ Bucket, Prefix: full(listPrefix), ...(token ? { ContinuationToken: token } : {}) })));
        // LastModified is the server's time; callers compare it with this machine's clock
        // (compaction deletes unnamed files an hour old). The SDK keeps the offset between
        // the two (from each answer's Date header) and signs with it, so S3 works with a
        // clock hours off; uncorrected, such a clock ahead made a file a live session had
        // just published look hours old, and compaction deleted it before its log entry.
        // Offsets under a minute are left alone (the Date header has whole seconds).
        const offset = Number(client.config.systemClockOffset ?? 0);
        const skew = Math.abs(offset) >= 60_000 ? offset : 0;
        for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key.slice(prefix.length), modifiedMs: o.LastModified ? o.LastModified.getTime() - skew : Date.now() });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },
    async delete(keys) {
      for (let i = 0; i < keys.length; i += 1000) {
        const slice = keys.slice(i, i + 1000);
        const out = await call('delete', () => client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: slice.map((k) => ({ Key: full(k) })), Quiet: true } })));
        // DeleteObjects answers 200 even when keys failed: each failure is an entry of Errors.
        const failed = out.Errors ?? [];
        if (failed.length > 0) {
          const first = failed[0]!;
          const cause = Object.assign(new Error(`${first.Message ?? 'delete failed'} (${failed.length} of ${slice.length} keys, first: ${first.Key ?? '?'})`), { name: first.Code ?? 'Error' });
          throw toS3Error(cause, `delete ${failed.map((f) => f.Key).join(', ').slice(0, 300)}`);
        }
      }
    },
    async localCopy(key, cacheDir) {
      const path = join(cacheDir, ...key.split('/'));
      await mkdir(join(path, '..'), { recursive: true });
      for (let attempt = 1; ; attempt++) {
        const out = await call(`download ${key}`, () => client.send(new GetObjectCommand({ Bucket, Key: full(key) })));
        try {
          // Each attempt writes the file from its start.
          await pipeline(out.Body as Readable, createWriteStream(path));
          return path;
        } catch (error) {
          // The body broke off (see BODY_ATTEMPTS); a local write error (a full disk) is no S3 failure and is thrown as it is.
          if (!bodyBrokeOff(error)) throw error;
          if (attempt >= BODY_ATTEMPTS) throw toS3Error(error, `download ${key}`);
        }
      }
    },
    async check() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (error) {
        const e = toS3Error(error, `head bucket ${Bucket}`);
        // Refused credentials stay auth errors; throttling, 5xx and dropped connections stay
        // retryable (the bucket may be fine): only the rest says the configuration is wrong.
        if (e.kind === 'auth') throw e;
        // HeadBucket answers have no body, so no error code: a 4xx (a bare 404 for a missing
        // bucket, 400 for a token or region S3 refuses) is the configuration's fault.
        const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
        if (e.retryable && (status === undefined || status >= 500 || status === 429 || status === 408)) {
          throw new TributaryError(e.kind, { userMessage: `S3 bucket "${Bucket}"${options.endpoint ? ` at ${options.endpoint}` : ''} could not be reached: ${e.userMessage}; if this persists, check endpoint and region`, internalMessage: e.internalMessage ?? e.userMessage, cause: error });
        }
        throw new TributaryError('config', { userMessage: `Cannot use S3 bucket "${Bucket}"${options.endpoint ? ` at ${options.endpoint}` : ''}: check bucket, region, endpoint and credentials`, internalMessage: e.internalMessage ?? e.userMessage, cause: error });
      }
    },
    close() {
      client.destroy();
    },
  };
}
