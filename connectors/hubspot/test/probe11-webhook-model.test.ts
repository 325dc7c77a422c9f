/**
 * A seeded model probe of the webhook path end to end: the HubSpot simulator, subscribed to
 * contact creation, deletion, propertyChange, restore and merge, emits the events of every
 * change it applies — random creates, updates, upserts, archives and merges through the real
 * @hubspot/api-client, restores and UI edits through its control operations — and delivers
 * them in signed batches, shuffled across batches, some delivered twice, some timing out,
 * retried on failure (HubSpot: up to 10 retries; delays shortened here) to the project's real
 * receiver: a `tributary sync` child process of `hubspot-webhooks` into the local-files
 * destination (`append_dedup`), killed (SIGKILL, or SIGTERM) and restarted at random points.
 *
 * Invariants, once every delivery is answered 2xx:
 * - no event is dropped by the sender (the scenario keeps downtime within the retries);
 * - every event the simulator emitted is stored exactly once (by eventId and by eventKey),
 *   with every field as sent but `attemptNumber` (README: dropped so repeats are identical);
 * - every restore made appears as a `contact.restore` event of that contact;
 * - (a check of the simulator's events themselves) replayed in emission order, they give the
 *   simulator's final contacts: live ids and writable property values. The project documents
 *   no way to apply webhook events to current state (HubSpot promises no order, and eventIds
 *   are not promised to grow), so the receiver's output is not folded into state.
 *
 * `PROBE11_SEEDS`: a list or ranges (`3,8`, `1-5`); default 1–3.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@hubspot/api-client';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '@tributary/core';
import { findCli, freePort, seedList } from '@tributary/conformance';
import { startHubspotSimulator, type AnyWebhookEvent, type HubspotSimulator, type MergeEvent, type WebhookEvent } from '../src/simulator/index.js';

const SECRET = 'probe11-secret-0123456789';
const PUBLIC_URL = 'https://hooks.example.com/hubspot/webhooks';
const WRITABLE = ['firstname', 'lastname', 'company', 'lifecyclestage', 'num_notes'] as const;
const STAGES = ['subscriber', 'lead', 'customer'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** A `tributary sync` child process of the webhook receiver, restartable on one port. */
async function receiverProcess(workDir: string, port: number) {
  const file = join(workDir, 'webhooks.json');
  await writeFile(
    file,
    JSON.stringify({
      connection: 'hubspot-webhooks-probe11',
      source: { connector: 'hubspot-webhooks', config: { client_secret: SECRET, public_url: PUBLIC_URL, port, path: '/hubspot/webhooks' } },
      destination: { connector: 'local', config: { directory: './out' } },
      streams: [{ name: 'webhook_events', sync_mode: 'incremental', destination_sync_mode: 'append_dedup' }],
      batching: { max_age_ms: 20, commit_interval_ms: 20 },
    }),
  );
  let child: ChildProcess | undefined;
  const exited = (c: ChildProcess): Promise<void> => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve())));
  return {
    async start(): Promise<void> {
      child = spawn(process.execPath, [findCli(), 'sync', file, '--json'], { cwd: workDir, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.resume();
      while (!(await listening(port))) await sleep(10);
    },
    async stop(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
      const victim = child!;
      victim.kill(signal);
      await exited(victim);
    },
    kill(): void {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Random changes to the simulator's contacts, through the real client (and control operations for restores and UI edits). */
async function workload(sim: HubspotSimulator, random: () => number, steps: number, between: (step: number) => Promise<void>): Promise<number[]> {
  const client = new Client({ accessToken: sim.token, basePath: sim.url, numberOfApiCallRetries: 0 });
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const contacts = () => sim.objects('contacts');
  const live = () => contacts().filter((c) => !c.archived);
  const archived = () => contacts().filter((c) => c.archived);
  const someValues = (): Record<string, string> => {
    const values: Record<string, string> = {};
    for (const name of WRITABLE) {
      if (random() < 0.5) continue;
      values[name] = name === 'lifecyclestage' ? pick(STAGES) : name === 'num_notes' ? String(Math.floor(random() * 10)) : random() < 0.15 ? '' : `${name}-${Math.floor(random() * 5)}`;
    }
    return values;
  };
  const restored: number[] = [];
  let emails = 0;
  for (let step = 0; step < steps; step++) {
    const roll = random();
    if (roll < 0.25 || live().length < 2) {
      const inputs = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ properties: { email: `c${++emails}@example.com`, ...someValues() }, associations: [] }));
      await client.crm.contacts.batchApi.create({ inputs });
    } else if (roll < 0.45) {
      await client.crm.contacts.batchApi.update({ inputs: [{ id: String(pick(live()).id), properties: someValues() }] });
    } else if (roll < 0.52) {
      const target = pick(live());
      await client.crm.contacts.batchApi.upsert({ inputs: [{ id: target.properties.email!, idProperty: 'email', properties: someValues() }] });
    } else if (roll < 0.58) {
      sim.update('contacts', pick(live()).id, someValues());
    } else if (roll < 0.72) {
      await client.crm.contacts.batchApi.archive({ inputs: [{ id: String(pick(live()).id) }] });
    } else if (roll < 0.86 && archived().length > 0) {
      const target = pick(archived());
      sim.restore('contacts', target.id);
      restored.push(target.id);
    } else {
      const [a, b] = [...live()].sort(() => random() - 0.5);
      await client.crm.contacts.basicApi.merge({ primaryObjectId: String(a!.id), objectIdToMerge: String(b!.id) });
    }
    await between(step);
  }
  return restored;
}

interface Contact {
  live: boolean;
  properties: Record<string, string>;
}

/** The simulator's events replayed in emission order: contacts by id. */
function replay(events: readonly AnyWebhookEvent[]): Map<number, Contact> {
  const state = new Map<number, Contact>();
  for (const event of [...events].sort((a, b) => a.eventId - b.eventId)) {
    const e = event as WebhookEvent & Partial<MergeEvent>;
    if (e.subscriptionType === 'contact.creation') state.set(e.objectId, { live: true, properties: {} });
    else if (e.subscriptionType === 'contact.propertyChange') {
      const props = state.get(e.objectId)!.properties;
      if (e.propertyValue) props[e.propertyName!] = e.propertyValue;
      else delete props[e.propertyName!];
    } else if (e.subscriptionType === 'contact.deletion') state.get(e.objectId)!.live = false;
    else if (e.subscriptionType === 'contact.restore') state.get(e.objectId)!.live = true;
    else if (e.subscriptionType === 'contact.merge') {
      const merged = e.mergedObjectIds!.map((id) => state.get(id)!.properties);
      const primary = state.get(e.primaryObjectId!)!.properties;
      state.set(e.newObjectId!, { live: true, properties: Object.assign({}, ...merged, primary) as Record<string, string> });
      for (const id of [e.primaryObjectId!, ...e.mergedObjectIds!]) state.delete(id);
    }
  }
  return state;
}

function simulatorState(sim: HubspotSimulator): Map<number, Contact> {
  const names = new Set<string>(['email', ...WRITABLE]);
  return new Map(
    sim.objects('contacts').map((c) => [
      c.id,
      { live: !c.archived, properties: Object.fromEntries(Object.entries(c.properties).filter(([name, value]) => names.has(name) && value !== null && value !== '')) as Record<string, string> },
    ]),
  );
}

describe('probe11: simulator webhooks into the real receiver, with crashes', () => {
  for (const seed of seedList(process.env.PROBE11_SEEDS, [1, 2, 3])) {
    it(`seed ${seed}: every emitted event stored exactly once, restores included`, async () => {
      const random = seededRandom(seed);
      const workDir = await mkdtemp(join(tmpdir(), 'hubspot-probe11-'));
      const port = await freePort();
      const receiver = await receiverProcess(workDir, port);
      const sim = await startHubspotSimulator({
        searchLagMs: 0,
        objectTypes: ['contacts'],
        webhooks: {
          targetUrl: PUBLIC_URL,
          deliverTo: `http://127.0.0.1:${port}/hubspot/webhooks`,
          clientSecret: SECRET,
          subscriptions: ['creation', 'deletion', 'propertyChange', 'restore', 'merge'].map((event) => ({ subscriptionType: `contact.${event}` })),
          maxEventsPerRequest: 1 + Math.floor(random() * 20),
          // Some seeds time out while the receiver holds an answer until its commit: the retry
          // then repeats events still in flight.
          timeoutMs: random() < 0.5 ? 40 + Math.floor(random() * 60) : 5_000,
          // Ten retries over ~25 s: longer than any restart of the receiver here.
          retryDelaysMs: [50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 6_400, 6_400],
          random: seededRandom(seed * 7919),
          chaos: { duplicateRate: 0.3 },
        },
      });
      let restart: Promise<void> = Promise.resolve();
      try {
        await receiver.start();
        const crashes = new Set(Array.from({ length: 2 + Math.floor(random() * 3) }, () => Math.floor(random() * 60)));
        const restored = await workload(sim, random, 60, async (step) => {
          if (!crashes.has(step)) return;
          await restart;
          await sleep(Math.floor(random() * 30));
          await receiver.stop(random() < 0.7 ? 'SIGKILL' : 'SIGTERM');
          // Restarted in the background: changes go on while the receiver is down.
          const downtime = Math.floor(random() * 300);
          restart = sleep(downtime).then(() => receiver.start());
        });
        await restart;
        const webhooks = sim.webhooks!;
        await webhooks.settled();
        await receiver.stop('SIGTERM');

        const context = { seed, stats: webhooks.stats, emitted: webhooks.emitted.length };
        expect(webhooks.dropped, JSON.stringify(context)).toEqual([]);
        const text = await readFile(join(workDir, 'out', 'webhook_events.jsonl'), 'utf8');
        const stored = text
          .split('\n')
          .filter((line) => line.length > 0)
          .map((line) => JSON.parse(line) as Record<string, unknown> & { eventId: number; eventKey: string });
        const byId = new Map<number, Array<Record<string, unknown>>>();
        for (const record of stored) byId.set(record.eventId, [...(byId.get(record.eventId) ?? []), record]);
        const keys = new Set(stored.map((r) => r.eventKey));
        const missing = webhooks.emitted.filter((e) => !byId.has(e.eventId)).map((e) => e.eventId);
        const repeated = [...byId].filter(([, records]) => records.length > 1).map(([id]) => id);
        expect({ missing, repeated, distinctKeys: keys.size, stored: stored.length }, JSON.stringify(context)).toEqual({
          missing: [],
          repeated: [],
          distinctKeys: webhooks.emitted.length,
          stored: webhooks.emitted.length,
        });
        for (const event of webhooks.emitted) {
          const { attemptNumber: _attempt, ...sent } = event;
          void _attempt;
          const { eventKey: _key, ...record } = byId.get(event.eventId)![0]!;
          void _key;
          expect(record).toEqual(sent);
        }
        const restoreEvents = stored.filter((r) => r.subscriptionType === 'contact.restore').map((r) => r.objectId as number);
        expect(restoreEvents.sort((a, b) => a - b)).toEqual([...restored].sort((a, b) => a - b));
        expect(replay(webhooks.emitted)).toEqual(simulatorState(sim));
      } finally {
        await restart.catch(() => {});
        receiver.kill();
        await sim.close();
        await rm(workDir, { recursive: true, force: true });
      }
    }, 180_000);
  }
});
