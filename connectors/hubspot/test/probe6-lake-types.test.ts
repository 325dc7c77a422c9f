/**
 * HubSpot → event lake, in-process through runSync, from the simulator through the real
 * @hubspot/api-client: the top-level fields land in typed columns, the property values
 * (strings on the wire, typed by the source) keep their JSON types inside the `properties`
 * JSON column (see the README: the lake stores a nested object as one JSON column), nothing
 * the source emits is quarantined, and the lake's reader gives back exactly what the source
 * emitted. The lake mapping is the README's: one tenant per HubSpot account (`default_tenant`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import {
  configureCatalog,
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  type ConfiguredAirbyteCatalog,
  type RecordData,
} from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { hubspotSource } from '../src/index.js';
import { duck, syncHubspotIntoLake } from './lake-support.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();


/** Every record of `stream` the source emits, read directly (no runtime, no destination). */
async function sourceRecords(config: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog, stream: string): Promise<RecordData[]> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
  const records: RecordData[] = [];
  const parsed = parseConfig(hubspotSource.spec.connectionSpecification, config);
  for await (const m of expandRecordPages(hubspotSource.read(ctx, parsed, catalog, { streams: {} }))) if (m.kind === 'record' && m.stream === stream) records.push(m.data);
  return records;
}

it('HubSpot → lake: typed columns, nothing quarantined, values read back as emitted', async () => {
  const sim = await simulator({ searchLagMs: 0 });
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  const first = sim.create('contacts', { email: 'a@x.com', firstname: '', lastname: 'Ünï', num_notes: '7', hs_email_optout: 'true', lifecyclestage: 'lead', phone: '+1 (555) 000' }, t0);
  sim.create('contacts', { email: 'b@x.com', num_notes: '0.25', hs_email_optout: 'false' }, t0 + 1);
  const gone = sim.create('contacts', { email: 'c@x.com' }, t0 + 2);
  sim.archive('contacts', gone.id, t0 + 10);
  const company = sim.create('companies', { name: 'Co', numberofemployees: '1.5e3' }, t0);
  sim.create('deals', { dealname: 'D', amount: '1000.50', dealstage: 'closedwon', closedate: '2024-03-10T01:59:59.123+02:00' }, t0 + 3);
  sim.create('deals', { dealname: 'E', closedate: '1710035999123' }, t0 + 4);
  sim.associate('contacts', first.id, 'companies', company.id);

  const config = { access_token: sim.token, base_url: sim.url, object_types: ['contacts', 'deals'], associations: ['contacts:companies'], search_lag_seconds: 0 };
  const discovered = await hubspotSource.discover(createConnectorContext({}), parseConfig(hubspotSource.spec.connectionSpecification, config));
  const catalog = configureCatalog(
    discovered,
    [
      { name: 'contacts', sync_mode: 'incremental' },
      { name: 'deals', sync_mode: 'incremental' },
      { name: 'contacts_companies_associations', sync_mode: 'full_refresh' },
    ],
    ['append', 'append_dedup'],
  );
  const dir = await mkdtemp(join(tmpdir(), 'hubspot-lake-types-'));
  try {
    const { lake, files, columnsOf } = await syncHubspotIntoLake(dir, config, catalog);
    expect(await columnsOf('contacts')).toMatchObject({ id: 'VARCHAR', createdAt: 'VARCHAR', updatedAt: 'VARCHAR', archived: 'BOOLEAN', archivedAt: 'VARCHAR', properties: 'JSON' });
    expect(await columnsOf('contacts_companies_associations')).toMatchObject({ from_type: 'VARCHAR', from_id: 'VARCHAR', to_type: 'VARCHAR', to_id: 'VARCHAR' });

    const contacts = await duck(
      `SELECT id, archived, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%gZ') = updatedAt AS event_time_is_cursor,
              json_type(properties, '$.num_notes') AS notes_type, properties->>'$.num_notes' AS notes,
              json_type(properties, '$.hs_email_optout') AS optout_type, properties->>'$.firstname' AS firstname, properties->>'$.lastname' AS lastname,
              json_type(properties, '$.hs_object_id') AS object_id_type
       FROM ${files('contacts')} ORDER BY id`,
    );
    expect(contacts).toEqual([
      { id: String(first.id), archived: false, event_time_is_cursor: true, notes_type: 'UBIGINT', notes: '7', optout_type: 'BOOLEAN', firstname: null, lastname: 'Ünï', object_id_type: 'UBIGINT' },
      { id: String(first.id + 1), archived: false, event_time_is_cursor: true, notes_type: 'DOUBLE', notes: '0.25', optout_type: 'BOOLEAN', firstname: null, lastname: null, object_id_type: 'UBIGINT' },
      // Archived: the lake row is an update carrying archived = true (see the README).
      { id: String(gone.id), archived: true, event_time_is_cursor: true, notes_type: 'NULL', notes: null, optout_type: 'NULL', firstname: null, lastname: null, object_id_type: 'UBIGINT' },
    ]);
    const deals = await duck(`SELECT properties->>'$.dealname' AS name, properties->>'$.amount' AS amount, properties->>'$.closedate' AS closedate FROM ${files('deals')} ORDER BY name`);
    expect(deals).toEqual([
      // Date-times with an offset or as epoch milliseconds become the same instant in UTC, milliseconds kept.
      { name: 'D', amount: '1000.5', closedate: '2024-03-09T23:59:59.123Z' },
      { name: 'E', amount: null, closedate: '2024-03-10T01:59:59.123Z' },
    ]);

    // The lake's reader returns each record as the source emitted it.
    for (const stream of ['contacts', 'deals', 'contacts_companies_associations']) {
      const emitted = await sourceRecords(config, catalog, stream);
      const stored = (await readLatestAsOf(lake, { stream })).map((r) => r.payload);
      const order = (a: RecordData, b: RecordData): number => JSON.stringify(a).localeCompare(JSON.stringify(b));
      expect({ stream, records: stored.sort(order) }).toEqual({ stream, records: emitted.sort(order) });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
