// Crash and resume for the webhook receiver: a real `tributary sync` child process receives
// HubSpot-style deliveries (retried like HubSpot does: on errors, 5xx and dropped
// connections) and is SIGKILLed several times mid-stream, then restarted on the same port.
// Every event acknowledged or not must end up in the destination exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { findCli, freePort } from '@tributary/conformance';
import { contactEvents, deliverWithRetries, type WebhookEvent } from '../src/simulator/index.js';

const SECRET = 'crash-secret-0123456789';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';


function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

it('SIGKILL while deliveries flow, restart on the same port: every event stored exactly once', async () => {
  const workDir = await mkdtemp(join(tmpdir(), 'hubspot-webhooks-crash-'));
  const port = await freePort();
  const file = join(workDir, 'webhooks.yaml');
  await writeFile(
    file,
    JSON.stringify({
      connection: 'hubspot-webhooks-crash',
      source: { connector: 'hubspot-webhooks', config: { client_secret: SECRET, public_url: PUBLIC_URL, port, path: '/hubspot/webhooks' } },
      destination: { connector: 'local', config: { directory: './out' } },
      streams: [{ name: 'webhook_events', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_age_ms: 20, commit_interval_ms: 20 },
    }),
  );
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(process.execPath, [findCli(), 'sync', file, '--json'], { cwd: workDir, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.resume();
    while (!(await listening(port))) await new Promise((r) => setTimeout(r, 20));
  };
  const exited = (c: ChildProcess): Promise<void> => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve())));
  try {
    await start();
    const url = `http://127.0.0.1:${port}/hubspot/webhooks`;
    const batches: WebhookEvent[][] = Array.from({ length: 60 }, () => contactEvents(5));
    let next = 0;
    let acknowledged = 0;
    // Three senders, like HubSpot's concurrent deliveries, each retrying until a 2xx.
    const senders = Array.from({ length: 3 }, async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        const answers = await deliverWithRetries(SECRET, url, batch, { signedUrl: PUBLIC_URL, maxAttempts: 500, delayMs: 50 });
        expect(answers.at(-1)?.status).toBe(200);
        acknowledged++;
      }
    });
    let kills = 0;
    const killer = (async () => {
      for (const after of [8, 20, 35]) {
        while (acknowledged < after) await new Promise((r) => setTimeout(r, 5));
        const victim = child!;
        victim.kill('SIGKILL');
        await exited(victim);
        kills++;
        await start();
      }
    })();
    await Promise.all([...senders, killer]);
    expect(kills).toBe(3);
    const last = child!;
    last.kill('SIGTERM');
    await exited(last);
    const text = await readFile(join(workDir, 'out', 'webhook_events.jsonl'), 'utf8');
    const stored = text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => (JSON.parse(l) as { eventId: number }).eventId);
    const expected = batches.flat().map((e) => e.eventId);
    const counts = new Map<number, number>();
    for (const id of stored) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect({ missing: expected.filter((id) => !counts.has(id)), duplicated: [...counts].filter(([, n]) => n > 1).map(([id]) => id) }).toEqual({ missing: [], duplicated: [] });
    expect(stored.length).toBe(expected.length);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(workDir, { recursive: true, force: true });
  }
}, 120_000);
