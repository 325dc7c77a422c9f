/**
 * `tributary state show` of a connection without state (a new connection, or one just reset)
 * is a normal condition, not a failure: it prints the empty list of STATE messages (`[]`),
 * says on stderr that the next sync starts from the beginning, and exits 0 — as `state reset`
 * of such a connection does ("nothing to reset", exit 0). Before, it exited 1, so a script
 * that runs `state show` before a connection's first sync failed.
 *
 * The CLI runs as a child process (the built `bin/tributary.js`) with the sample source and
 * the local-files destination, against a file state store.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));
const SOURCE_CONFIG = { seed: 5, counts: { companies: 2, contacts: 3, deals: 1, activities: 2 }, checkpoint_every: 1 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-state-show-'));
  await writeFile(join(dir, 'source.json'), JSON.stringify(SOURCE_CONFIG));
  await writeFile(
    join(dir, 'sync.yaml'),
    ['connection: fresh', `source: { connector: sample, config: ${JSON.stringify(SOURCE_CONFIG)} }`, 'destination: { connector: local, config: { directory: ./out } }'].join('\n'),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in `dir`; never rejects (a non-zero exit is a result). */
function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, TRIBUTARY_DEBUG: '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

describe('tributary state show of a connection without state', () => {
  it('prints [] and exits 0 before the first sync; and read --state takes that output as "from the beginning"', async () => {
    const shown = await cli(['state', 'show', '--sync', 'sync.yaml']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual([]);
    expect(shown.stderr).toContain('no state for connection "fresh"');
    expect(shown.stderr).not.toContain('error');

    // The empty list means "from the beginning" wherever a state file is taken.
    await writeFile(join(dir, 'shown.json'), shown.stdout);
    const read = await cli(['read', 'sample', '--config', 'source.json', '--state', 'shown.json']);
    expect(read.code, read.stderr).toBe(0);
    const records = read.stdout.split('\n').filter((l) => l.includes('"type":"RECORD"'));
    expect(records).toHaveLength(2 + 3 + 1 + 2);
  });

  it('prints [] and exits 0 after a sync and a reset', async () => {
    expect((await cli(['sync', 'sync.yaml', '--json'])).code).toBe(0);
    const before = await cli(['state', 'show', '--sync', 'sync.yaml']);
    expect(before.code, before.stderr).toBe(0);
    expect((JSON.parse(before.stdout) as unknown[]).length).toBeGreaterThan(0);

    expect((await cli(['state', 'reset', '--sync', 'sync.yaml'])).code).toBe(0);
    const afterReset = await cli(['state', 'show', '--sync', 'sync.yaml']);
    expect(afterReset.code, afterReset.stderr).toBe(0);
    expect(JSON.parse(afterReset.stdout)).toEqual([]);
    expect(afterReset.stderr).toContain('no state for connection "fresh"');
  });
});
