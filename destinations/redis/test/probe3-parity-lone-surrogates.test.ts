/**
 * Feature values holding a lone UTF-16 surrogate: JSON carries them and Redis keeps them
 * (value-codec.ts stores such a string as JSON text), but the event lake stores text as
 * UTF-8, where each becomes U+FFFD (its README). The parity check compared the two strings
 * as they were and reported `values_differ` for values both stores received identically.
 * Real redis-server, real lake on local disk, real runtime (runSync).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type AirbyteStream, type RecordData } from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { compareOnlineOffline, createFeatureLookup, offlineRowFromLake, redisConfigSchema, resolveMapping, sameValue } from '../src/index.js';
import { keyedStream, syncIntoLakeAndRedis, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-parity-surrogates-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const stream: AirbyteStream = {
  name: 'notes',
  json_schema: { type: 'object', properties: { id: { type: 'string' }, tenant_id: { type: 'string' }, updated_at: { type: 'string', format: 'date-time' } } },
  supported_sync_modes: ['incremental'],
  source_defined_cursor: true,
  default_cursor_field: ['updated_at'],
  source_defined_primary_key: [['id']],
};

describe('parity with lone surrogates in feature values', () => {
  it('values both stores received identically are in parity: strings, nested strings and nested keys', async () => {
    const records: RecordData[] = [
      { id: 'n1', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00Z', text: 'x\ud800y', tail: 'end\udfff' },
      { id: 'n2', tenant_id: 'acme', updated_at: '2025-01-01T00:00:00Z', meta: { note: 'a\udc00', 'k\ud801': 1 }, tags: ['\ud83d', 'ok'] },
    ];
    const { lakeConfig, redisConfig } = await syncIntoLakeAndRedis({ dir, port: peer.server.port, name: 'plsur', stream, cursorField: ['updated_at'], records });

    // Redis serves the values as the records held them.
    const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: 'plsur' });
    try {
      const [n1, n2] = await lookup.getMany({ tenant: 'acme', entityType: 'notes', entityIds: ['n1', 'n2'] });
      expect(n1!.groups.notes!.features.text).toBe('x\ud800y');
      expect(n2!.groups.notes!.features.meta).toEqual({ note: 'a\udc00', 'k\ud801': 1 });
    } finally {
      await lookup.close();
    }

    const mapping = resolveMapping(parseConfig(redisConfigSchema, redisConfig), keyedStream('notes'));
    const rows = await readLatestAsOf(lakeConfig, { stream: 'notes', includeDeleted: true });
    const report = await compareOnlineOffline({ client: peer.client, prefix: 'plsur', mapping, offline: rows.map(offlineRowFromLake) });
    expect(report.samples).toEqual([]);
    expect(report).toMatchObject({ ok: true, matching: 2, offlineEntities: 2 });
  });

  it('a lone surrogate compares as the U+FFFD UTF-8 gives it, and nothing else', () => {
    expect(sameValue('x\ud800y', 'x\ufffdy')).toBe(true);
    expect(sameValue({ 'k\ud801': ['\udfff'] }, { 'k\ufffd': ['\ufffd'] })).toBe(true);
    // Still a difference: other text, or a U+FFFD where Redis holds a well-formed character.
    expect(sameValue('x\ud800y', 'z\ufffdy')).toBe(false);
    expect(sameValue('x\ud83d\ude00', 'x\ufffd\ufffd')).toBe(false);
    expect(sameValue({ 'k\ud801': 1 }, { k: 1 })).toBe(false);
  });
});
