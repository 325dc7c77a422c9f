/**
 * `property_columns`: each property of an object stream is also emitted as a top-level field
 * `properties_<name>` (Airbyte's HubSpot source does so too), declared in the discovered
 * schema with the type the property has inside `properties`, so that the event lake stores
 * it in a typed column of its own instead of only inside the `properties` JSON column.
 * Everything runs against the simulator through the real @hubspot/api-client; the lake's
 * files are read by an independent DuckDB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compileSchema,
  configureCatalog,
  createConnectorContext,
  createLogger,
  describeSchemaErrors,
  expandRecordPages,
  parseConfig,
  type AirbyteCatalog,
  type ConfiguredAirbyteCatalog,
  type JsonSchemaObject,
  type Logger,
  type RecordData,
} from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { hubspotSource } from '../src/index.js';
import type { HubspotSimulator } from '../src/simulator/index.js';
import { duck, syncHubspotIntoLake } from './lake-support.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();
const t0 = Date.parse('2024-01-01T00:00:00Z');
const RECORD_FIELDS = ['id', 'createdAt', 'updatedAt', 'archived', 'archivedAt', 'properties'];

interface Seeded {
  first: number;
  second: number;
  gone: number;
  mergedAway: number[];
  survivor: number;
}

/** Contacts with typed values (number, bool, enumeration, empty text), an archive and a merge; deals with numbers and date-times; one association. */
function seed(sim: HubspotSimulator): Seeded {
  const first = sim.create('contacts', { email: 'a@x.com', firstname: '', lastname: 'Ünï', num_notes: '7', hs_email_optout: 'true', lifecyclestage: 'lead', phone: '+1 (555) 000' }, t0);
  const second = sim.create('contacts', { email: 'b@x.com', num_notes: '0.25', hs_email_optout: 'false' }, t0 + 1);
  const gone = sim.create('contacts', { email: 'c@x.com' }, t0 + 2);
  sim.archive('contacts', gone.id, t0 + 10);
  const m1 = sim.create('contacts', { email: 'm1@x.com', num_notes: '1' }, t0 + 3);
  const m2 = sim.create('contacts', { email: 'm2@x.com', lifecyclestage: 'customer' }, t0 + 4);
  const survivor = sim.merge('contacts', m1.id, m2.id, t0 + 20);
  const company = sim.create('companies', { name: 'Co', numberofemployees: '1.5e3' }, t0);
  sim.create('deals', { dealname: 'D', amount: '1000.50', dealstage: 'closedwon', closedate: '2024-03-10T01:59:59.123+02:00' }, t0 + 3);
  sim.create('deals', { dealname: 'E', closedate: '1710035999123' }, t0 + 4);
  sim.associate('contacts', first.id, 'companies', company.id);
  return { first: first.id, second: second.id, gone: gone.id, mergedAway: [m1.id, m2.id], survivor: survivor.id };
}

function configOf(sim: HubspotSimulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { access_token: sim.token, base_url: sim.url, object_types: ['contacts', 'deals'], associations: ['contacts:companies'], search_lag_seconds: 0, ...extra };
}

async function discover(config: Record<string, unknown>, logger?: Logger): Promise<AirbyteCatalog> {
  return hubspotSource.discover(createConnectorContext(logger ? { logger } : {}), parseConfig(hubspotSource.spec.connectionSpecification, config));
}

function schemaOf(catalog: AirbyteCatalog, stream: string): JsonSchemaObject {
  return catalog.streams.find((s) => s.name === stream)!.json_schema;
}

/** Every discovered stream: object streams in `mode`, association streams full refresh. */
function catalogOf(discovered: AirbyteCatalog, mode: 'incremental' | 'full_refresh'): ConfiguredAirbyteCatalog {
  const streams = discovered.streams.map((s) => ({ name: s.name, sync_mode: s.name.endsWith('_associations') ? ('full_refresh' as const) : mode }));
  return configureCatalog(discovered, streams, ['append', 'append_dedup']);
}

/** Every record the source emits per stream, read directly (no runtime, no destination). */
async function read(config: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog): Promise<Map<string, RecordData[]>> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
  const out = new Map<string, RecordData[]>();
  const parsed = parseConfig(hubspotSource.spec.connectionSpecification, config);
  for await (const m of expandRecordPages(hubspotSource.read(ctx, parsed, catalog, { streams: {} }))) {
    if (m.kind === 'record') out.set(m.stream, [...(out.get(m.stream) ?? []), m.data]);
  }
  return out;
}

