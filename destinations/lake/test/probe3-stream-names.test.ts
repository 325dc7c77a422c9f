import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { streamDir } from '../src/layout.js';
import { compactLake } from '../src/maintenance.js';
import { queryLake } from '../src/reader.js';
import { duckQuery, keyedStream, writeSession } from './helpers.js';

let root: string;
beforeAll(async () => (root = await mkdtemp(join(tmpdir(), 'tributary-lake-probe3-names-'))));
afterAll(() => rm(root, { recursive: true, force: true }));

const eventTime = { event_time: { type: 'string', format: 'date-time' } };
/** `.` and `..` name the directory itself and its parent; `%2E` is the encoded form they must not collide with. */
const NAMES = ['.', '..', '%2E', '...', 'plain'];

it('streams named `.` and `..` stay inside data/ (and the registry), each in its own directory, read back by DuckDB', async () => {
  // The lake sits two levels down, so a stream escaping `data/` (or the lake) shows as a file elsewhere under `root`.
  const lake = join(root, 'outer', 'lake');
  const config = { path: lake };
  for (const [i, name] of NAMES.entries()) {
    const rejected = await writeSession(config, keyedStream(name, eventTime), [[{ id: i, tenant_id: 't', customer_id: `c${i}`, event_time: '2024-01-01T00:00:00Z' }]]);
    expect(rejected).toEqual([]);
  }

  const files = (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'));
  // Nothing outside data/ but the lake's own metadata, and nothing outside the lake.
  expect(files.filter((f) => !f.startsWith('outer/lake/data/') && !f.startsWith('outer/lake/_tributary/'))).toEqual([]);
  expect((await readdir(lake)).sort()).toEqual(['_tributary', 'data']);
  const parquet = files.filter((f) => f.endsWith('.parquet'));
  expect(parquet).toHaveLength(NAMES.length);
  for (const name of NAMES) {
    const dir = `outer/lake/data/${streamDir(name)}/`;
    // Exactly one file per stream in its own directory (a shared or escaping directory would show 0 or 2).
    expect(parquet.filter((f) => f.startsWith(dir)), name).toHaveLength(1);
    const rows = await duckQuery(`SELECT stream, id, customer_id FROM read_parquet('${join(lake, 'data', streamDir(name)).replaceAll("'", "''")}/**/*.parquet')`);
    expect(rows, name).toEqual([{ stream: name, id: NAMES.indexOf(name), customer_id: `c${NAMES.indexOf(name)}` }]);
    const registry = JSON.parse(await readFile(join(lake, '_tributary', 'schemas', `${streamDir(name)}.json`), 'utf8')) as { stream: string };
    expect(registry.stream).toBe(name);
  }

  // The lake's own reader: one row per stream, under its own name.
  const read = await queryLake(config, 'SELECT stream, id FROM events ORDER BY id');
  expect(read).toEqual(NAMES.map((stream, id) => ({ stream, id })));

  // Compaction merges `..`'s two files into one in the same directory (it checks the merged path is the stream's).
  await writeSession(config, keyedStream('..', eventTime), [[{ id: 10, tenant_id: 't', customer_id: 'c10', event_time: '2024-01-01T01:00:00Z' }]]);
  const compacted = await compactLake(config, { stream: '..', minFiles: 2, graceMs: 0 });
  expect([compacted.filesBefore, compacted.filesAfter, compacted.rows]).toEqual([2, 1, 2]);
  // A second run deletes the two merged-away files (no grace period).
  expect((await compactLake(config, { stream: '..', graceMs: 0 })).filesDeleted).toBe(2);
  const after = await readdir(root, { recursive: true });
  expect(after.filter((f) => f.endsWith('.parquet') && !f.startsWith(join('outer', 'lake', 'data')))).toEqual([]);
  expect(await duckQuery(`SELECT stream, id FROM read_parquet('${join(lake, 'data', '%2E%2E')}/**/*.parquet') ORDER BY id`)).toEqual([{ stream: '..', id: 1 }, { stream: '..', id: 10 }]);
});

it('stream directory names decode back to the stream name and never collide', () => {
  const names = ['.', '..', '...', '%2E', '%2E%2E', '%252E', '.a', 'a.', 'a/b', 'a%2Fb', 'ä', ' ', '*'];
  const dirs = names.map(streamDir);
  expect(new Set(dirs).size).toBe(names.length);
  for (const [i, dir] of dirs.entries()) {
    expect(decodeURIComponent(dir)).toBe(names[i]);
    expect(dir === '.' || dir === '..' || dir.includes('/')).toBe(false);
  }
  expect(() => streamDir('')).toThrow(/empty name/);
});

it('a stream with an empty name is refused when the session opens (its partitions went straight into data/, beside the streams\' directories)', async () => {
  const lake = join(root, 'empty-name');
  await expect(writeSession({ path: lake }, keyedStream('', eventTime), [[{ id: 1, tenant_id: 't', customer_id: 'c', event_time: '2024-01-01T00:00:00Z' }]])).rejects.toMatchObject({
    kind: 'config',
    userMessage: expect.stringMatching(/empty name/),
  });
  expect((await readdir(lake, { recursive: true })).filter((f) => f.startsWith('data'))).toEqual([]);
});
