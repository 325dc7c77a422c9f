/**
 * Crash test through the real CLI: `node core/bin/tributary.js sync <file> --json` (the BUILT
 * code: `npx tsc -b` first) streams two PostgreSQL tables (CDC, pgoutput) into a local event
 * lake and, through a second sync file (own slot, publication and state), into Redis. While
 * the change stream carries inserts, updates, key moves (`SET id = id + 100000`), tenant
 * moves, moves back (also inside one transaction) and deletes, each CLI process is killed
 * with SIGKILL at several points — after its Nth committed STATE, after the lake's Nth new
 * commit-log entry or data file, after Redis processed N more commands — and restarted
 * until a run completes. Then both stores must hold exactly the table:
 * - the lake's point-in-time read (latest) equals the table row for row (keys, tenants,
 *   values, the TOASTed column);
 * - no event id occurs twice in the lake's committed files (DuckDB over the Parquet files);
 * - Redis lookups of every (tenant, id) ever used give exactly the table's rows;
 * - `tributary parity` reports parity.
 *
 * Tables: `cm_full` (REPLICA IDENTITY FULL, key `id`: a tenant change is a tenant-only move)
 * and `cm_default` (default identity, key `(id, tenant_id)`: a tenant change is a key move,
 * and deletes carry the tenant). `big` is stored EXTERNAL (out of line, uncompressed), so
 * updates that leave it alone do not send it. Data and changes come from a seeded generator;
 * where the kills land depends on timing, what is asserted does not.
 * Embedded PostgreSQL, real redis-server, DuckDB as the independent reader.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { loadLakeState, openStore, readLatestAsOf, lakeConfigSchema } from '@tributary/destination-lake';
import { createFeatureLookup } from '@tributary/destination-redis';
import { parseConfig, seededRandom } from '@tributary/core';
import { startRedisServer, type RedisServer } from '../../../destinations/redis/test/redis-server.js';
import { usePostgres, type EmbeddedPostgresServer } from './support.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(REPO, 'core', 'bin', 'tributary.js');

const TABLES = ['cm_full', 'cm_default'] as const;
type Table = (typeof TABLES)[number];
const TENANTS = ['acme', 'beta', 'globex'] as const;
const INITIAL_ROWS = 400;
const MOVE = 100_000;
/** Length of the TOASTed column: above the ~2 kB tuple threshold, so stored out of line. */
const BIG_LENGTH = 2_600;

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((s, client) => {
  server = s;
  sql = client;
});
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedisServer(), mkdtemp(join(tmpdir(), 'tributary-pg-cli-crash-'))]);
});
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// Seeded data
// ---------------------------------------------------------------------------------------

/** Seeded (core's mulberry32), so data and changes are the same every run. */
const random = seededRandom(20261128);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** Incompressible-looking text, different per call: a row's value tells which write made it. */
function bigText(tag: string): string {
  let out = `${tag}:`;
  while (out.length < BIG_LENGTH) out += Math.floor(random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, BIG_LENGTH);
}

/** Event times: every statement takes the next second after 2025-01-01 (increasing, in the past). */
let tick = 0;
const nextTime = (): string => new Date(Date.UTC(2025, 0, 1) + ++tick * 1000).toISOString();

interface Row {
  id: number;
  tenant_id: string;
  v: number;
  note: string | null;
  big: string | null;
  updated_at: string;
}

async function tableRows(table: Table): Promise<Row[]> {
  const result = await sql.query<Row & { updated_at: Date }>(`SELECT id, tenant_id, v, note, big, updated_at FROM ${table} ORDER BY id, tenant_id`);
  return result.rows.map((r) => ({ ...r, updated_at: r.updated_at.toISOString() }));
}

