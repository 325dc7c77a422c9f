import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { openAppendLog } from '../src/fs/append-log.js';

/**
 * While `shortWrites` is set, every write to an opened file takes only the first half of its
 * bytes. `synced` collects the path of every file or directory fsynced.
 */
const fs = vi.hoisted(() => ({ shortWrites: false, synced: [] as string[] }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: async (...args: Parameters<typeof actual.open>) => {
      const handle = await actual.open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        await sync();
        fs.synced.push(String(args[0]));
      };
      const write = handle.write.bind(handle) as (data: Buffer, offset?: number, length?: number) => Promise<{ bytesWritten: number }>;
      (handle as unknown as { write: unknown }).write = (data: string | Buffer, offset?: number, length?: number) => {
        if (!fs.shortWrites) return (write as (...a: unknown[]) => Promise<unknown>)(data, offset, length);
        const bytes = typeof data === 'string' ? Buffer.from(data) : data.subarray(offset ?? 0, (offset ?? 0) + (length ?? data.length - (offset ?? 0)));
        return write(bytes, 0, Math.ceil(bytes.length / 2));
      };
      return handle;
    },
  };
});

let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'tributary-append-log-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const linesOf = async (path: string): Promise<string[]> => (await readFile(path, 'utf8')).split('\n').filter(Boolean);

it('a flush writes every line appended before it, in order, after what the file held', async () => {
  const path = join(dir, 'audit.jsonl');
  await writeFile(path, 'earlier\n');
  const log = openAppendLog(path);
  log.append('{"n":1}');
  log.append('{"n":2}\n');
  await log.flush();
  expect(await linesOf(path)).toEqual(['earlier', '{"n":1}', '{"n":2}']);
  // More than one background write (1M characters each) between two flushes.
  const many = Array.from({ length: 40_000 }, (_, i) => JSON.stringify({ n: i, pad: 'x'.repeat(60) }));
  for (const line of many) log.append(line);
  await log.flush();
  log.append('last');
  await log.close();
  expect(await linesOf(path)).toEqual(['earlier', '{"n":1}', '{"n":2}', ...many, 'last']);
});

it('a file that cannot be written fails the flush (and the close), instead of losing lines silently', async () => {
  const log = openAppendLog(join(dir, 'missing', 'audit.jsonl'));
  log.append('line');
  await expect(log.flush()).rejects.toMatchObject({ code: 'ENOENT' });
  await expect(log.close()).rejects.toMatchObject({ code: 'ENOENT' });
});

it('a write the file system takes only in part is continued, not acknowledged as whole', async () => {
  const path = join(dir, 'short.jsonl');
  const log = openAppendLog(path);
  fs.shortWrites = true;
  try {
    log.append('{"n":1}');
    log.append('{"n":2}');
    await log.flush();
    expect(await linesOf(path)).toEqual(['{"n":1}', '{"n":2}']);
  } finally {
    fs.shortWrites = false;
    await log.close();
  }
});

it('the first flush also makes the directory entry of a file it created durable', async () => {
  const sub = join(dir, 'fresh');
  await mkdir(sub);
  const path = join(sub, 'audit.jsonl');
  fs.synced = [];
  const log = openAppendLog(path);
  log.append('{"n":1}');
  await log.flush();
  expect(fs.synced).toContain(path);
  expect(fs.synced).toContain(sub);
  await log.close();
});
