/**
 * A stream's state is keyed internally by `streamKey(name, namespace)` = `namespace.name`,
 * which cannot tell a stream `items` of namespace `v1` from a stream named `v1.items` without
 * one. The STATE messages the CLI prints must name the stream as the catalog does: an
 * Airbyte platform running `tributary write` as its destination matches the echoed STATE
 * with the source's by descriptor, and one naming `{ namespace: v1, name: items }` is state
 * for a stream that does not exist — the real stream would start over on the next sync.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';
import type { AirbyteMessage } from '../src/index.js';
import { main } from '../src/cli/main.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-dotted-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function run(args: string[], input?: string): Promise<{ code: number; messages: AirbyteMessage[]; problems: string[] }> {
  const out: string[] = [];
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const originalStdin = Object.getOwnPropertyDescriptor(process, 'stdin');
  if (input !== undefined) Object.defineProperty(process, 'stdin', { value: Readable.from([input]), configurable: true });
  try {
    const code = await main(args);
    const lines = out.join('').split('\n').filter(Boolean);
    return { code, messages: lines.map((l) => JSON.parse(l) as AirbyteMessage), problems: lines.flatMap((l) => validateAirbyteMessage(l)) };
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
    if (originalStdin) Object.defineProperty(process, 'stdin', originalStdin);
  }
}

const DESTINATION = `export default {
  kind: 'destination', name: 'sink', delivery: 'append',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
  async check() {},
  async open() {
    return { async write() {}, async commit() {}, async close() {} };
  },
};
`;

const stateDescriptors = (messages: AirbyteMessage[]): unknown[] =>
  messages.flatMap((m) =>
    m.type !== 'STATE' ? [] : m.state.type === 'STREAM' ? [m.state.stream.stream_descriptor] : m.state.type === 'GLOBAL' ? m.state.global.stream_states.map((s) => s.stream_descriptor) : [],
  );

describe('STATE messages name a stream whose name contains a dot as the catalog does', () => {
  it('tributary write echoes the STATE of stream "v1.items" for "v1.items", not for items in namespace v1', async () => {
    await writeFile(join(dir, 'destination.mjs'), DESTINATION);
    await writeFile(join(dir, 'empty.json'), '{}');
    const stream = { name: 'v1.items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] };
    await writeFile(join(dir, 'catalog.json'), JSON.stringify({ streams: [{ stream, sync_mode: 'incremental', destination_sync_mode: 'append' }] }));
    const input = [
      { type: 'RECORD', record: { stream: 'v1.items', data: { id: 1 }, emitted_at: 0 } },
      { type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'v1.items' }, stream_state: { n: 1 } } } },
      { type: 'RECORD', record: { stream: 'v1.items', data: { id: 2 }, emitted_at: 0 } },
      { type: 'STATE', state: { type: 'GLOBAL', global: { shared_state: { lsn: 2 }, stream_states: [{ stream_descriptor: { name: 'v1.items' }, stream_state: { n: 2 } }] } } },
    ];
    const result = await run(['write', join(dir, 'destination.mjs'), '--config', join(dir, 'empty.json'), '--catalog', join(dir, 'catalog.json')], input.map((m) => JSON.stringify(m)).join('\n') + '\n');
    expect(result.code).toBe(0);
    expect(result.problems).toEqual([]);
    const descriptors = stateDescriptors(result.messages);
    expect(descriptors.length).toBeGreaterThan(0);
    for (const d of descriptors) expect(d).toEqual({ name: 'v1.items' });
  });

  it('tributary sync --json prints the STATE of "v1.items" for "v1.items", and of namespace "crm" stream "a.b" for that stream', async () => {
    await writeFile(
      join(dir, 'source.mjs'),
      `export default {
  kind: 'source', name: 'dotted', spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [
      { name: 'v1.items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], source_defined_cursor: true, default_cursor_field: ['id'] },
      { name: 'a.b', namespace: 'crm', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'], source_defined_cursor: true, default_cursor_field: ['id'] },
    ] };
  },
  async *read() {
    yield { kind: 'record', stream: 'v1.items', data: { id: 1 } };
    yield { kind: 'checkpoint', stream: 'v1.items', state: { n: 1 } };
    yield { kind: 'record', stream: 'a.b', namespace: 'crm', data: { id: 1 } };
    yield { kind: 'checkpoint', stream: 'a.b', namespace: 'crm', state: { n: 1 } };
  },
};
`,
    );
    await writeFile(join(dir, 'destination.mjs'), DESTINATION);
    await writeFile(
      join(dir, 'sync.yaml'),
      `connection: dotted\nstate: ${join(dir, 'state')}\nsource: { connector: ${join(dir, 'source.mjs')} }\ndestination: { connector: ${join(dir, 'destination.mjs')} }\n`,
    );
    const result = await run(['sync', join(dir, 'sync.yaml'), '--json']);
    expect(result.code).toBe(0);
    expect(result.problems).toEqual([]);
    const descriptors = stateDescriptors(result.messages);
    expect(descriptors).toContainEqual({ name: 'v1.items' });
    expect(descriptors).toContainEqual({ name: 'a.b', namespace: 'crm' });
    expect(descriptors).not.toContainEqual({ name: 'items', namespace: 'v1' });
  });
});
