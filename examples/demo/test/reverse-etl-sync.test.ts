import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { configureCatalog, createConnectorContext, expandRecordPages, parseConfig } from '@tributary/core';
import { findCli, runtimeCrashConformance, validateAirbyteMessage } from '@tributary/conformance';
import { sampleSource } from '@tributary/source-sample';

/**
 * Reverse ETL through `tributary sync`: the sample source's contacts upserted into the
 * sample CRM by email, with checkpoint-after-ack, an audit trail and idempotent replays.
 */

const CLI = findCli();
const CONTACTS = 600;
const sourceConfig = { seed: 5, counts: { companies: 20, contacts: CONTACTS, deals: 0, activities: 0 }, checkpoint_every: 50, page_size: 100 };
const fields = { email: 'email', firstname: 'first_name', lastname: 'last_name', score: 'score', lifecycle_stage: 'lifecycle_stage' };

function syncFile(extra: Record<string, unknown> = {}, source: Record<string, unknown> = sourceConfig, more: Record<string, unknown> = {}): string {
  return toYaml({
    ...more,
    connection: 'contacts-to-crm',
    source: { connector: 'sample', config: source },
    streams: [{ name: 'contacts', sync_mode: 'incremental' }],
    writer: { connector: 'sample-crm', config: { directory: './crm', ...extra }, object: 'contacts', mode: 'upsert', id_property: 'email', fields },
  });
}

function run(cwd: string, ...args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface AuditLine {
  status: string;
  key: string;
  reason?: string;
  request?: string;
}

/** Every line of the audit trail: `sending` intents and outcomes. */
async function trailOf(dir: string): Promise<AuditLine[]> {
  const text = await readFile(join(dir, 'retl.audit.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AuditLine);
}

/** The outcome lines of the audit trail (one per record result), without the `sending` intents. */
async function auditOf(dir: string): Promise<AuditLine[]> {
  return (await trailOf(dir)).filter((e) => e.status !== 'sending');
}

async function expectedEmails(source: Record<string, unknown> = sourceConfig): Promise<string[]> {
  const ctx = createConnectorContext({});
  const config = parseConfig(sampleSource.spec.connectionSpecification, source);
  const catalog = configureCatalog(await sampleSource.discover(ctx, config), [{ name: 'contacts', sync_mode: 'full_refresh' }], ['append']);
  const emails: string[] = [];
  for await (const m of expandRecordPages(sampleSource.read(ctx, config, catalog, { streams: {} }))) {
    if (m.kind === 'record') emails.push(String(m.data.email));
  }
  return emails;
}

async function crmEmails(dir: string): Promise<string[]> {
  const table = JSON.parse(await readFile(join(dir, 'crm', 'contacts.json'), 'utf8').catch(() => '{"rows":[]}')) as { rows: Array<{ email: string }> };
  return table.rows.map((r) => r.email);
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-retl-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('reverse ETL sync (sample → sample-crm)', () => {
  it('upserts every record once, audits each result, and a replay is all unchanged', async () => {
    await writeFile(join(dir, 'retl.yaml'), syncFile());
    const first = run(dir, 'sync', 'retl.yaml', '--json');
    expect(first.code, first.stderr).toBe(0);
    for (const line of first.stdout.trim().split('\n')) expect(validateAirbyteMessage(line)).toEqual([]);
    expect((await crmEmails(dir)).sort()).toEqual((await expectedEmails()).sort());
    expect((await auditOf(dir)).map((e) => e.status)).toEqual(Array(CONTACTS).fill('created'));
    // Write-ahead: each record's `sending` line, of the request its outcome names, comes first.
    const trail = await trailOf(dir);
    for (const [i, e] of trail.entries()) {
      if (e.status === 'sending') continue;
      expect(trail.slice(0, i).some((s) => s.status === 'sending' && s.key === e.key && s.request === e.request)).toBe(true);
    }

    // Replay everything from scratch: the target already holds each change.
    expect(run(dir, 'state', 'reset', 'contacts-to-crm', '--sync', 'retl.yaml').code).toBe(0);
    expect(run(dir, 'sync', 'retl.yaml', '--json').code).toBe(0);
    const replay = (await auditOf(dir)).slice(CONTACTS);
    expect(replay).toHaveLength(CONTACTS);
    expect(new Set(replay.map((e) => e.status))).toEqual(new Set(['unchanged']));
    expect(await crmEmails(dir)).toHaveLength(CONTACTS);
  });

  it('reports records the target refuses, with the reason, and still completes the sync', async () => {
    await writeFile(join(dir, 'retl.yaml'), syncFile({ fail_emails_matching: '^a' }));
    const result = run(dir, 'sync', 'retl.yaml', '--json');
    expect(result.code, result.stderr).toBe(0);
    const refused = (await expectedEmails()).filter((e) => e.startsWith('a'));
    expect(refused.length).toBeGreaterThan(0);
    const failed = (await auditOf(dir)).filter((e) => e.status === 'failed');
    expect(failed.map((e) => e.key).sort()).toEqual(refused.sort());
    expect(failed.every((e) => typeof e.reason === 'string' && e.reason.length > 0)).toBe(true);
    const rejected = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; state?: { destinationStats?: { rejectedRecordCount?: number } } })
      .filter((m) => m.type === 'STATE')
      .reduce((n, m) => n + (m.state?.destinationStats?.rejectedRecordCount ?? 0), 0);
    expect(rejected).toBe(refused.length);
    expect((await crmEmails(dir)).length).toBe(CONTACTS - refused.length);
  });

  it('names the problem when the writer cannot identify rows by the chosen field', async () => {
    await writeFile(join(dir, 'retl.yaml'), syncFile().replace('id_property: email', 'id_property: lastname'));
    const result = run(dir, 'sync', 'retl.yaml');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/"lastname" cannot identify contacts rows; use one of email/);
  });
});

// The runtime's crash case, with a writer as the target: every contact ends in the CRM.
// At the writer's declared 20 requests/s of 100 records, 8 000 contacts take about 4 s;
// checkpoints commit every 100 ms so each run commits (and is killed) early.
const crashSource = { ...sourceConfig, counts: { ...sourceConfig.counts, contacts: 8_000 } };
runtimeCrashConformance({
  name: 'sample → sample-crm writer',
  kills: 4,
  syncFile: async (workDir) => {
    const path = join(workDir, 'retl.yaml');
    await writeFile(path, syncFile({}, crashSource, { batching: { commit_interval_ms: 100 } }));
    return path;
  },
  expectedKeys: async () => ({ contacts: await expectedEmails(crashSource) }),
  readBack: async (workDir) => ({ contacts: await crmEmails(workDir) }),
});
