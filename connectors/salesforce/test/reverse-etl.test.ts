import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findCli } from '@tributary/conformance';
import { startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';
import { credentials } from './helpers.js';

/**
 * Reverse ETL through the real CLI (`tributary sync`, which loads this package's dist/): the
 * sample source's contacts upserted into Salesforce Contacts by external id, with the
 * simulator running here in the parent process. A replay from scratch is all `unchanged`.
 */
const CLI = findCli();
const CONTACTS = 450;
let dir: string;
let sim: SalesforceSimulator;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-sf-retl-'));
  sim = await startSalesforceSimulator();
});
afterEach(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

function run(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function audit(): Promise<Array<{ status: string; key: string }>> {
  const text = await readFile(join(dir, 'retl.audit.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { status: string; key: string })
    // Results only: the write-ahead `sending` lines come before each request.
    .filter((entry) => entry.status !== 'sending');
}

/** The sync file: sample contacts → Salesforce Contacts by External_Id__c (the email), audited to retl.audit.jsonl. */
function retlSync(options: { contacts: number; checkpointEvery: number; dryRun?: boolean }): string {
  return JSON.stringify({
    connection: 'contacts-to-salesforce',
    source: { connector: 'sample', config: { seed: 3, counts: { companies: 10, contacts: options.contacts, deals: 0, activities: 0 }, checkpoint_every: options.checkpointEvery } },
    streams: [{ name: 'contacts', sync_mode: 'incremental' }],
    writer: {
      connector: 'salesforce',
      config: credentials(sim),
      object: 'Contact',
      mode: 'upsert',
      id_property: 'External_Id__c',
      fields: { External_Id__c: 'email', Email: 'email', FirstName: 'first_name', LastName: 'last_name' },
      ...(options.dryRun ? { dry_run: true } : {}),
    },
  });
}

describe('reverse ETL into Salesforce through tributary sync', () => {
  it('upserts every contact once through sObject collections; a replay is all unchanged', async () => {
    const patches: number[] = [];
    sim.onRequest((r) => {
      if (r.method === 'PATCH') patches.push(r.status);
    });
    await writeFile(join(dir, 'retl.json'), retlSync({ contacts: CONTACTS, checkpointEvery: 100 }));
    const first = await run('sync', 'retl.json', '--json');
    expect(first.code, first.stderr).toBe(0);
    expect(sim.records('Contact')).toHaveLength(CONTACTS);
    expect(new Set(sim.records('Contact').map((r) => r.External_Id__c)).size).toBe(CONTACTS);
    expect((await audit()).map((e) => e.status)).toEqual(Array(CONTACTS).fill('created'));
    expect(patches.every((s) => s === 200)).toBe(true);
    // At least ceil(450 / 200) requests; more if the runtime cut a batch early (by age).
    const firstPatches = patches.length;
    expect(firstPatches).toBeGreaterThanOrEqual(Math.ceil(CONTACTS / 200));

    // Replay everything: the org already holds each change, nothing is sent again.
    expect((await run('state', 'reset', 'contacts-to-salesforce', '--sync', 'retl.json')).code).toBe(0);
    const replay = await run('sync', 'retl.json', '--json');
    expect(replay.code, replay.stderr).toBe(0);
    const second = (await audit()).slice(CONTACTS);
    expect(second).toHaveLength(CONTACTS);
    expect(new Set(second.map((e) => e.status))).toEqual(new Set(['unchanged']));
    expect(patches.length).toBe(firstPatches);
    expect(sim.records('Contact')).toHaveLength(CONTACTS);
  });

  it('a dry run saves no checkpoint: the real run after it writes every contact', async () => {
    await writeFile(join(dir, 'retl.json'), retlSync({ contacts: 50, checkpointEvery: 10, dryRun: true }));
    const dry = await run('sync', 'retl.json', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    expect(sim.records('Contact')).toHaveLength(0);
    expect((await audit()).map((e) => e.status)).toEqual(Array(50).fill('created'));
    // Had the dry run saved its checkpoints, this run would resume after all 50 and write none.
    await writeFile(join(dir, 'retl.json'), retlSync({ contacts: 50, checkpointEvery: 10 }));
    const real = await run('sync', 'retl.json', '--json');
    expect(real.code, real.stderr).toBe(0);
    expect(sim.records('Contact')).toHaveLength(50);
  });
});
