/**
 * `tributary sync` file → configured catalog, and `tributary state reset`: selections the
 * CLI must refuse (or read as meant) instead of syncing something else than the user wrote.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createFileStateStore, type AirbyteCatalog, type AirbyteStream } from '../src/index.js';
import { main } from '../src/cli/main.js';
import { configureCatalog, readSyncFile } from '../src/cli/sync-file.js';

const contacts: AirbyteStream = {
  name: 'contacts',
  json_schema: {
    type: 'object',
    properties: { id: { type: 'string' }, updated_at: { type: 'string' }, address: { type: 'object', properties: { city: { type: 'string' } } } },
  },
  supported_sync_modes: ['full_refresh', 'incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['updated_at'],
  source_defined_primary_key: [['id']],
};
const catalog: AirbyteCatalog = { streams: [contacts] };
const ALL_MODES = ['append', 'append_dedup', 'overwrite'] as const;

describe('sync file stream selection', () => {
  it('destination_sync_mode overwrite without sync_mode is a full refresh, never an incremental read that overwrites', () => {
    const [configured] = configureCatalog(catalog, [{ name: 'contacts', destination_sync_mode: 'overwrite' }], [...ALL_MODES]).streams;
    expect([configured!.sync_mode, configured!.destination_sync_mode]).toEqual(['full_refresh', 'overwrite']);
    expect(() => configureCatalog(catalog, [{ name: 'contacts', sync_mode: 'incremental', destination_sync_mode: 'overwrite' }], [...ALL_MODES])).toThrow(
      /incremental with destination_sync_mode overwrite would replace the destination's data/,
    );
    // Unchanged: incremental stays the default for other modes.
    expect(configureCatalog(catalog, [{ name: 'contacts' }], [...ALL_MODES]).streams[0]!.sync_mode).toBe('incremental');
  });

  it('a cursor_field naming no field of the stream is refused', () => {
    const unsourced: AirbyteCatalog = { streams: [{ ...contacts, source_defined_cursor: false }] };
    expect(() => configureCatalog(unsourced, [{ name: 'contacts', cursor_field: ['updatedat'] }], [...ALL_MODES])).toThrow(
      'Stream "contacts": cursor_field updatedat is not a field of the stream (its fields: id, updated_at, address)',
    );
    expect(() => configureCatalog(unsourced, [{ name: 'contacts', cursor_field: ['address', 'cty'] }], [...ALL_MODES])).toThrow(/cursor_field address\.cty is not a field/);
    // Declared fields, nested ones included, are accepted.
    const [ok] = configureCatalog(unsourced, [{ name: 'contacts', cursor_field: ['address', 'city'] }], [...ALL_MODES]).streams;
    expect(ok!.cursor_field).toEqual(['address', 'city']);
  });

  it('a primary_key naming no field of the stream is refused, each component and nested paths included', () => {
    const refused = (primary_key: string[][]) => () => configureCatalog(catalog, [{ name: 'contacts', primary_key }], [...ALL_MODES]);
    expect(refused([['no_such_field']])).toThrow(
      'Stream "contacts": primary_key no_such_field is not a field of the stream (its fields: id, updated_at, address)',
    );
    expect(refused([['id'], ['address', 'cty']])).toThrow('Stream "contacts": primary_key address.cty is not a field of the stream (fields of address: city)');
    expect(refused([['id', 'value']])).toThrow('Stream "contacts": primary_key id.value is not a field of the stream (id has no fields)');
    expect(refused([[]])).toThrow('Stream "contacts": primary_key (empty) is not a field of the stream');
  });

  it('a primary_key naming declared fields is accepted, also in place of the source-defined key', () => {
    const keyOf = (primary_key: string[][]) => configureCatalog(catalog, [{ name: 'contacts', primary_key }], [...ALL_MODES]).streams[0]!.primary_key;
    expect(keyOf([['address', 'city']])).toEqual([['address', 'city']]);
    expect(keyOf([['id'], ['updated_at']])).toEqual([['id'], ['updated_at']]);
    // The source's key is the default, not a constraint: the destination applies the key.
    expect(configureCatalog(catalog, [{ name: 'contacts' }], [...ALL_MODES]).streams[0]!.primary_key).toEqual([['id']]);
  });

  it('an open schema is checked against the fields it declares; only a level declaring none cannot refuse a key', () => {
    const open: AirbyteCatalog = {
      streams: [
        {
          ...contacts,
          json_schema: { type: 'object', additionalProperties: true, properties: { id: { type: 'string' }, payload: { type: 'object' }, extra: {} } },
        },
        { ...contacts, name: 'schemaless', json_schema: { type: 'object' } },
      ],
    };
    const configure = (name: string, primary_key: string[][]) => () => configureCatalog(open, [{ name, primary_key }], [...ALL_MODES]);
    expect(configure('contacts', [['idd']])).toThrow('Stream "contacts": primary_key idd is not a field of the stream (its fields: id, payload, extra)');
    // Below an object field without properties, or a field of any type, nothing proves the path wrong.
    expect(configure('contacts', [['payload', 'id']])).not.toThrow();
    expect(configure('contacts', [['extra', 'id']])).not.toThrow();
    expect(configure('schemaless', [['anything', 'at_all']])).not.toThrow();
  });

  it('a cursor_field other than a source-defined cursor is refused (the source would ignore it)', () => {
    expect(() => configureCatalog(catalog, [{ name: 'contacts', cursor_field: ['id'] }], [...ALL_MODES])).toThrow(
      /the source defines its cursor \(updated_at\); cursor_field id would be ignored/,
    );
  });

  it('a stream name offered in several namespaces must be given a namespace', () => {
    const twice: AirbyteCatalog = { streams: [{ ...contacts, namespace: 'crm' }, { ...contacts, namespace: 'archive' }] };
    expect(() => configureCatalog(twice, [{ name: 'contacts' }], [...ALL_MODES])).toThrow(
      'Stream "contacts" exists in several namespaces (crm, archive): add namespace: to pick one',
    );
    expect(configureCatalog(twice, [{ name: 'contacts', namespace: 'archive' }], [...ALL_MODES]).streams[0]!.stream.namespace).toBe('archive');
    expect(() => configureCatalog(twice, [{ name: 'contacts', namespace: 'other' }], [...ALL_MODES])).toThrow(
      'Unknown stream "contacts" in namespace "other". The source offers: crm.contacts, archive.contacts',
    );
  });
});

describe('tributary state reset', () => {
  let dir: string;
  let stderr: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tributary-cli-state-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function run(args: string[]): Promise<number> {
    stderr = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr.push(String(chunk));
      return true;
    });
    try {
      return await main(args);
    } finally {
      spy.mockRestore();
    }
  }

  it('refuses a stream without state, and says a connection without state had nothing to reset, instead of reporting a reset', async () => {
    const store = createFileStateStore(join(dir, 'state'));
    await store.save('crm', { streams: { contacts: { cursor: 'a' }, deals: { cursor: 'b' } } });
    await store.close();
    await writeFile(join(dir, 'sync.yaml'), 'connection: crm\nstate: ./state\nsource: { connector: sample }\ndestination: { connector: local }\n');
    const sync = join(dir, 'sync.yaml');

    expect(await run(['state', 'reset', 'crm', '--sync', sync, '--stream', 'contactz'])).toBe(2);
    expect(stderr.join('')).toContain('Connection "crm" has no state for stream(s) contactz; nothing was reset. Streams with state: contacts, deals');
    expect(await run(['state', 'reset', 'crmm', '--sync', sync])).toBe(0);
    expect(stderr.join('')).toMatch(/no state for connection "crmm" in file:.*: nothing to reset/);

    const after = createFileStateStore(join(dir, 'state'));
    expect(Object.keys((await after.load('crm'))!.streams)).toEqual(['contacts', 'deals']);
    // A stream that has state is reset, the other kept.
    expect(await run(['state', 'reset', 'crm', '--sync', sync, '--stream', 'deals'])).toBe(0);
    expect(Object.keys((await after.load('crm'))!.streams)).toEqual(['contacts']);
    await after.close();
  });

  it('still resets an unreadable state whole, as its error message advises', async () => {
    const sync = join(dir, 'sync.yaml');
    await writeFile(sync, 'connection: crm\nstate: ./state\nsource: { connector: sample }\ndestination: { connector: local }\n');
    await mkdir(join(dir, 'state'), { recursive: true });
    await writeFile(join(dir, 'state', 'broken.json'), '{"version": 1, garbage');
    expect(await run(['state', 'reset', 'broken', '--sync', sync])).toBe(0);
    const store = createFileStateStore(join(dir, 'state'));
    expect(await store.load('broken')).toBeUndefined();
    await store.close();
  });
});

describe('sync file YAML', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tributary-cli-yaml-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('merge keys (<<: *anchor) merge the anchored mapping into the connector config', async () => {
    const path = join(dir, 'merge.yaml');
    await writeFile(
      path,
      [
        'source:',
        '  connector: sample',
        '  config: &base { seed: 7, tenants: 2 }',
        'destination:',
        '  connector: local',
        '  config: { <<: *base, seed: 8, directory: ./out }',
      ].join('\n'),
    );
    const sync = await readSyncFile(path);
    expect(sync.source.config).toEqual({ seed: 7, tenants: 2 });
    expect(sync.destination!.config).toEqual({ tenants: 2, seed: 8, directory: join(dir, 'out') });
  });
});
