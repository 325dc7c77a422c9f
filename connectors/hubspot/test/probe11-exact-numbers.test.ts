/**
 * HubSpot number properties hold any decimal, sent as text: amounts, counts, and ids from
 * other systems with 17 or more digits. The source turned every value into a double, so
 * `"97315873439065651"` came out as 97315873439065648 (printed 97315873439065650) and
 * `"0.12345678901234567891"` as 0.12345678901234568. Now a value a double would change is
 * emitted as its exact decimal text (declared in the schema), everything a double holds stays
 * a number, and `property_columns` fields stay numbers (the lake's DOUBLE columns do not
 * change). Everything runs against the simulator through the real @hubspot/api-client; the
 * lake's files are read by an independent DuckDB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compileSchema,
  configureCatalog,
  createConnectorContext,
  describeSchemaErrors,
  expandRecordPages,
  parseConfig,
  runWriter,
  type AirbyteCatalog,
  type ConfiguredAirbyteCatalog,
  type JsonSchemaObject,
  type RecordData,
} from '@tributary/core';
import { readLatestAsOf } from '@tributary/destination-lake';
import { hubspotSource, hubspotWriter } from '../src/index.js';
import type { HubspotSimulator } from '../src/simulator/index.js';
import { duck, syncHubspotIntoLake } from './lake-support.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();
const t0 = Date.parse('2024-01-01T00:00:00Z');

/** [value HubSpot sends, value the record carries]: text where a double would change the value. */
const WIDE: ReadonlyArray<readonly [string, string]> = [
  ['97315873439065650', '97315873439065650'],
  ['97315873439065651', '97315873439065651'],
  ['-12345678901234567890', '-12345678901234567890'],
  ['9007199254740993', '9007199254740993'],
  // Integers beyond ±2^53 are always text, in plain notation, also the few a double holds.
  ['1e20', '100000000000000000000'],
  ['0.12345678901234567891', '0.12345678901234567891'],
  // Between 2^52 and 2^53 a double holds no halves: 4503599627370498 would drop the .5.
  ['4503599627370497.5', '4503599627370497.5'],
  ['000123456789012345678.50', '123456789012345678.5'],
];
/** Values a double holds (its shortest form is the decimal sent): numbers, as before. */
const ORDINARY: ReadonlyArray<readonly [string, number]> = [
  ['9007199254740991', 9007199254740991],
  ['1234567890123456', 1234567890123456],
  ['0.1', 0.1],
  ['1000.50', 1000.5],
  ['1.5e3', 1500],
  ['-0.25', -0.25],
  ['7', 7],
  ['0.30000000000000004', 0.30000000000000004],
];
const ALL: ReadonlyArray<readonly [string, number | string]> = [...WIDE, ...ORDINARY];

const ERP_ID = { name: 'erp_id', label: 'ERP id', type: 'number', fieldType: 'number', groupName: 'contactinformation' } as const;

/** A simulator with the custom number property `erp_id` on contacts. */
async function start(): Promise<HubspotSimulator> {
  const sim = await simulator({ searchLagMs: 0 });
  sim.defineProperty('contacts', ERP_ID);
  return sim;
}

/** One contact per value, `erp_id` = the value sent, emails `v<i>@x.com` (i from `from`). */
function seed(sim: HubspotSimulator, values: ReadonlyArray<readonly [string, unknown]>, from = 0): void {
  values.forEach(([sent], i) => sim.create('contacts', { email: `v${from + i}@x.com`, erp_id: sent }, t0 + from + i));
}

function configOf(sim: HubspotSimulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { access_token: sim.token, base_url: sim.url, object_types: ['contacts'], associations: [], search_lag_seconds: 0, ...extra };
}

async function discover(config: Record<string, unknown>): Promise<AirbyteCatalog> {
  return hubspotSource.discover(createConnectorContext({}), parseConfig(hubspotSource.spec.connectionSpecification, config));
}

