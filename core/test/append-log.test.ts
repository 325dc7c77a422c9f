import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openAppendLog } from '../src/fs/append-log.js';

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