const propertyFieldsOf = (record: RecordData): Record<string, unknown> => Object.fromEntries(Object.entries(record).filter(([field]) => field.startsWith('properties_')));
const withoutPropertyFields = (record: RecordData): RecordData => Object.fromEntries(Object.entries(record).filter(([field]) => !field.startsWith('properties_')));
/** The properties a stream's schema declares (inside `properties`). */
const declaredProperties = (schema: JsonSchemaObject): string[] => Object.keys((schema.properties as { properties: { properties: Record<string, unknown> } }).properties.properties);
/** What the property fields of `record` must be: each declared property's nested value, null where `properties` lacks it. */
const nestedAsFields = (record: RecordData, names: readonly string[]): Record<string, unknown> =>
  Object.fromEntries(names.map((name) => [`properties_${name}`, (record.properties as Record<string, unknown>)[name] ?? null]));

function schemaProblems(schema: JsonSchemaObject, record: RecordData): string[] {
  const validate = compileSchema(schema);
  return validate(structuredClone(record)) ? [] : describeSchemaErrors(validate.errors, 'record');
}

describe('hubspot source: property_columns', () => {
  it('discover declares properties_<name> for every property, with the schema the property has inside properties (a number property: numbers only)', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const discovered = await discover(configOf(sim, { property_columns: true }));
    for (const stream of ['contacts', 'deals']) {
      const schema = schemaOf(discovered, stream);
      const top = schema.properties as Record<string, JsonSchemaObject>;
      const nested = (top.properties as { properties: Record<string, JsonSchemaObject> }).properties;
      expect(Object.keys(nested).length).toBeGreaterThan(5);
      expect({ stream, fields: Object.keys(top).sort() }).toEqual({ stream, fields: [...RECORD_FIELDS, ...Object.keys(nested).map((n) => `properties_${n}`)].sort() });
      // A number property's field holds the nearest double; its exact decimal text, where a
      // double would change the value, stays in `properties` (see probe11-exact-numbers).
      const fieldSchema = (property: JsonSchemaObject): JsonSchemaObject => (Array.isArray(property.type) && property.type.includes('number') ? { type: ['number', 'null'] } : property);
      for (const [name, property] of Object.entries(nested)) expect({ stream, name, schema: top[`properties_${name}`] }).toEqual({ stream, name, schema: fieldSchema(property) });
      expect(schema.required).toEqual(['id', 'createdAt', 'updatedAt', 'archived', 'properties']);
    }
    const contacts = schemaOf(discovered, 'contacts').properties as Record<string, JsonSchemaObject>;
    expect(contacts).toMatchObject({
      properties_num_notes: { type: ['number', 'null'] },
      properties_hs_object_id: { type: ['number', 'null'] },
      properties_hs_email_optout: { type: ['boolean', 'null'] },
      properties_lastmodifieddate: { type: ['string', 'null'], format: 'date-time' },
      properties_lifecyclestage: { type: ['string', 'null'] },
      properties_email: { type: ['string', 'null'] },
    });
    expect(schemaOf(discovered, 'deals').properties).toMatchObject({ properties_amount: { type: ['number', 'null'] }, properties_closedate: { type: ['string', 'null'], format: 'date-time' } });
    // Association streams have no properties: unchanged.
    expect(Object.keys(schemaOf(discovered, 'contacts_companies_associations').properties ?? {})).toEqual(['from_type', 'from_id', 'to_type', 'to_id']);
  });

  it('records carry properties_<name> equal to properties.<name> and validate against the declared schema (full refresh; incremental with archive and merge)', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const ids = seed(sim);
    const config = configOf(sim, { property_columns: true });
    const discovered = await discover(config);
    for (const mode of ['full_refresh', 'incremental'] as const) {
      const records = await read(config, catalogOf(discovered, mode));
      for (const stream of ['contacts', 'deals']) {
        const emitted = records.get(stream) ?? [];
        const names = declaredProperties(schemaOf(discovered, stream));
        expect(emitted.length).toBeGreaterThan(1);
        for (const record of emitted) {
          // Only a merged-away id's deletion lacks properties: every other record has each declared one, so its fields are compared value by value.
          if (Object.keys(record.properties as object).length > 0) expect(Object.keys(record.properties as object).sort()).toEqual([...names].sort());
          expect({ mode, stream, id: record.id, fields: propertyFieldsOf(record) }).toEqual({ mode, stream, id: record.id, fields: nestedAsFields(record, names) });
          expect({ mode, stream, id: record.id, problems: schemaProblems(schemaOf(discovered, stream), record) }).toEqual({ mode, stream, id: record.id, problems: [] });
        }
      }
      const contacts = new Map((records.get('contacts') ?? []).map((r) => [String(r.id), r]));
      expect(contacts.get(String(ids.first))).toMatchObject({ properties_num_notes: 7, properties_hs_email_optout: true, properties_firstname: null, properties_lastname: 'Ünï', properties_lifecyclestage: 'lead', properties_hs_object_id: ids.first });
      expect(contacts.get(String(ids.second))).toMatchObject({ properties_num_notes: 0.25, properties_hs_email_optout: false });
      expect(contacts.get(String(ids.survivor))).toMatchObject({ properties_email: expect.any(String), properties_hs_merged_object_ids: expect.any(String) });
      const deals = records.get('deals')!.map((r) => propertyFieldsOf(r));
      expect(deals).toContainEqual(expect.objectContaining({ properties_dealname: 'D', properties_amount: 1000.5, properties_closedate: '2024-03-09T23:59:59.123Z' }));
      expect(records.get('contacts_companies_associations')).toEqual([{ from_type: 'contacts', from_id: String(ids.first), to_type: 'companies', to_id: expect.any(String) }]);
      if (mode === 'incremental') {
        // The archive carries its properties as fields too; a merged-away id's deletion has no properties, so null fields.
        expect(contacts.get(String(ids.gone))).toMatchObject({ archived: true, properties_email: 'c@x.com' });
        for (const id of ids.mergedAway) {
          const deletion = contacts.get(String(id))!;
          expect(deletion).toMatchObject({ archived: true, properties: {}, properties_email: null, properties_hs_object_id: null });
          expect(new Set(Object.values(propertyFieldsOf(deletion)))).toEqual(new Set([null]));
        }
      }
    }
  });

  it('event lake: each property lands in a typed column, nothing quarantined, values read back as emitted', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const ids = seed(sim);
    const config = configOf(sim, { property_columns: true });
    const catalog = catalogOf(await discover(config), 'incremental');
    const dir = await mkdtemp(join(tmpdir(), 'hubspot-property-columns-'));
    try {
      const { lake, files, columnsOf } = await syncHubspotIntoLake(dir, config, catalog);
      expect(await columnsOf('contacts')).toMatchObject({
        id: 'VARCHAR',
        archived: 'BOOLEAN',
        properties: 'JSON',
        properties_num_notes: 'DOUBLE',
        properties_hs_object_id: 'DOUBLE',
        properties_hs_email_optout: 'BOOLEAN',
        properties_email: 'VARCHAR',
        properties_lifecyclestage: 'VARCHAR',
        // ISO text: the lake has no date-time column type.
        properties_lastmodifieddate: 'VARCHAR',
        properties_createdate: 'VARCHAR',
      });
      expect(await columnsOf('deals')).toMatchObject({ properties_amount: 'DOUBLE', properties_dealname: 'VARCHAR', properties_dealstage: 'VARCHAR', properties_closedate: 'VARCHAR', properties: 'JSON' });
      expect(await columnsOf('contacts_companies_associations')).toMatchObject({ from_type: 'VARCHAR', from_id: 'VARCHAR', to_type: 'VARCHAR', to_id: 'VARCHAR' });

      const contacts = await duck(
        `SELECT id, properties_num_notes AS notes, properties_hs_email_optout AS optout, properties_firstname AS firstname, properties_lastname AS lastname,
                properties_lifecyclestage AS stage, properties_num_notes = CAST(properties->>'$.num_notes' AS DOUBLE) AS notes_as_nested
         FROM ${files('contacts')} WHERE id IN ('${ids.first}', '${ids.second}') ORDER BY id`,
      );
      expect(contacts).toEqual([
        { id: String(ids.first), notes: 7, optout: true, firstname: null, lastname: 'Ünï', stage: 'lead', notes_as_nested: true },
        { id: String(ids.second), notes: 0.25, optout: false, firstname: null, lastname: null, stage: null, notes_as_nested: true },
      ]);
      const deals = await duck(`SELECT properties_dealname AS name, properties_amount AS amount, properties_closedate AS closedate FROM ${files('deals')} ORDER BY name`);
      expect(deals).toEqual([
        { name: 'D', amount: 1000.5, closedate: '2024-03-09T23:59:59.123Z' },
        { name: 'E', amount: null, closedate: '2024-03-10T01:59:59.123Z' },
      ]);

      // The lake's reader returns each record as the source emitted it, property fields included.
      const emitted = await read(config, catalog);
      for (const stream of ['contacts', 'deals', 'contacts_companies_associations']) {
        const stored = (await readLatestAsOf(lake, { stream })).map((r) => r.payload);
        const order = (a: RecordData, b: RecordData): number => JSON.stringify(a).localeCompare(JSON.stringify(b));
        expect({ stream, records: stored.sort(order) }).toEqual({ stream, records: [...(emitted.get(stream) ?? [])].sort(order) });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('off (the default, or false): the schema and the records are what they were, with no properties_<name> fields', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    seed(sim);
    const byDefault = await discover(configOf(sim));
    const off = await discover(configOf(sim, { property_columns: false }));
    const on = await discover(configOf(sim, { property_columns: true }));
    expect(off).toEqual(byDefault);
    for (const stream of ['contacts', 'deals']) {
      expect(Object.keys(schemaOf(byDefault, stream).properties ?? {})).toEqual(RECORD_FIELDS);
      // The option only adds the property fields.
      const onSchema = schemaOf(on, stream);
      expect({ ...onSchema, properties: withoutPropertyFields(onSchema.properties as RecordData) }).toEqual(schemaOf(byDefault, stream));
    }
    for (const mode of ['full_refresh', 'incremental'] as const) {
      const plain = await read(configOf(sim), catalogOf(byDefault, mode));
      const flattened = await read(configOf(sim, { property_columns: true }), catalogOf(on, mode));
      for (const stream of ['contacts', 'deals', 'contacts_companies_associations']) {
        const records = plain.get(stream) ?? [];
        expect(records.length).toBeGreaterThan(0);
        for (const record of records) expect(Object.keys(record).filter((f) => f.startsWith('properties_'))).toEqual([]);
        expect({ mode, stream, records: (flattened.get(stream) ?? []).map(withoutPropertyFields) }).toEqual({ mode, stream, records });
      }
    }
  });

  it('properties whose field names collide ignoring letter case get no field (values stay in properties), with a warning naming them', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    // Two properties whose fields would be one column in a case-insensitive destination (DuckDB, the lake).
    sim.defineProperty('contacts', { name: 'Num_Notes', label: 'Notes (text)', type: 'string', fieldType: 'text', groupName: 'contactinformation' });
    const contact = sim.create('contacts', { email: 'a@x.com', num_notes: '3', Num_Notes: 'three' }, t0);
    const config = configOf(sim, { property_columns: true, object_types: ['contacts'], associations: [] });
    const warnings: string[] = [];
    const discovered = await discover(config, createLogger((level, message) => void (level === 'WARN' && warnings.push(message))));
    const top = schemaOf(discovered, 'contacts').properties as Record<string, JsonSchemaObject>;
    expect(top.properties_num_notes).toBeUndefined();
    expect(top.properties_Num_Notes).toBeUndefined();
    expect(top.properties_email).toEqual({ type: ['string', 'null'] });
    expect(Object.keys((top.properties as { properties: Record<string, unknown> }).properties)).toEqual(expect.arrayContaining(['num_notes', 'Num_Notes']));
    expect(warnings).toEqual([expect.stringContaining('Num_Notes, num_notes')]);

    for (const mode of ['full_refresh', 'incremental'] as const) {
      const [record] = (await read(config, catalogOf(discovered, mode))).get('contacts') ?? [];
      expect(record).toMatchObject({ id: String(contact.id), properties: { num_notes: 3, Num_Notes: 'three' }, properties_email: 'a@x.com' });
      expect(Object.keys(record!).filter((f) => f.toLowerCase() === 'properties_num_notes')).toEqual([]);
      expect(schemaProblems(schemaOf(discovered, 'contacts'), record!)).toEqual([]);
    }
  });
});
