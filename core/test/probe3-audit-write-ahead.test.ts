/**
 * The reverse-ETL audit trail is write-ahead. Its outcome lines are made durable only at
 * each commit, so a `tributary sync` killed after the target applied a request but before
 * the next commit lost their lines; the resumed run replays those records, the target
 * answers `unchanged`, and the trail never showed that Tributary created those rows. Now
 * every request's records get a fsynced `sending` line (with the request id) before it is
 * sent: every row in the target has a line showing Tributary sent it.
 *
 * Real child processes (the built CLI, sample source → sample CRM files), SIGKILLed once
 * the CRM holds more rows than the trail has `created` lines — i.e. with writes applied
 * whose outcome lines were not written yet. A kill can land after a commit caught up, so
 * runs are killed (and resumed) until one lands in that state, a bounded number of times.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TributaryError, defineWriter, runWriter, type WriteAuditEntry, type WriteIntent, type WriteRequest } from '@tributary/core';

const CLI = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));
const CONTACTS = 4_000;
/** Runs killed before one lands with applied but unaudited writes (each run has many chances). */
const MAX_KILLS = 10;

const SYNC_FILE = JSON.stringify({
  connection: 'contacts-to-crm',
  source: { connector: 'sample', config: { seed: 5, counts: { companies: 20, contacts: CONTACTS, deals: 0, activities: 0 }, checkpoint_every: 50, page_size: 100 } },
  streams: [{ name: 'contacts', sync_mode: 'incremental' }],
  writer: {
    connector: 'sample-crm',
    config: { directory: './crm' },
    object: 'contacts',
    mode: 'upsert',
    id_property: 'email',
    fields: { email: 'email', firstname: 'first_name', lastname: 'last_name', score: 'score' },
  },
});

interface AuditLine {
  key: string;
  idempotencyKey: string;
  status: string;
  request?: string;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-audit-'));
  await writeFile(join(dir, 'retl.json'), SYNC_FILE);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function crmKeys(): Promise<string[]> {
  const text = await readFile(join(dir, 'crm', 'contacts.json'), 'utf8').catch(() => '{"rows":[]}');
  return (JSON.parse(text) as { rows: Array<{ email: string }> }).rows.map((row) => row.email);
}

/** The trail's complete lines (a killed run may leave a partial last line). */
async function auditLines(): Promise<AuditLine[]> {
  const text = await readFile(join(dir, 'retl.audit.jsonl'), 'utf8').catch(() => '');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as AuditLine);
}

const APPLIED = new Set(['created', 'updated']);

/** Rows of the CRM with no `created`/`updated` line in the trail. */
async function rowsWithoutOutcome(): Promise<string[]> {
  const audited = new Set((await auditLines()).filter((line) => APPLIED.has(line.status)).map((line) => line.key));
  return (await crmKeys()).filter((key) => !audited.has(key));
}

/**
 * Runs `tributary sync`; with `killWhenUnaudited`, SIGKILLs it as soon as the CRM holds a
 * row the trail has no outcome line for. Resolves with how the process ended.
 */
function runSync(killWhenUnaudited: boolean): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'sync', 'retl.json', '--json'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let exited = false;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal, stderr });
    });
    if (!killWhenUnaudited) return;
    void (async () => {
      while (!exited) {
        if ((await rowsWithoutOutcome()).length > 0) {
          child.kill('SIGKILL');
          return;
        }
        await sleep(2);
      }
    })().catch(reject);
  });
}

describe('reverse ETL audit trail: write-ahead', () => {
  it('after SIGKILLs with writes applied but uncommitted, every CRM row has a line showing Tributary sent it', async () => {
    /** The rows applied in a killed run whose outcome lines were lost, per such kill. */
    const lostOutcomes: string[][] = [];
    for (let i = 0; i < MAX_KILLS && lostOutcomes.length === 0; i++) {
      const run = await runSync(true);
      if (run.signal !== 'SIGKILL') {
        // Finished before the poll saw a window: start over from nothing.
        expect(run.code, run.stderr).toBe(0);
        await rm(join(dir, 'crm'), { recursive: true, force: true });
        await rm(join(dir, 'retl.audit.jsonl'), { force: true });
        await rm(join(dir, '.tributary'), { recursive: true, force: true });
        continue;
      }
      const lost = await rowsWithoutOutcome();
      if (lost.length > 0) lostOutcomes.push(lost);
    }
    expect(lostOutcomes.length, `no kill landed with applied but unaudited writes in ${MAX_KILLS} runs`).toBe(1);

    const last = await runSync(false);
    expect(last.code, last.stderr).toBe(0);
    const rows = await crmKeys();
    expect(new Set(rows).size).toBe(CONTACTS);

    const lines = await auditLines();
    const sent = new Set(lines.filter((line) => line.status === 'sending' || APPLIED.has(line.status)).map((line) => line.key));
    const untraced = rows.filter((key) => !sent.has(key));
    expect({ untraced: untraced.slice(0, 3), count: untraced.length }).toEqual({ untraced: [], count: 0 });

    // How the trail tells what happened to a row whose outcome was lost: a `sending` line of
    // a request that has no outcome line for it, and a later `unchanged` outcome (the replay)
    // with the same idempotency key, of another request.
    const outcomes = new Set(lines.filter((line) => line.status !== 'sending').map((line) => `${line.request}/${line.idempotencyKey}`));
    for (const key of lostOutcomes[0]!) {
      const ofKey = lines.filter((line) => line.key === key);
      const dangling = ofKey.findIndex((line) => line.status === 'sending' && !outcomes.has(`${line.request}/${line.idempotencyKey}`));
      expect(dangling, `no dangling intent for ${key}`).toBeGreaterThanOrEqual(0);
      const intent = ofKey[dangling]!;
      const replay = ofKey.slice(dangling + 1).find((line) => line.status !== 'sending');
      expect({ key, status: replay?.status, sameChange: replay?.idempotencyKey === intent.idempotencyKey, otherRequest: replay?.request !== intent.request }).toEqual({
        key,
        status: 'unchanged',
        sameChange: true,
        otherRequest: true,
      });
    }
  }, 180_000);
});

