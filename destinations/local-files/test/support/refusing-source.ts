import { checkpoint, defineSource, record, type ConfiguredAirbyteCatalog, type RecordData, type SourceMessage } from '@tributary/core';

/**
 * A source of one keyed stream, `people`, whose records 0‥11 come with a checkpoint
 * `{ offset }` after every fourth. Two of them the local destination refuses: 5 has no
 * primary key, 6 a `name` that is not a string. Reading from a checkpoint yields exactly
 * the records after it, as the source contract asks, so a replay delivers them again.
 */
export const RECORD_COUNT = 12;
export const CHECKPOINT_EVERY = 4;

export function peopleRecord(i: number): RecordData {
  if (i === 5) return { name: 'no id' };
  if (i === 6) return { id: 6, name: 42 };
  return { id: i, name: `person ${i}` };
}

/** Which records the destination must refuse, and those records, in delivery order. */
export const REFUSED_AT = [5, 6];
export const REFUSED = REFUSED_AT.map(peopleRecord);

const jsonSchema = {
  type: 'object',
  properties: { id: { type: 'integer' }, name: { type: 'string' } },
  required: ['id'],
};

export const refusingSource = defineSource({
  name: 'refusing',
  spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return {
      streams: [{ name: 'people', json_schema: jsonSchema, supported_sync_modes: ['incremental'], source_defined_primary_key: [['id']], default_cursor_field: ['id'] }],
    };
  },
  async *read(_ctx, _config, _catalog, state): AsyncGenerator<SourceMessage> {
    const start = Number(state.streams.people?.offset ?? 0);
    for (let i = start; i < RECORD_COUNT; i++) {
      yield record('people', peopleRecord(i));
      if ((i + 1) % CHECKPOINT_EVERY === 0) yield checkpoint('people', { offset: i + 1 });
    }
  },
});

export const peopleCatalog: ConfiguredAirbyteCatalog = {
  streams: [
    {
      stream: { name: 'people', json_schema: jsonSchema, supported_sync_modes: ['incremental'], source_defined_primary_key: [['id']], default_cursor_field: ['id'] },
      sync_mode: 'incremental',
      destination_sync_mode: 'append_dedup',
      primary_key: [['id']],
      cursor_field: ['id'],
    },
  ],
};

/** Every checkpoint commits at once, so each one's records form one batch and one commit. */
export const batching = { maxRecords: 100, commitIntervalMs: 0 };
