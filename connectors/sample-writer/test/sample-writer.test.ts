import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TributaryError, createConnectorContext, parseConfig, runWriter, type WriteRecord, type WriteRequest, type WriteResult, type WriterSession } from '@tributary/core';
import { sampleWriter, type SampleWriterConfig } from '@tributary/writer-sample';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let directory: string;
const ctx = createConnectorContext();

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'sample-crm-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

function configOf(extra: Record<string, unknown> = {}): SampleWriterConfig {
  return parseConfig(sampleWriter.spec.connectionSpecification, { directory, ...extra });
}

async function withSession<T>(run: (session: WriterSession) => Promise<T>, extra: Record<string, unknown> = {}): Promise<T> {
  const session = await sampleWriter.open(ctx, configOf(extra));
  try {
    return await run(session);
  } finally {
    await session.close();
  }
}

let sequence = 0;
function rec(key: string, fields: Record<string, unknown> = {}, idempotencyKey = `k${++sequence}`): WriteRecord {
  return { idempotencyKey, key, fields };
}

function request(mode: WriteRequest['mode'], records: WriteRecord[], extra: Partial<WriteRequest> = {}): WriteRequest {
  return { object: 'contacts', mode, idProperty: 'email', records, dryRun: false, ...extra };
}

/** Results in input order (the contract allows any order; match by idempotency key). */
function ordered(records: WriteRecord[], results: WriteResult[]): WriteResult[] {
  expect(results).toHaveLength(records.length);
  const byKey = new Map(results.map((r) => [r.idempotencyKey, r]));
  return records.map((r) => {
    const result = byKey.get(r.idempotencyKey);
    expect(result, `result for ${r.idempotencyKey}`).toBeDefined();
    return result as WriteResult;
  });
}

interface StoredFile {
  object: string;
  next_id: number;
  rows: Array<Record<string, unknown>>;
}

async function stored(object = 'contacts'): Promise<StoredFile> {
  return JSON.parse(await readFile(join(directory, `${object}.json`), 'utf8')) as StoredFile;
}

async function storedRows(object = 'contacts'): Promise<Map<string, Record<string, unknown>>> {
  const key = object === 'contacts' ? 'email' : 'domain';
  return new Map((await stored(object)).rows.map((r) => [r[key] as string, r]));
}

const contacts = (n: number, from = 0): WriteRecord[] =>
  Array.from({ length: n }, (_, i) => rec(`person${from + i}@acme.example`, { email: `person${from + i}@acme.example`, firstname: `P${from + i}`, score: from + i }));

describe('sample CRM writer: discover and config', () => {
  it('describes contacts and companies with their id properties and modes', async () => {
    const objects = await sampleWriter.discover(ctx, configOf());
    expect(objects.map((o) => [o.name, o.idProperties])).toEqual([
      ['contacts', ['email']],
      ['companies', ['domain']],
    ]);
    const contactFields = objects[0]?.fields.map((f) => f.name);
    expect(contactFields).toEqual(['id', 'email', 'firstname', 'lastname', 'company', 'score', 'lifecycle_stage', 'updated_at']);
    expect(objects[0]?.fields.find((f) => f.name === 'email')).toMatchObject({ required: true, unique: true });
    expect(objects[0]?.fields.find((f) => f.name === 'id')).toMatchObject({ writable: false });
    expect(objects[0]?.modes).toEqual(['insert', 'update', 'upsert', 'delete', 'mirror']);
    expect(sampleWriter.rateLimit).toEqual({ requests: 20, perMs: 1000, concurrency: 2 });
    expect(sampleWriter.maxBatchSize).toBe(100);
  });

  it('refuses the stand-in bad api_key with an auth error that does not contain it', async () => {
    for (const call of [() => sampleWriter.check(ctx, configOf({ api_key: 'invalid' })), () => sampleWriter.open(ctx, configOf({ api_key: 'invalid' }))]) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(TributaryError.is(error, 'auth')).toBe(true);
      expect(`${String(error)} ${(error as TributaryError).internalMessage ?? ''}`).not.toContain('invalid');
    }
    await expect(sampleWriter.check(ctx, configOf({ api_key: 'secret-ok' }))).resolves.toBeUndefined();
  });

  it('check refuses a directory that is a file and a bad fail pattern', async () => {
    await writeFile(join(directory, 'file'), 'x');
    await expect(sampleWriter.check(ctx, parseConfig(sampleWriter.spec.connectionSpecification, { directory: join(directory, 'file') }))).rejects.toMatchObject({ kind: 'config' });
    await expect(sampleWriter.check(ctx, configOf({ fail_emails_matching: '(' }))).rejects.toMatchObject({ kind: 'config' });
    await expect(sampleWriter.check(ctx, parseConfig(sampleWriter.spec.connectionSpecification, { directory: join(directory, 'not', 'yet') }))).resolves.toBeUndefined();
  });

  it('refuses malformed requests as a whole', async () => {
    await withSession(async (session) => {
      await expect(session.write(request('upsert', [rec('a@b.example')], { object: 'tickets' }))).rejects.toMatchObject({ kind: 'config' });
      await expect(session.write(request('upsert', [rec('a@b.example')], { idProperty: 'firstname' }))).rejects.toMatchObject({ kind: 'config' });
      await expect(session.write(request('upsert', contacts(101)))).rejects.toMatchObject({ kind: 'fatal' });
    });
    await expect(readdir(directory)).resolves.toEqual([]);
  });
});

