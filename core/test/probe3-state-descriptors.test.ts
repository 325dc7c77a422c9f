/**
 * The stored state (and `tributary state show`) is a list of Airbyte STATE messages, meant to
 * be handed to Airbyte tools: each must name its stream with the StreamDescriptor the catalog
 * gives. Internally a stream's state is keyed by `namespace.name`, which cannot tell a stream
 * named `v1.items` from stream `items` of namespace `v1`; before, the stores wrote the former
 * as the latter. State files written that way must still be read (and resumed from).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { connectionFileName, runSync, streamStateOf, type AirbyteStream, type SourceMessage, type SyncState } from '@tributary/core';
import { main } from '../src/cli/main.js';
import { discardingDestination, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe3-descriptors-');

const STREAMS: AirbyteStream[] = [
  { name: 'v1.items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] },
  { name: 'a.b', namespace: 'crm', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] },
  { name: 'plain', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] },
];
const catalog = { streams: STREAMS.map((stream) => ({ stream, sync_mode: 'incremental' as const, destination_sync_mode: 'append' as const })) };

/** A source checkpointing every stream at `n`; records the state it was handed. */
function dottedSource(n: number, seen: SyncState[]) {
  return {
    kind: 'source' as const,
    name: 'dotted',
    spec: { connectionSpecification: { type: 'object' as const, properties: {} } },
    async check() {},
    async discover() {
      return { streams: STREAMS };
    },
    async *read(_ctx: unknown, _config: unknown, _catalog: unknown, state: SyncState): AsyncGenerator<SourceMessage> {
      seen.push(state);
      for (const s of STREAMS) {
        yield { kind: 'record', stream: s.name, ...(s.namespace ? { namespace: s.namespace } : {}), data: { id: n } };
        yield { kind: 'checkpoint', stream: s.name, ...(s.namespace ? { namespace: s.namespace } : {}), state: { n } };
      }
    },
  };
}

const sync = (n: number, seen: SyncState[] = []) =>
  runSync({ connection: 'dotted', source: dottedSource(n, seen), sourceConfig: {}, destination: discardingDestination(), destinationConfig: {}, catalog, stateStore: temp.store, batching: { commitIntervalMs: 0 } });

const storedFile = (): string => join(temp.dir, connectionFileName('dotted'));

/** The stream descriptors of a list of STATE messages, in order. */
const descriptorsOf = (messages: Array<{ type: string; stream?: { stream_descriptor: unknown } }>): unknown[] => messages.map((m) => m.stream?.stream_descriptor);

async function stateShow(): Promise<{ code: number; stdout: string }> {
  const out: string[] = [];
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await main(['state', 'show', 'dotted', '--store', temp.dir]);
    return { code, stdout: out.join('') };
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
  }
}

const EXPECTED = [{ name: 'v1.items' }, { name: 'a.b', namespace: 'crm' }, { name: 'plain' }];

describe('stored state names streams with the catalog\'s StreamDescriptor', () => {
  it('a sync stores the STATE of "v1.items" (no namespace) and of "a.b" in namespace "crm" under their own descriptors', async () => {
    const result = await sync(1);
    expect(result.outcome).toBe('completed');
    const stored = JSON.parse(await readFile(storedFile(), 'utf8')) as { state: Array<{ type: string; stream?: { stream_descriptor: unknown } }> };
    expect(descriptorsOf(stored.state)).toEqual(EXPECTED);
  });

  it('tributary state show prints those descriptors', async () => {
    await sync(1);
    const shown = await stateShow();
    expect(shown.code).toBe(0);
    expect(descriptorsOf(JSON.parse(shown.stdout) as Array<{ type: string; stream?: { stream_descriptor: unknown } }>)).toEqual(EXPECTED);
  });

  it('reads a state file written the old way (namespace split at the first dot), resumes from it, and rewrites it with the right descriptors', async () => {
    const old = {
      version: 1,
      connection: 'dotted',
      updatedAt: '2024-01-01T00:00:00.000Z',
      state: [
        { type: 'STREAM', stream: { stream_descriptor: { namespace: 'v1', name: 'items' }, stream_state: { n: 7 } } },
        { type: 'STREAM', stream: { stream_descriptor: { namespace: 'crm', name: 'a.b' }, stream_state: { n: 7 } } },
        { type: 'STREAM', stream: { stream_descriptor: { name: 'plain' }, stream_state: { n: 7 } } },
      ],
    };
    await writeFile(storedFile(), JSON.stringify(old));
    const loaded = await temp.store.load('dotted');
    expect(streamStateOf(loaded!, 'v1.items')).toEqual({ n: 7 });
    expect(streamStateOf(loaded!, 'a.b', 'crm')).toEqual({ n: 7 });

    const seen: SyncState[] = [];
    expect((await sync(8, seen)).outcome).toBe('completed');
    // The source resumed from the old file's positions.
    expect(streamStateOf(seen[0]!, 'v1.items')).toEqual({ n: 7 });
    expect(streamStateOf(seen[0]!, 'a.b', 'crm')).toEqual({ n: 7 });
    const rewritten = JSON.parse(await readFile(storedFile(), 'utf8')) as { state: Array<{ type: string; stream?: { stream_descriptor: unknown; stream_state: unknown } }> };
    expect(descriptorsOf(rewritten.state)).toEqual(EXPECTED);
    expect(rewritten.state.map((m) => m.stream?.stream_state)).toEqual([{ n: 8 }, { n: 8 }, { n: 8 }]);
  });

  it('state set keeps the descriptors it is given', async () => {
    const messages = [
      { type: 'STREAM', stream: { stream_descriptor: { name: 'v1.items' }, stream_state: { n: 3 } } },
      { type: 'STREAM', stream: { stream_descriptor: { name: 'a.b', namespace: 'crm' }, stream_state: { n: 3 } } },
    ];
    await writeFile(join(temp.dir, 'set.json'), JSON.stringify(messages));
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['state', 'set', 'dotted', '--store', temp.dir, '--file', join(temp.dir, 'set.json')])).toBe(0);
    } finally {
      errSpy.mockRestore();
    }
    const stored = JSON.parse(await readFile(storedFile(), 'utf8')) as { state: Array<{ type: string; stream?: { stream_descriptor: unknown } }> };
    expect(descriptorsOf(stored.state)).toEqual([{ name: 'v1.items' }, { name: 'a.b', namespace: 'crm' }]);
  });
});