async function createTables(): Promise<void> {
  for (const table of TABLES) {
    const key = table === 'cm_full' ? 'PRIMARY KEY (id)' : 'PRIMARY KEY (id, tenant_id)';
    await sql.query(`CREATE TABLE ${table} (id int NOT NULL, tenant_id text NOT NULL, v int NOT NULL, note text DEFAULT 'n', big text, updated_at timestamptz NOT NULL, ${key})`);
    await sql.query(`ALTER TABLE ${table} ALTER COLUMN big SET STORAGE EXTERNAL`);
    if (table === 'cm_full') await sql.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    for (let start = 1; start <= INITIAL_ROWS; start += 100) {
      const values: unknown[] = [];
      const tuples: string[] = [];
      for (let id = start; id < start + 100; id++) {
        const p = values.length;
        tuples.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5})`);
        values.push(id, TENANTS[id % 3], id, id % 11 === 0 ? null : bigText(`${table}-${id}-0`), nextTime());
      }
      await sql.query(`INSERT INTO ${table} (id, tenant_id, v, big, updated_at) VALUES ${tuples.join(', ')}`, values);
    }
  }
}

let nextId = 1_000;
/** How many changes of each kind the generator made (so the test can show it made every kind). */
const made = new Map<string, number>();
const tally = (kind: string): void => void made.set(kind, (made.get(kind) ?? 0) + 1);
/** Every (tenant, id) a table ever held at the end of a batch (what Redis lookups check). */
const seen = new Map<Table, Set<string>>(TABLES.map((t) => [t, new Set<string>()]));

async function remember(): Promise<void> {
  for (const table of TABLES) for (const r of await tableRows(table)) seen.get(table)!.add(`${r.tenant_id}/${r.id}`);
}

/**
 * Applies `count` seeded transactions to `table`: inserts, value updates (TOASTed column left
 * alone), TOASTed column updates, key moves and moves back, tenant moves, a move and back in
 * one transaction, deletes. Operations are chosen against the rows as they are now.
 */
async function applyChanges(table: Table, count: number): Promise<void> {
  const rows = new Map((await tableRows(table)).map((r) => [`${r.tenant_id}/${r.id}`, r]));
  const where = table === 'cm_full' ? 'id = $1' : 'id = $1 AND tenant_id = $2';
  const keyOf = (r: Pick<Row, 'id' | 'tenant_id'>): unknown[] => (table === 'cm_full' ? [r.id] : [r.id, r.tenant_id]);
  /** Whether the table could take a row at (id, tenant). */
  const free = (id: number, tenant: string): boolean => (table === 'cm_full' ? ![...rows.values()].some((r) => r.id === id) : !rows.has(`${tenant}/${id}`));
  const p = table === 'cm_full' ? 1 : 2; // the key's parameters ($1, or $1 and $2) come first
  const moveTo = async (row: Row, id: number, tenant: string, extra = ''): Promise<void> => {
    const time = nextTime();
    await sql.query(`UPDATE ${table} SET id = $${p + 1}, tenant_id = $${p + 2}, updated_at = $${p + 3}${extra} WHERE ${where}`, [...keyOf(row), id, tenant, time]);
    rows.delete(`${row.tenant_id}/${row.id}`);
    const moved = { ...row, id, tenant_id: tenant, updated_at: time };
    rows.set(`${tenant}/${id}`, moved);
    Object.assign(row, moved);
  };
  for (let i = 0; i < count; i++) {
    const all = [...rows.values()];
    const row = pick(all);
    const kind = pick(['insert', 'insert', 'value', 'value', 'big', 'key-move', 'key-move', 'move-back', 'tenant-move', 'tenant-move', 'move-and-back', 'delete', 'delete'] as const);
    if (kind === 'insert') {
      const r: Row = { id: nextId++, tenant_id: pick(TENANTS), v: Math.floor(random() * 1000), note: 'new', big: bigText(`${table}-${nextId}-i`), updated_at: nextTime() };
      await sql.query(`INSERT INTO ${table} (id, tenant_id, v, note, big, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`, [r.id, r.tenant_id, r.v, r.note, r.big, r.updated_at]);
      rows.set(`${r.tenant_id}/${r.id}`, r);
      tally('insert');
    } else if (kind === 'value') {
      const time = nextTime();
      await sql.query(`UPDATE ${table} SET v = v + 1, note = $${p + 1}, updated_at = $${p + 2} WHERE ${where}`, [...keyOf(row), `u${i}`, time]);
      Object.assign(row, { v: row.v + 1, note: `u${i}`, updated_at: time });
      tally('value');
    } else if (kind === 'big') {
      const big = bigText(`${table}-${row.id}-b${i}`);
      const time = nextTime();
      await sql.query(`UPDATE ${table} SET big = $${p + 1}, updated_at = $${p + 2} WHERE ${where}`, [...keyOf(row), big, time]);
      Object.assign(row, { big, updated_at: time });
      tally('big');
    } else if (kind === 'key-move' && row.id < MOVE && free(row.id + MOVE, row.tenant_id)) {
      await moveTo(row, row.id + MOVE, row.tenant_id);
      tally('key-move');
    } else if (kind === 'move-back') {
      const moved = all.filter((r) => r.id >= MOVE && free(r.id - MOVE, r.tenant_id));
      if (moved.length > 0) {
        const back = pick(moved);
        await moveTo(back, back.id - MOVE, back.tenant_id, ', v = v + 7');
        back.v += 7;
        tally('move-back');
      }
    } else if (kind === 'tenant-move') {
      const tenant = pick(TENANTS.filter((t) => t !== row.tenant_id));
      if (free(row.id, tenant) || table === 'cm_full') {
        await moveTo(row, row.id, tenant);
        tally(`tenant-move ${table}`);
      }
    } else if (kind === 'move-and-back' && row.id < MOVE && free(row.id + MOVE, row.tenant_id)) {
      // In one transaction: to another key, to another tenant there, back to where it was, changed.
      const [id, tenant] = [row.id, row.tenant_id];
      const other = pick(TENANTS.filter((t) => t !== tenant));
      await sql.query('BEGIN');
      await moveTo(row, id + MOVE, tenant);
      if (free(id + MOVE, other) || table === 'cm_full') await moveTo(row, id + MOVE, other);
      await moveTo(row, id, tenant, ', v = v + 3');
      await sql.query('COMMIT');
      row.v += 3;
      tally('move-and-back');
    } else if (kind === 'delete') {
      await sql.query(`DELETE FROM ${table} WHERE ${where}`, keyOf(row));
      rows.delete(`${row.tenant_id}/${row.id}`);
      tally('delete');
    }
  }
}

async function applyBatch(count: number): Promise<void> {
  for (const table of TABLES) await applyChanges(table, count);
  await remember();
}

// ---------------------------------------------------------------------------------------
// The CLI, killed and restarted
// ---------------------------------------------------------------------------------------

/**
 * When to SIGKILL a run: after its Nth committed STATE, after the lake's Nth new log entry
 * (a commit whose STATE may not be saved yet) or data file (written, maybe not committed),
 * or after Redis ran N more commands of the sync (writes of a batch not committed yet).
 */
type Kill = { after: 'states' | 'lake-log' | 'lake-files' | 'redis-commands'; n: number };

interface Attempt {
  sync: string;
  kill: string;
  outcome: 'killed' | 'completed';
  states: number;
  /** Records the destination set aside, as the committed STATEs' destinationStats count them. */
  rejected: number;
  /** Wall time of the run (shown, not asserted). */
  ms: number;
}
const attempts: Attempt[] = [];

function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TRIBUTARY_') && key !== 'NODE_OPTIONS') env[key] = value;
  env.PG_PASSWORD_FOR_TEST = server.password; // the sync files name it: ${PG_PASSWORD_FOR_TEST}
  return env;
}

async function countFiles(path: string, suffix: string): Promise<number> {
  const entries = await readdir(path, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith(suffix)).length;
}

/** A counter of the commands Redis ran, less this counter's own INFO calls. */
function redisCommands(client: Redis): () => Promise<number> {
  let calls = 0;
  return async () => {
    const info = await client.info('stats');
    return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0) - ++calls;
  };
}

/** A probe of the kill condition: resolves a counter read now. */
function counterFor(kill: Kill, lakePath: string, client: Redis): (() => Promise<number>) | undefined {
  if (kill.after === 'lake-log') return () => countFiles(join(lakePath, '_tributary', 'log'), '.json');
  if (kill.after === 'lake-files') return () => countFiles(lakePath, '.parquet');
  if (kill.after === 'redis-commands') return redisCommands(client);
  return undefined;
}

/** One `tributary sync <file> --json` run, SIGKILLed when `kill` says so (unless it ended first). */
async function runOnce(syncFile: string, kill: Kill | undefined, lakePath: string, client: Redis): Promise<Attempt> {
  const counter = kill ? counterFor(kill, lakePath, client) : undefined;
  const baseline = counter ? await counter() : 0;
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, 'sync', syncFile, '--json'], { cwd: dir, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let partial = '';
  let states = 0;
  let rejected = 0;
  let killed = false;
  const killNow = (): void => {
    if (killed || child.exitCode !== null) return;
    killed = true;
    child.kill('SIGKILL');
  };
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    let newline: number;
    while ((newline = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      if (line.startsWith('{"type":"STATE"') || /"type"\s*:\s*"STATE"/.test(line)) {
        states++;
        for (const m of line.matchAll(/"rejectedRecordCount":(\d+)/g)) rejected += Number(m[1]);
        if (kill?.after === 'states' && states >= kill.n) killNow();
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('close', (code, signal) => done({ code, signal })));
  let running = true;
  const watch = async (): Promise<void> => {
    while (counter && running && !killed) {
      if ((await counter()) - baseline >= kill!.n) killNow();
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const watching = watch();
  const { code, signal } = await exited;
  running = false;
  await watching;
  const attempt: Attempt = { sync: syncFile, kill: kill ? `${kill.after} ${kill.n}` : 'none', outcome: signal === 'SIGKILL' ? 'killed' : 'completed', states, rejected, ms: Date.now() - started };
  if (attempt.outcome === 'completed' && code !== 0) throw new Error(`tributary sync ${syncFile} exited with ${code} (${signal})\nstderr:\n${stderr}`);
  attempts.push(attempt);
  return attempt;
}

/** Runs the sync with each kill in turn (a run that ends first ends the phase), then to completion. */
async function syncUntilDone(syncFile: string, kills: Kill[], lakePath: string, client: Redis, during?: () => Promise<void>): Promise<void> {
  for (const [i, kill] of kills.entries()) {
    const run = runOnce(syncFile, kill, lakePath, client);
    if (i === 0 && during) await during();
    if ((await run).outcome === 'completed') return;
  }
  await runOnce(syncFile, undefined, lakePath, client);
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

it('SIGKILLed and restarted CLI syncs of key moves, tenant moves and deletes leave the lake and Redis equal to the table (exactly once)', async () => {
  await createTables();
  await remember();
  const lakePath = join(dir, 'lake');
  const lakeConfig = { path: lakePath, source_system: 'postgres' };
  const source = (name: string) => ({
    connector: 'postgres',
    config: {
      host: server.host,
      port: server.port,
      database: server.database,
      username: server.user,
      password: '${PG_PASSWORD_FOR_TEST}',
      slot_name: `${name}_slot`,
      publication_name: `${name}_pub`,
      chunk_size: 50,
      cdc_until: 'caught_up',
    },
  });
  const streams = TABLES.map((name) => ({ name, namespace: 'public', sync_mode: 'incremental' }));
  const lakeSync = join(dir, 'lake.yaml');
  const redisSync = join(dir, 'redis.yaml');
  await writeFile(lakeSync, toYaml({ connection: 'crash-lake', source: source('crash_lake'), destination: { connector: 'lake', config: lakeConfig }, streams, batching: { max_records: 40, commit_interval_ms: 0 } }));
  await writeFile(redisSync, toYaml({ connection: 'crash-redis', source: source('crash_redis'), destination: { connector: 'redis', config: { port: redis.port, key_prefix: 'crash' } }, streams, batching: { max_records: 40, commit_interval_ms: 0 } }));
  const client = new Redis({ port: redis.port, host: '127.0.0.1' });
  try {
    // Both syncs side by side, as two connections in production.
    const phase = (lakeKills: Kill[], redisKills: Kill[], during?: () => Promise<void>) =>
      Promise.all([syncUntilDone(lakeSync, lakeKills, lakePath, client, during), syncUntilDone(redisSync, redisKills, lakePath, client)]);

    // 1. The snapshot (a checkpoint per 50 rows), killed mid-way while changes arrive.
    await phase([{ after: 'states', n: 3 }, { after: 'lake-log', n: 2 }], [{ after: 'states', n: 3 }, { after: 'redis-commands', n: 60 }], () => applyBatch(60));
    // 2.–3. Changes committed before the run (so the run must read them), killed mid-stream.
    await applyBatch(150);
    await phase([{ after: 'lake-files', n: 1 }, { after: 'states', n: 2 }], [{ after: 'redis-commands', n: 30 }, { after: 'states', n: 2 }]);
    await applyBatch(150);
    await phase([{ after: 'lake-log', n: 2 }, { after: 'lake-files', n: 2 }], [{ after: 'redis-commands', n: 50 }, { after: 'redis-commands', n: 20 }], () => applyBatch(40));
    // 4. A last run of each without a kill: it reads whatever came in during the runs above.
    await phase([], []);
    console.log(attempts.map((a) => `${a.sync.endsWith('lake.yaml') ? 'lake ' : 'redis'} kill@${a.kill}: ${a.outcome} (${a.states} STATE, ${a.ms} ms)`).join('\n'));
    expect(attempts.some((a) => a.outcome === 'killed')).toBe(true);
    // The seeded workload made every kind of change; nothing was set aside.
    expect([...made.keys()].sort()).toEqual(['big', 'delete', 'insert', 'key-move', 'move-and-back', 'move-back', 'tenant-move cm_default', 'tenant-move cm_full', 'value']);
    expect(attempts.reduce((n, a) => n + a.rejected, 0)).toBe(0);

    for (const table of TABLES) {
      const rows = await tableRows(table);
      const summary = (r: Pick<Row, 'id' | 'tenant_id' | 'v' | 'note' | 'big'>) => ({ key: `${r.tenant_id}/${r.id}`, v: r.v, note: r.note, big: r.big === null ? null : `${r.big.length}:${r.big.slice(0, 24)}` });
      const bigDiffers = (read: Array<Pick<Row, 'id' | 'tenant_id' | 'big'>>) =>
        read.filter((r) => rows.find((t) => t.id === r.id && t.tenant_id === r.tenant_id)?.big !== r.big).map((r) => `${r.tenant_id}/${r.id}`);

      // The lake's point-in-time read equals the table.
      const latest = await readLatestAsOf(lakeConfig, { stream: `public.${table}` });
      const read = latest
        .map((r) => ({ id: Number(r.payload.id), tenant_id: r.tenant_id, v: Number(r.payload.v), note: (r.payload.note as string | null) ?? null, big: (r.payload.big as string | null | undefined) ?? null }))
        .sort((a, b) => a.id - b.id || a.tenant_id.localeCompare(b.tenant_id));
      expect(read.map(summary), `lake ${table}`).toEqual(rows.map(summary));
      expect(bigDiffers(read), `lake ${table}: TOASTed column`).toEqual([]);

      // Redis: every (tenant, id) ever held is found exactly when the table has it, with its values.
      const lookup = createFeatureLookup({ port: redis.port, keyPrefix: 'crash' });
      const online: Array<Pick<Row, 'id' | 'tenant_id' | 'v' | 'note' | 'big'>> = [];
      for (const entry of seen.get(table)!) {
        for (const tenant of TENANTS) {
          const id = entry.split('/')[1]!;
          const found = await lookup.get({ tenant, entityType: table, entityId: id });
          const f = found.groups[table]?.features;
          if (found.found && f) online.push({ id: Number(f.id), tenant_id: String(f.tenant_id), v: Number(f.v), note: (f.note as string | null) ?? null, big: (f.big as string | null | undefined) ?? null });
        }
      }
      const unique = [...new Map(online.map((r) => [`${r.tenant_id}/${r.id}`, r])).values()].sort((a, b) => a.id - b.id || a.tenant_id.localeCompare(b.tenant_id));
      expect(unique.map(summary), `redis ${table}`).toEqual(rows.map(summary));
      expect(bigDiffers(unique), `redis ${table}: TOASTed column`).toEqual([]);
    }

    // No event stored twice: DuckDB over exactly the committed Parquet files.
    const state = await loadLakeState(openStore(parseConfig(lakeConfigSchema, lakeConfig)));
    expect(state.quarantine).toEqual([]);
    const files = [...state.files.values()].map((f) => join(lakePath, f.path));
    const duck = await DuckDBInstance.create(':memory:');
    const connection = await duck.connect();
    try {
      const list = `[${files.map((f) => `'${f.replace(/'/g, "''")}'`).join(', ')}]`;
      const duplicates = await connection.runAndReadAll(
        `SELECT stream, event_id, count(*)::INTEGER AS n, list(op ORDER BY op) AS ops, list(source_position ORDER BY op) AS positions FROM read_parquet(${list}, union_by_name = true) GROUP BY stream, event_id HAVING count(*) > 1 ORDER BY stream, event_id LIMIT 20`,
      );
      expect(duplicates.getRowObjectsJson()).toEqual([]);
      const stored = await connection.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet(${list}, union_by_name = true)`);
      expect(Number(stored.getRowObjectsJson()[0]!.n)).toBeGreaterThan(INITIAL_ROWS * TABLES.length);
    } finally {
      connection.closeSync();
      duck.closeSync();
    }

    // `tributary parity`: Redis and the lake agree.
    const parity = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = spawn(process.execPath, [CLI, 'parity', redisSync, '--lake', lakeSync, '--json'], { cwd: dir, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      child.on('close', (code) => done({ code, stdout, stderr }));
    });
    const reports = parity.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { stream: string; ok: boolean; samples: unknown[] });
    expect(reports.map((r) => ({ stream: r.stream, ok: r.ok, samples: r.samples })), parity.stderr).toEqual(TABLES.map((t) => ({ stream: `public.${t}`, ok: true, samples: [] })));
    expect(parity.code).toBe(0);
  } finally {
    client.disconnect();
  }
}, 300_000);