/** Every contact record the source emits, by email. */
async function readContacts(config: Record<string, unknown>, catalog: ConfiguredAirbyteCatalog): Promise<Map<string, RecordData>> {
  const ctx = createConnectorContext({ rateLimit: hubspotSource.rateLimit, retry: hubspotSource.retry });
  const out = new Map<string, RecordData>();
  const parsed = parseConfig(hubspotSource.spec.connectionSpecification, config);
  for await (const m of expandRecordPages(hubspotSource.read(ctx, parsed, catalog, { streams: {} }))) {
    if (m.kind === 'record') out.set((m.data.properties as { email: string }).email, m.data);
  }
  return out;
}

const erpIdOf = (record: RecordData | undefined): unknown => (record?.properties as Record<string, unknown> | undefined)?.erp_id;
const schemaOf = (catalog: AirbyteCatalog): JsonSchemaObject => catalog.streams.find((s) => s.name === 'contacts')!.json_schema;

/**
 * The schema a number property had before this fix: `number` only, inside `properties` and
 * in its field. What an existing lake registered.
 */
function schemaBeforeFix(schema: JsonSchemaObject): JsonSchemaObject {
  const out = structuredClone(schema);
  const top = out.properties as Record<string, JsonSchemaObject>;
  const nested = (top.properties as { properties: Record<string, JsonSchemaObject> }).properties;
  for (const [name, property] of Object.entries(nested)) {
    if (!Array.isArray(property.type) || !property.type.includes('number')) continue;
    nested[name] = { type: ['number', 'null'] };
    if (top[`properties_${name}`]) top[`properties_${name}`] = { type: ['number', 'null'] };
  }
  return out;
}

