import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { expect, it } from 'vitest';
import { findCli } from '@tributary/conformance';
import { seededRandom } from '@tributary/core';
import { applyChanges, configFor, sortedEntries, sqlClient, tableImage, usePostgres, type EmbeddedPostgresServer } from './support.js';

// The sync SIGKILLed at random points — in the snapshot and while streaming, with writes
// running the whole time — through the real CLI and the local-files destination. After
// the final sync, the change log applied to a keyed image equals the table row for row,
// and no change event was delivered twice.

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((started, client) => {
  server = started;
  sql = client;
});

const ROWS = 60_000;
const KILLS = 6;


interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runSync(cli: string, file: string, cwd: string, killAfterMs?: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'sync', file, '--json'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      // Armed at the first committed STATE, so the kill lands in a sync that moves data.
      if (killAfterMs !== undefined && timer === undefined && chunk.toString().includes('"type":"STATE"'))
        timer = setTimeout(() => child.kill(signal), killAfterMs);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

/**
 * A CDC sync file of one table into local files under `workDir`: `until: stopped` streams
 * until signalled, `caught_up` ends once the stream has caught up.
 */
async function writeSyncFile(
  workDir: string,
  name: string,
  sync: { connection: string; table: string; slot: string; until: 'stopped' | 'caught_up'; source: Record<string, unknown>; maxRecords: number },
): Promise<string> {
  const path = join(workDir, name);
  await writeFile(
    path,
    JSON.stringify({
      connection: sync.connection,
      source: {
        connector: 'postgres',
        config: {
          host: server.host,
          port: server.port,
          database: server.database,
          username: server.user,
          password: server.password,
          slot_name: `${sync.slot}_slot`,
          publication_name: `${sync.slot}_pub`,
          cdc_until: sync.until,
          ...sync.source,
        },
      },
      destination: { connector: 'local', config: { directory: './out' } },
      streams: [{ name: sync.table, namespace: 'public', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_records: sync.maxRecords, commit_interval_ms: 50 },
    }),
  );
  return path;
}

it(`SIGKILL at ${KILLS} random points (snapshot and stream, writes running): the destination equals the table, nothing lost or duplicated`, async () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  await sql.query('CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric, note text)');
  await sql.query(`INSERT INTO orders SELECT g, 'new', g * 0.01, repeat('x', 50) FROM generate_series(1, ${ROWS}) g`);
  const workDir = await mkdtemp(join(tmpdir(), 'tributary-pg-crash-'));
  // The killed syncs stream continuously (`cdc_until: stopped`), so every kill lands in a
  // sync that is moving data, however fast the machine; the final sync stops once caught up.
  const crashSync = { connection: 'pg-crash', table: 'orders', slot: 'crash', source: { chunk_size: 2_000 }, maxRecords: 2_000 };
  const killedFile = await writeSyncFile(workDir, 'killed.json', { ...crashSync, until: 'stopped' });
  const file = await writeSyncFile(workDir, 'final.json', { ...crashSync, until: 'caught_up' });

  // Writes in small transactions for the whole kill phase: updates, inserts, deletes.
  let writing = true;
  let nextId = ROWS + 1;
  const writer = (async () => {
    const client = await sqlClient(server);
    try {
      while (writing) {
        const a = 1 + Math.floor(random() * ROWS);
        await client.query('BEGIN');
        await client.query(`UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id BETWEEN $1 AND $1 + 20`, [a]);
        await client.query(`INSERT INTO orders SELECT g, 'new', 1, 'late' FROM generate_series($1::int, $1::int + 9) g`, [nextId]);
        nextId += 10;
        await client.query('DELETE FROM orders WHERE id = $1', [1 + Math.floor(random() * ROWS)]);
        await client.query('COMMIT');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    } finally {
      await client.end();
    }
  })();

  const cli = findCli();
  let killed = 0;
  try {
    for (let i = 0; i < KILLS; i++) {
      const outcome = await runSync(cli, killedFile, workDir, Math.round(random() * 600));
      expect(outcome.signal, `sync ended by itself instead of being killed (seed ${seed}): code ${outcome.code}\n${outcome.stderr}`).toBe('SIGKILL');
      killed++;
    }
  } finally {
    writing = false;
    await writer;
  }
  const last = await runSync(cli, file, workDir);
  expect(last.code, `final sync failed (seed ${seed}):\n${last.stderr}`).toBe(0);
  expect(killed).toBe(KILLS);

  const lines = (await readFile(join(workDir, 'out', 'public.orders.jsonl'), 'utf8')).split('\n').filter(Boolean);
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  // Every change event once (snapshot rows may be read again after a kill mid-snapshot, with the same or a newer image).
  const events = records.filter((r) => r._tributary_op !== 'r').map((r) => `${String(r._tributary_op)} ${String(r._tributary_position)} ${String(r.id)}`);
  const seen = new Set<string>();
  const duplicated = events.filter((e) => (seen.has(e) ? true : (seen.add(e), false)));
  expect({ seed, duplicated: duplicated.slice(0, 5) }).toEqual({ seed, duplicated: [] });

  const config = configFor(server);
  const image = new Map<string, Record<string, unknown>>();
  applyChanges(image, records, (row) => String(row.id));
  const table = await tableImage(config, 'orders', (row) => String(row.id));
  const actual = sortedEntries(image);
  const expected = sortedEntries(table);
  const missing = expected.filter(([k]) => !image.has(k)).length;
  const extra = actual.filter(([k]) => !table.has(k)).length;
  expect({ seed, missing, extra, rows: actual.length }).toEqual({ seed, missing: 0, extra: 0, rows: expected.length });
  expect(actual).toEqual(expected);
  await rm(workDir, { recursive: true, force: true });
}, 240_000);

it('a continuous CDC sync stops on SIGTERM with a committed position; the next sync resumes exactly there', async () => {
  await sql.query('CREATE TABLE live (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO live SELECT g, 0 FROM generate_series(1, 1000) g');
  const workDir = await mkdtemp(join(tmpdir(), 'tributary-pg-term-'));
  const termSync = { connection: 'pg-term', table: 'live', slot: 'term', source: { heartbeat_interval_ms: 200 }, maxRecords: 500 };
  const write = (name: string, until: 'stopped' | 'caught_up'): Promise<string> => writeSyncFile(workDir, name, { ...termSync, until });
  const cli = findCli();
  const continuous = await write('continuous.json', 'stopped');
  // Changes keep coming while the continuous sync runs; SIGTERM lands after its first commit.
  let writing = true;
  const writer = (async () => {
    const client = await sqlClient(server);
    for (let i = 0; writing; i++) {
      await client.query('UPDATE live SET v = v + 1 WHERE id = $1', [1 + (i % 1000)]);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await client.end();
  })();
  const stopped = await runSync(cli, continuous, workDir, 800, 'SIGTERM');
  writing = false;
  await writer;
  expect(stopped.code, stopped.stderr).toBe(143);
  expect(stopped.stderr).toMatch(/SIGTERM: stopping/);
  const rerun = await runSync(cli, await write('catch-up.json', 'caught_up'), workDir);
  expect(rerun.code, rerun.stderr).toBe(0);
  const records = (await readFile(join(workDir, 'out', 'public.live.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const events = records.filter((r) => r._tributary_op !== 'r').map((r) => `${String(r._tributary_position)} ${String(r.id)}`);
  expect(new Set(events).size).toBe(events.length);
  const image = new Map<string, Record<string, unknown>>();
  applyChanges(image, records, (row) => String(row.id));
  expect(sortedEntries(image)).toEqual(sortedEntries(await tableImage(configFor(server), 'live', (row) => String(row.id))));
  await rm(workDir, { recursive: true, force: true });
}, 120_000);
