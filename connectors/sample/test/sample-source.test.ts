import { getEventListeners } from 'node:events';
import {
  TributaryError,
  collectSecrets,
  compileSchema,
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  type ConfiguredAirbyteCatalog,
  type ConnectorContext,
  type RecordData,
  type SourceMessage,
  type StateBlob,
  type SyncMode,
  type SyncState,
} from '@tributary/core';
import { sampleSource, type SampleConfig, type SampleStream } from '@tributary/source-sample';
import { describe, expect, it } from 'vitest';
import { MAX_RECORDS_PER_STREAM, resolveConfig } from '../src/config.js';
import { createDataset, createIsoFormatter } from '../src/dataset.js';

const ALL_STREAMS: SampleStream[] = ['companies', 'contacts', 'deals', 'activities'];

function configOf(raw: Record<string, unknown> = {}): SampleConfig {
  return parseConfig(sampleSource.spec.connectionSpecification, raw);
}

function context(signal?: AbortSignal): ConnectorContext {
  return createConnectorContext(signal ? { signal } : {});
}

async function catalogOf(config: SampleConfig, streams: SampleStream[], mode: SyncMode, namespace?: string): Promise<ConfiguredAirbyteCatalog> {
  const discovered = await sampleSource.discover(context(), config);
  return {
    streams: streams.map((name) => {
      const stream = discovered.streams.find((s) => s.name === name);
      if (!stream) throw new Error(`stream ${name} not discovered`);
      return {
        stream: namespace === undefined ? stream : { ...stream, namespace },
        sync_mode: mode,
        destination_sync_mode: mode === 'incremental' ? 'append_dedup' : 'overwrite',
      };
    }),
  };
}

async function readAll(config: SampleConfig, streams: SampleStream[], mode: SyncMode, state: SyncState = { streams: {} }): Promise<SourceMessage[]> {
  const messages: SourceMessage[] = [];
  for await (const message of expandRecordPages(sampleSource.read(context(), config, await catalogOf(config, streams, mode), state))) messages.push(message);
  return messages;
}

function recordsOf(messages: SourceMessage[], stream?: string): RecordData[] {
  return messages.flatMap((m) => (m.kind === 'record' && (stream === undefined || m.stream === stream) ? [m.data] : []));
}

function checkpointsOf(messages: SourceMessage[], stream: string): StateBlob[] {
  return messages.flatMap((m) => (m.kind === 'checkpoint' && m.stream === stream ? [m.state] : []));
}

/** For every checkpoint: the state and how many records of its stream preceded it. */
function checkpointPositions(messages: SourceMessage[], stream: string): Array<{ state: StateBlob; covered: number }> {
  const positions: Array<{ state: StateBlob; covered: number }> = [];
  let seen = 0;
  for (const m of messages) {
    if (!('stream' in m) || m.stream !== stream) continue;
    if (m.kind === 'record') seen++;
    if (m.kind === 'checkpoint') positions.push({ state: m.state, covered: seen });
  }
  return positions;
}

const cursorField = (stream: SampleStream): string => (stream === 'activities' ? 'event_time' : 'updated_at');
const idField = (stream: SampleStream): string => (stream === 'activities' ? 'event_id' : 'id');

