/**
 * `tributary write <destination>` runs a destination on Airbyte messages from stdin, with the
 * configured catalog of a file. It must refuse a catalog `tributary sync` would refuse — a
 * destination_sync_mode the destination does not support, a sync_mode the stream does not
 * support, append_dedup without a primary key, a primary key naming no field of the stream,
 * two streams stored under one key, no stream at all — as a config error (exit 2) before the
 * destination is opened, so nothing is written. Before, it opened the destination and wrote.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-write-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A destination (append and append_dedup only) that appends a line to `log` on open and per written record. */
const DESTINATION = (log: string): string => `import { appendFile } from 'node:fs/promises';
export default {
  kind: 'destination', name: 'logging', delivery: 'append',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append', 'append_dedup'] },
  async check() {},
  async open() {
    await appendFile(${JSON.stringify(log)}, 'open\\n');
    return {
      async write(batch) { for (const r of batch.records) await appendFile(${JSON.stringify(log)}, JSON.stringify(r) + '\\n'); },
      async commit() {}, async close() {},
    };
  },
};
`;

async function runWrite(name: string, catalog: unknown): Promise<{ code: number; stderr: string; log: string }> {
  const log = join(dir, `${name}.log`);
  await writeFile(log, '');
  await writeFile(join(dir, `${name}.mjs`), DESTINATION(log));
  await writeFile(join(dir, 'empty.json'), '{}');
  await writeFile(join(dir, `${name}.catalog.json`), JSON.stringify(catalog));
  const input = [
    { type: 'RECORD', record: { stream: 'contacts', data: { id: 1, email: 'a@example.com' }, emitted_at: 0 } },
    { type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'contacts' }, stream_state: { n: 1 } } } },
  ]
    .map((m) => JSON.stringify(m))
    .join('\n');
  const err: string[] = [];
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  const stdin = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  Object.defineProperty(process, 'stdin', { value: Readable.from([input + '\n']), configurable: true });
  try {
    const code = await main(['write', join(dir, `${name}.mjs`), '--config', join(dir, 'empty.json'), '--catalog', join(dir, `${name}.catalog.json`)]);
    return { code, stderr: err.join(''), log: await readFile(log, 'utf8') };
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
    Object.defineProperty(process, 'stdin', stdin);
  }
}

const contacts = {
  name: 'contacts',
  json_schema: { type: 'object', properties: { id: { type: 'integer' }, email: { type: 'string' } } },
  supported_sync_modes: ['full_refresh', 'incremental'],
};
const configured = (extra: Record<string, unknown> = {}, stream: Record<string, unknown> = contacts) => ({
  stream,
  sync_mode: 'incremental',
  destination_sync_mode: 'append',
  cursor_field: ['id'],
  ...extra,
});

const badCatalogs: Array<[string, unknown, RegExp]> = [
  ['a destination_sync_mode the destination does not support', { streams: [configured({ destination_sync_mode: 'overwrite', sync_mode: 'full_refresh' })] }, /does not support destination_sync_mode overwrite/],
  ['a sync_mode the stream does not support', { streams: [configured({}, { ...contacts, supported_sync_modes: ['full_refresh'] })] }, /does not support sync_mode incremental/],
  ['append_dedup without a primary key', { streams: [configured({ destination_sync_mode: 'append_dedup' })] }, /append_dedup needs a primary key/],
  ['a primary key that names no field of the stream', { streams: [configured({ destination_sync_mode: 'append_dedup', primary_key: [['emial']] })] }, /primary_key emial is not a field of the stream/],
  ['a cursor field that names no field of the stream', { streams: [configured({ cursor_field: ['updated'] })] }, /cursor_field updated is not a field of the stream/],
  ['two streams stored under one key', { streams: [configured({}, { ...contacts, name: 'b.contacts', namespace: 'a' }), configured({}, { ...contacts, name: 'contacts', namespace: 'a.b' })] }, /both are stored under the key "a\.b\.contacts"/],
  ['no stream', { streams: [] }, /catalog is empty/],
  ['a catalog that is not a configured catalog', { streams: [{ stream: { name: 'contacts' } }] }, /not a configured catalog/],
];

describe('tributary write refuses a bad configured catalog before anything is written', () => {
  it.each(badCatalogs)('%s: exit 2, destination never opened', async (_what, catalog, message) => {
    const result = await runWrite('bad', catalog);
    expect(result.stderr).toMatch(message);
    expect(result.code).toBe(2);
    expect(result.log).toBe('');
  });

  it('a good catalog still writes (append_dedup on an existing key field)', async () => {
    const result = await runWrite('good', { streams: [configured({ destination_sync_mode: 'append_dedup', primary_key: [['email']] })] });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.log).toBe('open\n{"id":1,"email":"a@example.com"}\n');
  });
});