describe('hubspot: number property values a double cannot hold', () => {
  it('the source emits them as their exact decimal text (full refresh and incremental), the rest as numbers, all valid against the discovered schema', async () => {
    const sim = await start();
    seed(sim, ALL);
    for (const propertyColumns of [false, true]) {
      const config = configOf(sim, { property_columns: propertyColumns });
      const discovered = await discover(config);
      const schema = schemaOf(discovered);
      const validate = compileSchema(schema);
      for (const mode of ['full_refresh', 'incremental'] as const) {
        const records = await readContacts(config, configureCatalog(discovered, [{ name: 'contacts', sync_mode: mode }], ['append']));
        const got = ALL.map(([sent], i) => ({ sent, erp_id: erpIdOf(records.get(`v${i}@x.com`)) }));
        expect({ mode, propertyColumns, got }).toEqual({ mode, propertyColumns, got: ALL.map(([sent, emitted]) => ({ sent, erp_id: emitted })) });
        for (const record of records.values()) {
          expect({ mode, id: record.id, problems: validate(structuredClone(record)) ? [] : describeSchemaErrors(validate.errors, 'record') }).toEqual({ mode, id: record.id, problems: [] });
          // The typed field holds the nearest double of the exact value.
          const exact = erpIdOf(record);
          if (propertyColumns) expect({ mode, id: record.id, field: record.properties_erp_id }).toEqual({ mode, id: record.id, field: exact === undefined ? null : Number(exact) });
          else expect(record).not.toHaveProperty('properties_erp_id');
        }
      }
      const nested = ((schema.properties as Record<string, JsonSchemaObject>).properties as { properties: Record<string, JsonSchemaObject> }).properties;
      expect(nested.erp_id).toMatchObject({ type: ['number', 'string', 'null'], pattern: expect.any(String) });
      if (propertyColumns) expect((schema.properties as Record<string, JsonSchemaObject>).properties_erp_id).toEqual({ type: ['number', 'null'] });
    }
  });

  it('HubSpot → lake: the properties JSON column keeps every digit, properties_erp_id stays a DOUBLE column (also in a lake written before), nothing quarantined', async () => {
    const sim = await start();
    seed(sim, ORDINARY);
    const config = configOf(sim, { property_columns: true });
    const discovered = await discover(config);
    const dir = await mkdtemp(join(tmpdir(), 'hubspot-exact-numbers-'));
    try {
      // A lake written before the fix: its stream schema had `number` only.
      const before = { streams: discovered.streams.map((s) => (s.name === 'contacts' ? { ...s, json_schema: schemaBeforeFix(s.json_schema) } : s)) };
      await syncHubspotIntoLake(dir, config, configureCatalog(before, [{ name: 'contacts', sync_mode: 'full_refresh' }], ['append']));
      seed(sim, WIDE, ORDINARY.length);
      const catalog = configureCatalog(discovered, [{ name: 'contacts', sync_mode: 'full_refresh' }], ['append']);
      const { lake, files, columnsOf } = await syncHubspotIntoLake(dir, config, catalog);
      expect(await columnsOf('contacts')).toMatchObject({ properties: 'JSON', properties_erp_id: 'DOUBLE', properties_num_notes: 'DOUBLE', properties_hs_object_id: 'DOUBLE' });

      // Both syncs were full refreshes: the first one's rows are there twice, alike.
      const rows = await duck(
        `SELECT DISTINCT properties->>'$.email' AS email, properties->>'$.erp_id' AS text,
                properties_erp_id = CAST(properties->>'$.erp_id' AS DOUBLE) AS field_is_nearest_double
         FROM ${files('contacts')} ORDER BY email`,
      );
      const byEmail = new Map(rows.map(({ email, ...rest }) => [email as string, rest]));
      const order = [...ORDINARY, ...WIDE];
      expect(rows.length).toBe(order.length);
      // DuckDB reads the digits HubSpot sent (JSON writes a number as its shortest form).
      expect(order.map(([sent], i) => ({ sent, ...byEmail.get(`v${i}@x.com`) }))).toEqual(order.map(([sent, emitted]) => ({ sent, text: String(emitted), field_is_nearest_double: true })));
      const wideIntegers = await duck(`SELECT CAST(CAST(properties->>'$.erp_id' AS HUGEINT) AS VARCHAR) AS digits FROM ${files('contacts')} WHERE properties->>'$.email' IN ('v${ORDINARY.length}@x.com', 'v${ORDINARY.length + 1}@x.com')`);
      expect(wideIntegers.map((r) => r.digits).sort()).toEqual(['97315873439065650', '97315873439065651']);

      // The lake's reader gives back what the source emitted.
      const emitted = await readContacts(config, catalog);
      const stored = (await readLatestAsOf(lake, { stream: 'contacts' })).map((r) => r.payload);
      expect(stored.map(erpIdOf).sort()).toEqual([...emitted.values()].map(erpIdOf).sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('HubSpot → source → writer → HubSpot keeps every digit; a bigint value is written as its digits', async () => {
    const from = await start();
    const to = await start();
    seed(from, ALL);
    const sourceConfig = configOf(from);
    const records = await readContacts(sourceConfig, configureCatalog(await discover(sourceConfig), [{ name: 'contacts', sync_mode: 'full_refresh' }], ['append']));
    const writerConfig = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: to.token, base_url: to.url });
    const write = (rows: Array<Record<string, unknown>>) => runWriter({ writer: hubspotWriter, config: writerConfig, object: 'contacts', mode: 'upsert', idProperty: 'email', records: rows });
    const rows = [...records.values()].map((r) => ({ email: (r.properties as { email: string }).email, erp_id: erpIdOf(r) }));
    const first = await write(rows);
    expect(first.results?.every((r) => r.status === 'created')).toBe(true);
    const stored = new Map(to.objects('contacts').map((o) => [o.properties.email, o.properties.erp_id]));
    // HubSpot holds the decimal it was sent: the same number (as its shortest form where the source gave one), every digit of the others.
    expect(ALL.map(([sent], i) => ({ sent, stored: stored.get(`v${i}@x.com`) }))).toEqual(ALL.map(([sent, emitted]) => ({ sent, stored: String(emitted) })));
    expect((await write(rows)).results?.map((r) => r.status)).toEqual(rows.map(() => 'unchanged'));

    // A bigint (an in-process source's integer beyond ±2^53) is sent as its digits, then reads as unchanged.
    const wide = [{ email: 'v0@x.com', erp_id: 97315873439065651n }];
    const bigint = await write(wide);
    expect(bigint.results?.map((r) => [r.status, r.reason])).toEqual([['updated', undefined]]);
    expect(to.objects('contacts').find((o) => o.properties.email === 'v0@x.com')?.properties.erp_id).toBe('97315873439065651');
    expect((await write(wide)).results?.map((r) => r.status)).toEqual(['unchanged']);
  });
});