/** A writer whose requests are logged in `events` beside the intents; `failFirst` fails attempt 1 of each request (retried). */
function loggingWriter(events: string[], failFirst: boolean) {
  const attempts = new Map<string, number>();
  return defineWriter({
    name: 'logging',
    spec: { connectionSpecification: { type: 'object', properties: { label: { type: 'string' } } } },
    rateLimit: { concurrency: 2 },
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
    maxBatchSize: 2,
    async check() {},
    async discover() {
      return [];
    },
    async open() {
      return {
        async write(request: WriteRequest) {
          const keys = request.records.map((r) => r.key).join(',');
          const attempt = (attempts.get(keys) ?? 0) + 1;
          attempts.set(keys, attempt);
          events.push(`send ${keys} #${attempt}`);
          if (failFirst && attempt === 1) throw new TributaryError('transient', { userMessage: 'try again' });
          return request.records.map((r) => ({ idempotencyKey: r.idempotencyKey, key: r.key, status: 'created' as const }));
        },
        async close() {},
      };
    },
  });
}

describe('runWriter auditIntent', () => {
  const records = [{ email: 'a@x' }, { email: 'b@x' }, { email: 'c@x' }];
  const base = { config: {}, object: 'contacts', idProperty: 'email', mode: 'upsert' } as const;

  it('is awaited once per request before its first attempt; outcomes carry its request id', async () => {
    const events: string[] = [];
    const intents: WriteIntent[] = [];
    const audit: WriteAuditEntry[] = [];
    const summary = await runWriter({
      ...base,
      writer: loggingWriter(events, true),
      records,
      audit: (entry) => audit.push(entry),
      auditIntent: async (intent) => {
        await sleep(1);
        intents.push(intent);
        events.push(`intent ${intent.records.map((r) => r.key).join(',')}`);
      },
    });
    expect(summary.counts.created).toBe(3);
    for (const keys of ['a@x,b@x', 'c@x']) {
      const mine = events.filter((e) => e.split(' ')[1] === keys);
      expect(mine).toEqual([`intent ${keys}`, `send ${keys} #1`, `send ${keys} #2`]);
    }
    expect(intents.map((i) => [i.object, i.mode, i.operation])).toEqual([
      ['contacts', 'upsert', 'upsert'],
      ['contacts', 'upsert', 'upsert'],
    ]);
    expect(new Set(intents.map((i) => i.request)).size).toBe(2);
    for (const entry of audit) {
      const intent = intents.find((i) => i.records.some((r) => r.idempotencyKey === entry.idempotencyKey));
      expect(entry.request).toBe(intent?.request);
    }
  });

  it('is not called for a dry run', async () => {
    let called = 0;
    await runWriter({ ...base, writer: loggingWriter([], false), records, dryRun: true, auditIntent: async () => void called++ });
    expect(called).toBe(0);
  });

  it('a failure to record the intent halts the run: nothing is sent, every record fails as not attempted', async () => {
    const events: string[] = [];
    const audit: WriteAuditEntry[] = [];
    const summary = await runWriter({
      ...base,
      writer: loggingWriter(events, false),
      records,
      audit: (entry) => audit.push(entry),
      auditIntent: () => Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })),
    });
    expect(events).toEqual([]);
    expect(summary.halted?.kind).toBe('fatal');
    expect(audit.map((e) => e.status)).toEqual(['failed', 'failed', 'failed']);
    expect(audit.every((e) => e.reason?.startsWith('not attempted: ') && e.retryable === false)).toBe(true);
  });
});
