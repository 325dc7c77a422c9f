import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { airbyteProtocolSchemaPath, validateAirbyteDefinition, validateAirbyteMessage } from '@tributary/conformance';

describe('validateAirbyteMessage', () => {
  it('validates against the shared Airbyte protocol schema (bundled into dist by the build)', () => {
    const path = airbyteProtocolSchemaPath();
    expect(path).toMatch(/(conformance\/dist|shared\/specs)\/airbyte_protocol_v0\.yaml$/);
    expect(existsSync(path)).toBe(true);
    const shared = fileURLToPath(new URL('../../../shared/specs/airbyte_protocol_v0.yaml', import.meta.url));
    expect(readFileSync(path, 'utf8')).toBe(readFileSync(shared, 'utf8'));
  });

  it('accepts well-formed messages of every type Tributary prints', () => {
    const messages: unknown[] = [
      { type: 'RECORD', record: { stream: 'contacts', data: { id: 1 }, emitted_at: 1_700_000_000_000 } },
      { type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'contacts' }, stream_state: { cursor: 'x' } } } },
      { type: 'STATE', state: { type: 'GLOBAL', global: { shared_state: { lsn: '0/1' }, stream_states: [] } } },
      { type: 'SPEC', spec: { connectionSpecification: { type: 'object' }, documentationUrl: 'https://example.com/docs' } },
      { type: 'CATALOG', catalog: { streams: [{ name: 'contacts', json_schema: {}, supported_sync_modes: ['full_refresh'] }] } },
      { type: 'CONNECTION_STATUS', connectionStatus: { status: 'FAILED', message: 'bad password' } },
      { type: 'TRACE', trace: { type: 'ERROR', emitted_at: 1, error: { message: 'boom', failure_type: 'config_error' } } },
      { type: 'LOG', log: { level: 'INFO', message: 'hello' } },
    ];
    for (const message of messages) expect(validateAirbyteMessage(message), JSON.stringify(message)).toEqual([]);
    expect(validateAirbyteMessage(JSON.stringify(messages[0]))).toEqual([]);
  });

  it('names the problem in malformed messages', () => {
    expect(validateAirbyteMessage({ type: 'RECORD' })).toEqual(['AirbyteMessage of type RECORD has no "record"']);
    expect(validateAirbyteMessage({ type: 'RECORD', record: { stream: 's', data: {}, emitted_at: 1.5 } }).join()).toMatch(/emitted_at must be integer/);
    expect(validateAirbyteMessage({ type: 'RECORD', record: { stream: 's', data: [], emitted_at: 1 } }).join()).toMatch(/data must be object/);
    expect(validateAirbyteMessage({ type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 's' }, stream_state: 'x' } } }).join()).toMatch(
      /stream_state must be object/,
    );
    expect(validateAirbyteMessage({ type: 'BANANA' }).join()).toMatch(/type must be equal to one of the allowed values/);
    expect(validateAirbyteMessage('{not json').join()).toMatch(/not a JSON line/);
    expect(validateAirbyteMessage({ type: 'SPEC', spec: { connectionSpecification: {}, documentationUrl: 'not a uri' } }).join()).toMatch(/documentationUrl must match format "uri"/);
  });

  it('validates other protocol definitions and leaves the input untouched', () => {
    const configured = { streams: [{ stream: { name: 's', json_schema: {}, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] };
    const before = JSON.stringify(configured);
    expect(validateAirbyteDefinition('ConfiguredAirbyteCatalog', configured)).toEqual([]);
    expect(JSON.stringify(configured)).toBe(before);
    expect(validateAirbyteDefinition('ConfiguredAirbyteCatalog', { streams: [{ stream: { name: 's' } }] }).length).toBeGreaterThan(0);
    expect(() => validateAirbyteDefinition('NoSuchThing', {})).toThrow(/no definition "NoSuchThing"/);
  });
});
