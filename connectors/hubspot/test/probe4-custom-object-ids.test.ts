// Custom objects by their object type id: HubSpot's object endpoints take `{objectTypeId}`
// (`2-3465` for a custom object, `0-1` for contacts) as well as names, and the README says
// custom objects work as `object_types` entries "by their type id or name". The config
// refused every type id (a pattern without `-`). Against the simulator serving a custom
// object type, through the real @hubspot/api-client.
import { describe, expect, it } from 'vitest';
import { createConnectorContext, expandRecordPages, parseConfig, type SourceMessage } from '@tributary/core';
import { hubspotSource } from '../src/index.js';
import { modifiedPropertyOf } from '../src/source/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

describe('hubspot source: custom objects by type id', () => {
  it('reads a custom object named by its type id, incrementally, and its associations', async () => {
    const sim = await simulator({ searchLagMs: 0, objectTypes: ['contacts', '2-3465'] });
    const contact = sim.create('contacts', { email: 'ann@example.com' });
    const cars = [sim.create('2-3465', { name: 'Car 1' }), sim.create('2-3465', { name: 'Car 2' })];
    sim.associate('contacts', contact.id, '2-3465', cars[1]!.id);
    await new Promise((r) => setTimeout(r, 5));

    const config = parseConfig(hubspotSource.spec.connectionSpecification, {
      access_token: sim.token,
      base_url: sim.url,
      object_types: ['2-3465', 'contacts'],
      associations: ['contacts:2-3465'],
      search_lag_seconds: 0,
    }) as never;
    const discovered = await hubspotSource.discover(createConnectorContext({}), config);
    expect(discovered.streams.map((s) => s.name)).toEqual(['2-3465', 'contacts', 'contacts_2-3465_associations']);
    const byName = (name: string) => discovered.streams.find((s) => s.name === name)!;
    const catalog = {
      streams: [
        { stream: byName('2-3465'), sync_mode: 'incremental' as const, destination_sync_mode: 'append_dedup' as const, cursor_field: ['updatedAt'], primary_key: [['id']] },
        { stream: byName('contacts_2-3465_associations'), sync_mode: 'full_refresh' as const, destination_sync_mode: 'overwrite' as const },
      ],
    };
    const records: Array<{ stream: string; data: Record<string, unknown> }> = [];
    const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
    for await (const m of expandRecordPages(hubspotSource.read(ctx, config, catalog, { streams: {} }) as AsyncIterable<SourceMessage>)) {
      if (m.kind === 'record') records.push({ stream: m.stream, data: m.data });
    }
    expect(records.filter((r) => r.stream === '2-3465').map((r) => r.data.id)).toEqual(cars.map((c) => String(c.id)));
    expect(records.filter((r) => r.stream === 'contacts_2-3465_associations').map((r) => r.data)).toEqual([
      { from_type: 'contacts', from_id: String(contact.id), to_type: '2-3465', to_id: String(cars[1]!.id) },
    ]);
  }, 30_000);

  it('contacts by their type id (0-1) are searched on lastmodifieddate, as contacts are; names may hold capitals', () => {
    expect(modifiedPropertyOf('0-1')).toBe('lastmodifieddate');
    expect(() => parseConfig(hubspotSource.spec.connectionSpecification, { access_token: 'pat-x', object_types: ['0-1', 'p12345_Cars'] })).not.toThrow();
    expect(() => parseConfig(hubspotSource.spec.connectionSpecification, { access_token: 'pat-x', object_types: ['2-'] })).toThrow(/must match pattern/);
  });
});