describe('sample source: spec and discover', () => {
  it('fills nested defaults, refuses unknown fields and marks api_key secret', () => {
    const config = configOf({ counts: { contacts: 5 } });
    expect(config).toMatchObject({ seed: 42, tenants: 3, checkpoint_every: 1000, counts: { companies: 100, contacts: 5, deals: 300, activities: 5000 } });
    expect(() => configOf({ sede: 1 })).toThrow(/config\.sede is not a known property/);
    expect(() => configOf({ counts: { contacts: -1 } })).toThrow(TributaryError);
    expect([...collectSecrets(sampleSource.spec.connectionSpecification, { api_key: 'k-123456' })]).toEqual(['k-123456']);
  });

  it('discovers four resumable streams with primary keys and source-defined cursors', async () => {
    const catalog = await sampleSource.discover(context(), configOf());
    expect(catalog.streams.map((s) => s.name)).toEqual(ALL_STREAMS);
    for (const stream of catalog.streams) {
      const name = stream.name as SampleStream;
      expect(stream.supported_sync_modes).toEqual(['full_refresh', 'incremental']);
      expect(stream.source_defined_cursor).toBe(true);
      expect(stream.is_resumable).toBe(true);
      expect(stream.default_cursor_field).toEqual([cursorField(name)]);
      expect(stream.source_defined_primary_key).toEqual([[idField(name)]]);
      expect(stream.json_schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    }
  });

  it('emits records that validate against the discovered schemas', async () => {
    const config = configOf({ counts: { companies: 30, contacts: 200, deals: 80, activities: 300 } });
    const catalog = await sampleSource.discover(context(), config);
    const messages = await readAll(config, ALL_STREAMS, 'full_refresh');
    for (const stream of catalog.streams) {
      const validate = compileSchema(stream.json_schema);
      const records = recordsOf(messages, stream.name);
      expect(records.length).toBeGreaterThan(0);
      for (const data of records) {
        expect(validate(data), `${stream.name} ${JSON.stringify(data)} ${JSON.stringify(validate.errors)}`).toBe(true);
      }
    }
  });
});

describe('sample source: dataset', () => {
  it('is deterministic: same seed, same records; another seed, other records', async () => {
    const counts = { companies: 20, contacts: 60, deals: 30, activities: 90 };
    const first = recordsOf(await readAll(configOf({ counts }), ALL_STREAMS, 'full_refresh'));
    const again = recordsOf(await readAll(configOf({ counts }), ALL_STREAMS, 'incremental'));
    const other = recordsOf(await readAll(configOf({ counts, seed: 43 }), ALL_STREAMS, 'full_refresh'));
    expect(first).toHaveLength(200);
    expect(again).toEqual(first);
    expect(other).toHaveLength(200);
    expect(other).not.toEqual(first);
    // Same ids and cursors (they are positional), different content.
    const differing = other.filter((record, i) => JSON.stringify(record) !== JSON.stringify(first[i]));
    expect(differing.length).toBeGreaterThan(150);
  });

  it('orders every stream by (cursor, id) with tie groups of seven equal cursors', async () => {
    const config = configOf({ counts: { companies: 50, contacts: 50, deals: 50, activities: 50 } });
    const messages = await readAll(config, ALL_STREAMS, 'incremental');
    for (const stream of ALL_STREAMS) {
      const records = recordsOf(messages, stream);
      expect(records).toHaveLength(50);
      const cursors = records.map((r) => r[cursorField(stream)] as string);
      const ids = records.map((r) => r[idField(stream)] as string);
      expect(ids[0]).toMatch(/^[a-z]{2}_0000000001$/);
      for (let i = 1; i < records.length; i++) {
        const previous = cursors[i - 1] as string;
        const current = cursors[i] as string;
        expect(Date.parse(current) >= Date.parse(previous)).toBe(true);
        expect(current >= previous).toBe(true);
        expect((ids[i] as string) > (ids[i - 1] as string)).toBe(true);
        // Ties exactly inside groups of 7, strictly later between groups.
        if (i % 7 === 0) expect(current > previous).toBe(true);
        else expect(current).toBe(previous);
      }
    }
  });

  it('keeps references consistent: contacts → companies, deals → company and its contact, activities → contacts', async () => {
    const config = configOf({ tenants: 4, counts: { companies: 25, contacts: 120, deals: 90, activities: 200 } });
    const messages = await readAll(config, ALL_STREAMS, 'full_refresh');
    const companies = new Map(recordsOf(messages, 'companies').map((r) => [r.id as string, r]));
    const contacts = new Map(recordsOf(messages, 'contacts').map((r) => [r.id as string, r]));
    expect(new Set([...companies.values()].map((c) => c.tenant_id)).size).toBeGreaterThan(1);
    for (const contact of contacts.values()) {
      const company = companies.get(contact.company_id as string);
      expect(company).toBeDefined();
      expect(contact.tenant_id).toBe(company?.tenant_id);
      expect((contact.email as string).endsWith(`@${company?.domain as string}`)).toBe(true);
    }
    expect(new Set([...contacts.values()].map((c) => c.email)).size).toBe(contacts.size);
    for (const deal of recordsOf(messages, 'deals')) {
      const company = companies.get(deal.company_id as string);
      const contact = contacts.get(deal.contact_id as string);
      expect(company).toBeDefined();
      expect(contact?.company_id).toBe(deal.company_id);
      expect(deal.tenant_id).toBe(company?.tenant_id);
    }
    for (const activity of recordsOf(messages, 'activities')) {
      const contact = contacts.get(activity.customer_id as string);
      expect(contact).toBeDefined();
      expect(activity.tenant_id).toBe(contact?.tenant_id);
    }
  });

  it('builds ids as the prefix and the 1-based position zero-padded to ten digits, up to the largest count', () => {
    const max = MAX_RECORDS_PER_STREAM;
    const dataset = createDataset(resolveConfig({ counts: { companies: max, contacts: max, deals: max, activities: max } }));
    const prefixes: Record<SampleStream, string> = { companies: 'co_', contacts: 'ct_', deals: 'dl_', activities: 'ev_' };
    const indexes = [0, 1, 8, 9, 98, 99, 12_344, 999_999, 1_048_575, 1_048_576, 33_554_431, max - 1];
    for (const stream of ALL_STREAMS) {
      for (const index of indexes) {
        const expected = prefixes[stream] + String(index + 1).padStart(10, '0');
        expect(dataset[stream].idAt(index)).toBe(expected);
        const record = dataset[stream].recordAt(index, '2024-01-01T00:00:00.000Z');
        expect(record[dataset[stream].idField]).toBe(expected);
      }
    }
    // References use the same formatter: a contact's company and an activity's contact.
    const contact = dataset.contacts.recordAt(41, '2024-01-01T00:00:00.000Z');
    expect(contact.company_id).toMatch(/^co_[0-9]{10}$/);
    expect(dataset.activities.recordAt(5, '2024-01-01T00:00:00.000Z').customer_id).toMatch(/^ct_[0-9]{10}$/);
  });

  it('formats cursors exactly like Date#toISOString', () => {
    const format = createIsoFormatter();
    const samples = [0, 1, 999, 1000, 86_399_999, 86_400_000, Date.parse('2024-02-29T23:59:59.999Z'), Date.parse('9999-12-31T23:59:59.999Z'), Date.parse('0001-01-01T00:00:00.000Z')];
    let x = 0x12345;
    for (let i = 0; i < 5000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      samples.push((x / 4294967296) * 253402300799999);
    }
    for (const ms of samples.map(Math.floor)) expect(format(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('sample source: read protocol', () => {
  it('emits STARTED, estimate, RUNNING, records with periodic checkpoints, a final checkpoint, COMPLETE', async () => {
    const config = configOf({ checkpoint_every: 10, counts: { companies: 25, contacts: 0, deals: 3, activities: 0 } });
    const messages = await readAll(config, ['companies', 'deals'], 'incremental');
    const shape = messages.map((m) => (m.kind === 'status' ? m.status : m.kind));
    const companies = ['STARTED', 'estimate', 'RUNNING', ...Array(10).fill('record'), 'checkpoint', ...Array(10).fill('record'), 'checkpoint', ...Array(5).fill('record'), 'checkpoint', 'COMPLETE'];
    const deals = ['STARTED', 'estimate', 'RUNNING', 'record', 'record', 'record', 'checkpoint', 'COMPLETE'];
    expect(shape).toEqual([...companies, ...deals]);
    expect(messages.find((m) => m.kind === 'estimate' && m.stream === 'companies')).toMatchObject({ rows: 25 });
    const records = recordsOf(messages, 'companies');
    expect(checkpointsOf(messages, 'companies').at(-1)).toEqual({ cursor: records.at(-1)?.updated_at, id: records.at(-1)?.id });
  });

  it('emits a checkpoint for an empty stream', async () => {
    const config = configOf({ counts: { companies: 0, contacts: 0, deals: 0, activities: 0 } });
    for (const mode of ['incremental', 'full_refresh'] as const) {
      const messages = await readAll(config, ['contacts'], mode);
      expect(messages.map((m) => (m.kind === 'status' ? m.status : m.kind))).toEqual(['STARTED', 'estimate', 'RUNNING', 'checkpoint', 'COMPLETE']);
      expect(checkpointsOf(messages, 'contacts')).toEqual([{}]);
      expect(messages[1]).toMatchObject({ kind: 'estimate', rows: 0 });
    }
  });

  it('yields nothing but a checkpoint (the same position) for a state in the future', async () => {
    const config = configOf({ counts: { companies: 40 } });
    const future = { cursor: '9999-01-01T00:00:00.000Z', id: 'co_0000000001' };
    const messages = await readAll(config, ['companies'], 'incremental', { streams: { companies: future } });
    expect(recordsOf(messages)).toEqual([]);
    expect(checkpointsOf(messages, 'companies')).toEqual([future]);
    expect(messages.at(-1)).toMatchObject({ kind: 'status', status: 'COMPLETE' });
  });

  it('carries the configured namespace on messages and reads state by namespace.name', async () => {
    const config = configOf({ checkpoint_every: 4, counts: { deals: 10 } });
    const catalog = await catalogOf(config, ['deals'], 'incremental', 'crm');
    const all: SourceMessage[] = [];
    for await (const m of expandRecordPages(sampleSource.read(context(), config, catalog, { streams: {} }))) all.push(m);
    expect(all.every((m) => m.kind !== 'global-checkpoint' && m.namespace === 'crm')).toBe(true);
    const first = checkpointsOf(all, 'deals')[0] as StateBlob;
    const resumed: SourceMessage[] = [];
    for await (const m of expandRecordPages(sampleSource.read(context(), config, catalog, { streams: { 'crm.deals': first } }))) resumed.push(m);
    expect(recordsOf(resumed)).toEqual(recordsOf(all).slice(4));
  });

  it('refuses unknown streams and malformed state with config errors', async () => {
    const config = configOf({ counts: { companies: 5 } });
    const catalog = await catalogOf(config, ['companies'], 'incremental');
    const unknown: ConfiguredAirbyteCatalog = { streams: [{ ...(catalog.streams[0] as ConfiguredAirbyteCatalog['streams'][number]), stream: { ...(catalog.streams[0]?.stream as ConfiguredAirbyteCatalog['streams'][number]['stream']), name: 'tickets' } }] };
    await expect(collect(expandRecordPages(sampleSource.read(context(), config, unknown, { streams: {} })))).rejects.toMatchObject({ kind: 'config' });
    await expect(collect(expandRecordPages(sampleSource.read(context(), config, catalog, { streams: { companies: { cursor: 'yesterday' } } })))).rejects.toMatchObject({ kind: 'config' });
    const full = await catalogOf(config, ['companies'], 'full_refresh');
    await expect(collect(expandRecordPages(sampleSource.read(context(), config, full, { streams: { companies: { offset: -3 } } })))).rejects.toMatchObject({ kind: 'config' });
  });
});

async function collect(iterable: AsyncIterable<SourceMessage>): Promise<SourceMessage[]> {
  const out: SourceMessage[] = [];
  for await (const m of iterable) out.push(m);
  return out;
}

describe('sample source: resume', () => {
  // checkpoint_every 5 against tie groups of 7: most checkpoints fall inside a tie group.
  const counts = { companies: 61, contacts: 47, deals: 1, activities: 72 };

  it.each(ALL_STREAMS)('incremental %s: resuming from every checkpoint yields exactly the remaining records', async (stream) => {
    const config = configOf({ checkpoint_every: 5, counts });
    const full = await readAll(config, [stream], 'incremental');
    const records = recordsOf(full);
    expect(records).toHaveLength(counts[stream]);
    const positions = checkpointPositions(full, stream);
    expect(positions).toHaveLength(Math.floor(counts[stream] / 5) + 1);
    let insideTieGroup = 0;
    for (const { state, covered } of positions) {
      if (covered % 7 !== 0) insideTieGroup++;
      const resumed = await readAll(config, [stream], 'incremental', { streams: { [stream]: state } });
      const rest = recordsOf(resumed);
      expect(rest.map((r) => r[idField(stream)])).toEqual(records.slice(covered).map((r) => r[idField(stream)]));
      expect(rest).toEqual(records.slice(covered));
      // The final checkpoint of the resumed read is the last record again (or the input state when nothing was left).
      expect(checkpointsOf(resumed, stream).at(-1)).toEqual(covered === records.length ? state : positions.at(-1)?.state);
    }
    if (counts[stream] > 7) expect(insideTieGroup).toBeGreaterThan(0);
  });

  it('incremental: resumes inside a tie group from any record position', async () => {
    const config = configOf({ counts: { contacts: 30 } });
    const records = recordsOf(await readAll(config, ['contacts'], 'incremental'));
    for (let i = 0; i < records.length; i++) {
      const at = records[i] as RecordData;
      const rest = recordsOf(await readAll(config, ['contacts'], 'incremental', { streams: { contacts: { cursor: at.updated_at, id: at.id } } }));
      expect(rest).toEqual(records.slice(i + 1));
    }
    // Third record of the second tie group: the next record shares its cursor and must still come.
    const third = records[9] as RecordData;
    const rest = recordsOf(await readAll(config, ['contacts'], 'incremental', { streams: { contacts: { cursor: third.updated_at, id: third.id } } }));
    expect(rest[0]?.updated_at).toBe(third.updated_at);
    expect(rest[0]?.id).toBe(records[10]?.id);
    // A cursor without id resumes at the first record with that cursor (at-least-once).
    const cursorOnly = recordsOf(await readAll(config, ['contacts'], 'incremental', { streams: { contacts: { cursor: third.updated_at } } }));
    expect(cursorOnly).toEqual(records.slice(7));
  });

  it.each(['companies', 'activities'] as const)('full refresh %s: resuming from every offset checkpoint yields exactly the remaining records', async (stream) => {
    const config = configOf({ checkpoint_every: 5, counts });
    const full = await readAll(config, [stream], 'full_refresh');
    const records = recordsOf(full);
    const positions = checkpointPositions(full, stream);
    // Periodic checkpoints are offsets; the last one marks the refresh complete.
    expect(positions.slice(0, -1).map((p) => p.state)).toEqual(positions.slice(0, -1).map((p) => ({ offset: p.covered })));
    expect(positions.at(-1)?.state).toEqual({});
    for (const { state, covered } of positions.slice(0, -1)) {
      const resumed = await readAll(config, [stream], 'full_refresh', { streams: { [stream]: state } });
      expect(recordsOf(resumed)).toEqual(records.slice(covered));
      expect(resumed.find((m) => m.kind === 'estimate')).toMatchObject({ rows: records.length - covered });
    }
    // A complete refresh's state starts the next refresh from the beginning.
    expect(recordsOf(await readAll(config, [stream], 'full_refresh', { streams: { [stream]: {} } }))).toEqual(records);
  });

  it('incremental after the dataset grew yields exactly the new records', async () => {
    const before = await readAll(configOf({ counts: { companies: 20 } }), ['companies'], 'incremental');
    const state = checkpointsOf(before, 'companies').at(-1) as StateBlob;
    const grown = configOf({ counts: { companies: 33 } });
    const after = recordsOf(await readAll(grown, ['companies'], 'incremental', { streams: { companies: state } }));
    const fresh = recordsOf(await readAll(grown, ['companies'], 'incremental'));
    expect(after).toEqual(fresh.slice(20));
    expect(fresh.slice(0, 20)).toEqual(recordsOf(before));
  });

  it('stops at a page boundary on abort with a checkpoint covering what was emitted', async () => {
    const config = configOf({ checkpoint_every: 20, counts: { contacts: 50, deals: 10 } });
    const all = recordsOf(await readAll(config, ['contacts', 'deals'], 'incremental'));
    const controller = new AbortController();
    const catalog = await catalogOf(config, ['contacts', 'deals'], 'incremental');
    const seen: SourceMessage[] = [];
    // Pages end at checkpoints, so the first page holds the first 20 contacts.
    for await (const m of sampleSource.read(context(controller.signal), config, catalog, { streams: {} })) {
      if (m.kind === 'records') {
        for (const data of m.records) seen.push({ kind: 'record', stream: m.stream, data });
        controller.abort();
      } else seen.push(m);
    }
    expect(recordsOf(seen)).toEqual(all.slice(0, 20));
    expect(seen.slice(-2)).toEqual([
      { kind: 'checkpoint', stream: 'contacts', state: { cursor: all[19]?.updated_at, id: all[19]?.id } },
      { kind: 'status', stream: 'contacts', status: 'INCOMPLETE' },
    ]);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    const state = checkpointsOf(seen, 'contacts').at(-1) as StateBlob;
    const rest = recordsOf(await readAll(config, ['contacts'], 'incremental', { streams: { contacts: state } }));
    expect(rest).toEqual(all.slice(20, 50));
  });

  it('releases the abort listener when the consumer stops early', async () => {
    const controller = new AbortController();
    const config = configOf({ counts: { activities: 1000 } });
    const catalog = await catalogOf(config, ['activities'], 'incremental');
    let n = 0;
    for await (const m of expandRecordPages(sampleSource.read(context(controller.signal), config, catalog, { streams: {} }))) {
      if (m.kind === 'record' && ++n === 3) break;
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('sample source: credentials', () => {
  it('check fails with an auth error that does not contain the key', async () => {
    const config = configOf({ api_key: 'invalid' });
    const error = await sampleSource.check(context(), config).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(TributaryError.is(error, 'auth')).toBe(true);
    const e = error as TributaryError;
    for (const text of [e.message, e.userMessage, e.internalMessage ?? '', String(e), JSON.stringify(e)]) expect(text).not.toContain('invalid');
    await expect(collect(expandRecordPages(sampleSource.read(context(), config, await catalogOf(configOf(), ['companies'], 'incremental'), { streams: {} })))).rejects.toMatchObject({ kind: 'auth' });
  });

  it('check passes with any other key or none', async () => {
    await expect(sampleSource.check(context(), configOf({ api_key: 'sk-live-1234' }))).resolves.toBeUndefined();
    await expect(sampleSource.check(context(), configOf())).resolves.toBeUndefined();
  });

  it('check refuses a start_date too late for the configured counts', async () => {
    await expect(sampleSource.check(context(), configOf({ start_date: '9999-12-01T00:00:00Z', counts: { companies: 100_000 } }))).rejects.toMatchObject({ kind: 'config' });
  });
});