describe('sample CRM writer: modes', () => {
  it('upsert creates, then the same batch again is all unchanged and leaves the file alone', async () => {
    const batch = contacts(5);
    await withSession(async (session) => {
      const first = ordered(batch, await session.write(request('upsert', batch)));
      expect(first.map((r) => r.status)).toEqual(Array(5).fill('created'));
      expect(first.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5']);
      const before = await readFile(join(directory, 'contacts.json'), 'utf8');
      const beforeStat = await stat(join(directory, 'contacts.json'));
      const second = ordered(batch, await session.write(request('upsert', batch)));
      expect(second.map((r) => r.status)).toEqual(Array(5).fill('unchanged'));
      expect(second.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5']);
      expect(await readFile(join(directory, 'contacts.json'), 'utf8')).toBe(before);
      expect((await stat(join(directory, 'contacts.json'))).ino).toBe(beforeStat.ino);
    });
    const rows = await storedRows();
    expect(rows.get('person3@acme.example')).toMatchObject({ id: '4', email: 'person3@acme.example', firstname: 'P3', score: 3 });
    expect(typeof rows.get('person3@acme.example')?.updated_at).toBe('string');
  });

  it('upsert updates changed fields and keeps the others', async () => {
    await withSession(async (session) => {
      await session.write(request('upsert', [rec('ann@acme.example', { firstname: 'Ann', lastname: 'Lee', score: 10 })]));
      const [result] = await session.write(request('upsert', [rec('ann@acme.example', { score: 11, lifecycle_stage: 'customer' })]));
      expect(result).toMatchObject({ status: 'updated', id: '1' });
    });
    expect((await storedRows()).get('ann@acme.example')).toMatchObject({ id: '1', firstname: 'Ann', lastname: 'Lee', score: 11, lifecycle_stage: 'customer' });
  });

  it('insert creates new rows, fails on existing keys, and a replayed insert is unchanged', async () => {
    await withSession(async (session) => {
      const original = rec('bo@acme.example', { firstname: 'Bo' });
      expect((await session.write(request('insert', [original])))[0]).toMatchObject({ status: 'created', id: '1' });
      const records = [rec('bo@acme.example', { firstname: 'Robert' }), rec('cy@acme.example', { firstname: 'Cy' }), { ...original }];
      const results = ordered(records, await session.write(request('insert', records)));
      expect(results.map((r) => r.status)).toEqual(['failed', 'created', 'unchanged']);
      expect(results[0]?.reason).toMatch(/already exists/);
      expect(results[0]?.retryable).toBe(false);
    });
    const rows = await storedRows();
    expect(rows.get('bo@acme.example')?.firstname).toBe('Bo');
    expect([...rows.keys()]).toEqual(['bo@acme.example', 'cy@acme.example']);
  });

  it('update changes existing rows only', async () => {
    await withSession(async (session) => {
      await session.write(request('upsert', [rec('di@acme.example', { firstname: 'Di', score: 1 })]));
      const records = [rec('di@acme.example', { score: 2 }), rec('nobody@acme.example', { score: 3 }), rec('di@acme.example', { score: 2 })];
      const results = ordered(records, await session.write(request('update', records)));
      expect(results.map((r) => r.status)).toEqual(['updated', 'failed', 'unchanged']);
      expect(results[1]?.reason).toMatch(/not found/);
    });
    const rows = await storedRows();
    expect([...rows.keys()]).toEqual(['di@acme.example']);
    expect(rows.get('di@acme.example')).toMatchObject({ firstname: 'Di', score: 2 });
  });

  it('delete removes rows, fails on missing keys, and a replayed delete is unchanged', async () => {
    await withSession(async (session) => {
      await session.write(request('upsert', contacts(3)));
      const deletion = rec('person1@acme.example', {}, 'delete-person1');
      const records = [deletion, rec('ghost@acme.example')];
      const results = ordered(records, await session.write(request('delete', records)));
      expect(results.map((r) => r.status)).toEqual(['deleted', 'failed']);
      expect(results[0]?.id).toBe('2');
      expect(results[1]?.reason).toMatch(/not found/);
      const replay = await session.write(request('delete', [{ ...deletion }]));
      expect(replay[0]?.status).toBe('unchanged');
      const other = await session.write(request('delete', [rec('person1@acme.example', {}, 'another-delete')]));
      expect(other[0]).toMatchObject({ status: 'failed' });
      // Re-created after the delete: ids are never reused.
      expect((await session.write(request('upsert', [rec('person1@acme.example', { firstname: 'Again' })])))[0]).toMatchObject({ status: 'created', id: '4' });
    });
    expect([...(await storedRows()).keys()]).toEqual(['person0@acme.example', 'person2@acme.example', 'person1@acme.example']);
  });

  it('keys companies by domain', async () => {
    await withSession(async (session) => {
      const records = [rec('acme.example', { name: 'Acme', employees: 12 }), rec('not a domain', { name: 'Bad' }), rec('zeta.example', { employees: -1 })];
      const results = ordered(records, await session.write(request('upsert', records, { object: 'companies', idProperty: 'domain' })));
      expect(results.map((r) => r.status)).toEqual(['created', 'failed', 'failed']);
      const keys: string[] = [];
      for await (const key of session.listKeys?.('companies', 'domain') ?? []) keys.push(key);
      expect(keys).toEqual(['acme.example']);
    });
    expect((await storedRows('companies')).get('acme.example')).toMatchObject({ id: '1', domain: 'acme.example', name: 'Acme', employees: 12 });
  });
});

describe('sample CRM writer: partial failure, dry run, persistence, concurrency', () => {
  it('fails bad records with a reason and still applies the rest of the batch', async () => {
    const records = [
      rec('good1@acme.example', { firstname: 'G1' }),
      rec('not-an-email', { firstname: 'X' }),
      rec('blocked@spam.example', { firstname: 'Blocked' }),
      rec('good2@acme.example', { firstname: 'G2', favourite_color: 'red' }),
      rec('good3@acme.example', { score: 'high' }),
      rec('good4@acme.example', { lifecycle_stage: 'prospect' }),
      rec('good5@acme.example', { id: '99' }),
      rec('good6@acme.example', { email: 'other@acme.example' }),
      rec('good7@acme.example', { firstname: 'G7', lifecycle_stage: 'lead' }),
    ];
    await withSession(
      async (session) => {
        const results = ordered(records, await session.write(request('upsert', records)));
        expect(results.map((r) => r.status)).toEqual(['created', 'failed', 'failed', 'failed', 'failed', 'failed', 'failed', 'failed', 'created']);
        const reasons = results.map((r) => r.reason ?? '');
        expect(reasons[1]).toMatch(/invalid email/);
        expect(reasons[2]).toMatch(/fail_emails_matching/);
        expect(reasons[3]).toMatch(/favourite_color does not exist/);
        expect(reasons[4]).toMatch(/score/);
        expect(reasons[5]).toMatch(/lifecycle_stage/);
        expect(reasons[6]).toMatch(/read-only/);
        expect(reasons[7]).toMatch(/differs from the record key/);
        expect(results.filter((r) => r.status === 'failed').every((r) => r.retryable === false)).toBe(true);
      },
      { fail_emails_matching: '@spam\\.example$' },
    );
    const rows = await storedRows();
    expect([...rows.keys()]).toEqual(['good1@acme.example', 'good7@acme.example']);
    expect(rows.get('good7@acme.example')).toMatchObject({ id: '2', firstname: 'G7', lifecycle_stage: 'lead' });
  });

  it('dry run computes the same results without touching the disk', async () => {
    const seed = contacts(3);
    const batch = [rec('person0@acme.example', { firstname: 'Changed' }), rec('person1@acme.example', { firstname: 'P1', score: 1 }), rec('new@acme.example', { firstname: 'New' }), rec('bad')];
    // Without any file yet: nothing is created.
    await withSession(async (session) => {
      const results = await session.write(request('upsert', seed, { dryRun: true }));
      expect(results.map((r) => r.status)).toEqual(['created', 'created', 'created']);
    });
    expect(await readdir(directory)).toEqual([]);

    await withSession((session) => session.write(request('upsert', seed)));
    const before = await readFile(join(directory, 'contacts.json'), 'utf8');
    const dry = await withSession((session) => session.write(request('upsert', batch, { dryRun: true })));
    const deleteDry = await withSession((session) => session.write(request('delete', [rec('person2@acme.example')], { dryRun: true })));
    expect(await readFile(join(directory, 'contacts.json'), 'utf8')).toBe(before);
    expect(await readdir(directory)).toEqual(['contacts.json']);
    expect(deleteDry[0]?.status).toBe('deleted');

    const real = await withSession((session) => session.write(request('upsert', batch)));
    const strip = (results: WriteResult[]): unknown => ordered(batch, results).map(({ status, id, reason }) => ({ status, id, reason }));
    expect(strip(dry)).toEqual(strip(real));
    expect(ordered(batch, real).map((r) => r.status)).toEqual(['updated', 'unchanged', 'created', 'failed']);
  });

  it('a dry run does not create the directory; the first real write does', async () => {
    const crm = join(directory, 'crm');
    const config = parseConfig(sampleWriter.spec.connectionSpecification, { directory: crm });
    const run = (dryRun: boolean) =>
      runWriter({ writer: sampleWriter, config, object: 'contacts', mode: 'mirror', idProperty: 'email', dryRun, records: [{ email: 'ada@acme.example', firstname: 'Ada' }] });
    expect((await run(true)).counts).toMatchObject({ created: 1, failed: 0 });
    expect(await readdir(directory)).toEqual([]);
    expect((await run(false)).counts).toMatchObject({ created: 1, failed: 0 });
    expect(await readdir(crm)).toEqual(['contacts.json']);
  });

  it('persists across sessions: a new session sees earlier rows and keeps numbering ids', async () => {
    await withSession((session) => session.write(request('upsert', contacts(4))));
    await withSession(async (session) => {
      const keys: string[] = [];
      for await (const key of session.listKeys?.('contacts', 'email') ?? []) keys.push(key);
      expect(keys).toEqual(contacts(4).map((r) => r.key));
      const batch = contacts(5);
      const again = await session.write(request('upsert', batch));
      expect(ordered(batch, again).map((r) => [r.status, r.id])).toEqual([
        ['unchanged', '1'],
        ['unchanged', '2'],
        ['unchanged', '3'],
        ['unchanged', '4'],
        ['created', '5'],
      ]);
    });
    const file = await stored();
    expect(file.next_id).toBe(6);
    expect(file.rows).toHaveLength(5);
  });

  it('serializes concurrent requests of one session and of two sessions without losing updates', async () => {
    const a = await sampleWriter.open(ctx, configOf());
    const b = await sampleWriter.open(ctx, configOf());
    try {
      const batches = Array.from({ length: 12 }, (_, i) => contacts(10, i * 10));
      const results = await Promise.all(batches.map((batch, i) => (i % 2 === 0 ? a : b).write(request('upsert', batch))));
      expect(results.flat().every((r) => r.status === 'created')).toBe(true);
      const ids = results.flat().map((r) => Number(r.id));
      expect(new Set(ids).size).toBe(120);
      // Updates of the same rows from both sessions at once: every one lands.
      const updates = batches.map((batch) => batch.map((r) => rec(r.key, { lastname: `L-${r.key}` })));
      await Promise.all(updates.map((batch, i) => (i % 2 === 0 ? b : a).write(request('update', batch))));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    const rows = await storedRows();
    expect(rows.size).toBe(120);
    for (const [key, row] of rows) expect(row.lastname).toBe(`L-${key}`);
    expect((await stored()).next_id).toBe(121);
    expect((await readdir(directory)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses writes after close', async () => {
    const session = await sampleWriter.open(ctx, configOf());
    await session.close();
    await expect(session.write(request('upsert', contacts(1)))).rejects.toMatchObject({ kind: 'fatal' });
  });

  it('never leaves a torn file when the process is killed mid-write', async () => {
    // A child process upserts batches of 100 new contacts until killed with SIGKILL.
    const script = fileURLToPath(new URL('./support/write-forever.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=tributary-source', '--import', 'tsx', script, directory], { stdio: ['ignore', 'pipe', 'inherit'] });
    const acknowledged = await new Promise<number>((resolvePromise, reject) => {
      let buffer = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        buffer += chunk;
        const done = buffer.split('\n').filter((line) => line.startsWith('batch ')).length;
        if (done >= 5) {
          child.kill('SIGKILL');
          resolvePromise(done);
        }
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`writer child exited early (${String(code)})`));
      });
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    const file = await stored();
    // Whole batches only, every acknowledged one present, in order, with consecutive ids.
    expect(file.rows.length % 100).toBe(0);
    expect(file.rows.length).toBeGreaterThanOrEqual(acknowledged * 100);
    file.rows.forEach((row, i) => {
      expect(row.email).toBe(`person${i}@acme.example`);
      expect(row.id).toBe(String(i + 1));
    });
  });
});
