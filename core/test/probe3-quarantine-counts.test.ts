/**
 * A record the destination quarantines (rejects with a reason) is handled, not stored. The
 * sync's counts must say so once: `committed` is the records the destination stored, and
 * `rejected` the ones it quarantined — in the result, in the printed summary and in the STATE
 * messages' destinationStats. Before, `committed` counted the quarantined records as well,
 * and the summary read "5 records committed, 2 quarantined" for 3 stored rows.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';
import { defineDestination, runSync, type AirbyteMessage, type SourceMessage } from '@tributary/core';
import { main } from '../src/cli/main.js';
import { itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe3-counts-');

/** Five records in two checkpointed pages; ids 2 and 4 are refused by the destination. */
async function* fiveItems(): AsyncGenerator<SourceMessage> {
  for (const id of [1, 2, 3]) yield { kind: 'record', stream: 'items', data: { id } };
  yield { kind: 'checkpoint', stream: 'items', state: { after: 3 } };
  for (const id of [4, 5]) yield { kind: 'record', stream: 'items', data: { id } };
  yield { kind: 'checkpoint', stream: 'items', state: { after: 5 } };
}

/** Stores records with an odd id in `stored`, quarantines the rest. */
function evenRefusing(stored: unknown[]) {
  return defineDestination({
    name: 'odd-only',
    delivery: 'append',
    spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
    async check() {},
    async open() {
      return {
        async write(batch) {
          const rejected = batch.records.flatMap((r, index) => ((r.id as number) % 2 === 0 ? [{ index, reason: 'even ids are refused' }] : []));
          stored.push(...batch.records.filter((r) => (r.id as number) % 2 === 1));
          return { rejected };
        },
        async commit() {},
        async close() {},
      };
    },
  });
}

const catalog = { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental' as const] }, sync_mode: 'incremental' as const, destination_sync_mode: 'append' as const }] };

describe('quarantined records are counted once, apart from the committed ones', () => {
  it('runSync: committed = stored rows, rejected = quarantined, written = both', async () => {
    const stored: unknown[] = [];
    const result = await runSync({ connection: 'c', source: itemsSource('five', fiveItems), sourceConfig: {}, destination: evenRefusing(stored), destinationConfig: {}, catalog, stateStore: temp.store });
    expect(result.outcome).toBe('completed');
    expect(stored).toHaveLength(3);
    const [items] = result.streams;
    expect(items).toMatchObject({ read: 5, written: 5, committed: 3, rejected: 2 });
  });

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-counts-cli-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('tributary sync --json: the summary says 3 committed, 2 quarantined; STATE destinationStats agree', async () => {
    await writeFile(
      join(dir, 'source.mjs'),
      `export default {
  kind: 'source', name: 'five', spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() { return { streams: [{ name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], source_defined_cursor: true, default_cursor_field: ['id'] }] }; },
  async *read() {
    for (const id of [1, 2, 3]) yield { kind: 'record', stream: 'items', data: { id } };
    yield { kind: 'checkpoint', stream: 'items', state: { after: 3 } };
    for (const id of [4, 5]) yield { kind: 'record', stream: 'items', data: { id } };
    yield { kind: 'checkpoint', stream: 'items', state: { after: 5 } };
  },
};
`,
    );
    await writeFile(
      join(dir, 'destination.mjs'),
      `export default {
  kind: 'destination', name: 'odd-only', delivery: 'append',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
  async check() {},
  async open() {
    return {
      async write(batch) { return { rejected: batch.records.flatMap((r, index) => (r.id % 2 === 0 ? [{ index, reason: 'even ids are refused' }] : [])) }; },
      async commit() {}, async close() {},
    };
  },
};
`,
    );
    await writeFile(
      join(dir, 'sync.yaml'),
      `connection: counts\nstate: ${join(dir, 'state')}\nsource: { connector: ${join(dir, 'source.mjs')} }\ndestination: { connector: ${join(dir, 'destination.mjs')} }\nstreams: [{ name: items, destination_sync_mode: append }]\n`,
    );
    const out: string[] = [];
    const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await main(['sync', join(dir, 'sync.yaml'), '--json']);
    } finally {
      outSpy.mockRestore();
      errSpy.mockRestore();
    }
    expect(code).toBe(0);
    const lines = out.join('').split('\n').filter(Boolean);
    expect(lines.flatMap((l) => validateAirbyteMessage(l))).toEqual([]);
    const messages = lines.map((l) => JSON.parse(l) as AirbyteMessage);
    const logs = messages.flatMap((m) => (m.type === 'LOG' ? [m.log.message] : []));
    expect(logs).toContainEqual(expect.stringMatching(/^completed: 3 records committed, 2 quarantined in /));
    const stats = messages.flatMap((m) => (m.type === 'STATE' ? [m.state.destinationStats] : []));
    const stored = stats.reduce((n, s) => n + (s?.recordCount ?? 0), 0);
    const rejected = stats.reduce((n, s) => n + ((s as { rejectedRecordCount?: number } | undefined)?.rejectedRecordCount ?? 0), 0);
    expect({ stored, rejected }).toEqual({ stored: 3, rejected: 2 });
  });
});
