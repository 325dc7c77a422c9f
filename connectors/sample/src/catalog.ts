import type { AirbyteCatalog, AirbyteStream, JsonSchemaObject } from '@tributary/core';
import { SAMPLE_STREAMS, type SampleStream } from './config.js';
import { LAYOUTS } from './dataset.js';

const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

const string = { type: 'string' } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;
const idString = (prefix: string): JsonSchemaObject => ({ type: 'string', pattern: `^${prefix}[0-9]{10}$` });
const nullableId = (prefix: string): JsonSchemaObject => ({ type: ['string', 'null'], pattern: `^${prefix}[0-9]{10}$` });

function objectSchema(properties: Record<string, JsonSchemaObject>): JsonSchemaObject {
  return { $schema: DRAFT_07, type: 'object', additionalProperties: false, required: Object.keys(properties), properties };
}

/** JSON Schemas of the records, field for field what `dataset.ts` produces. */
export const STREAM_SCHEMAS: Readonly<Record<SampleStream, JsonSchemaObject>> = {
  companies: objectSchema({
    id: idString('co_'),
    tenant_id: string,
    name: string,
    domain: { type: 'string', format: 'hostname' },
    industry: string,
    country: { type: 'string', minLength: 2, maxLength: 2 },
    employees: { type: 'integer', minimum: 1 },
    created_at: dateTime,
    updated_at: dateTime,
  }),
  contacts: objectSchema({
    id: idString('ct_'),
    tenant_id: string,
    company_id: nullableId('co_'),
    email: { type: 'string', format: 'email' },
    first_name: string,
    last_name: string,
    job_title: string,
    lifecycle_stage: { type: 'string', enum: ['subscriber', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer'] },
    score: { type: 'integer', minimum: 0, maximum: 100 },
    created_at: dateTime,
    updated_at: dateTime,
  }),
  deals: objectSchema({
    id: idString('dl_'),
    tenant_id: string,
    company_id: nullableId('co_'),
    contact_id: nullableId('ct_'),
    name: string,
    stage: string,
    amount: { type: 'number', minimum: 0 },
    currency: { type: 'string', minLength: 3, maxLength: 3 },
    close_date: { type: 'string', format: 'date' },
    created_at: dateTime,
    updated_at: dateTime,
  }),
  activities: objectSchema({
    event_id: idString('ev_'),
    customer_id: nullableId('ct_'),
    tenant_id: string,
    event_time: dateTime,
    type: { type: 'string', enum: ['page_view', 'email_open', 'email_click', 'form_submit', 'call', 'meeting'] },
    properties: {
      type: 'object',
      additionalProperties: false,
      required: ['channel', 'value'],
      properties: { channel: string, value: { type: 'integer', minimum: 0 } },
    },
  }),
};

export function sampleStream(name: SampleStream): AirbyteStream {
  const layout = LAYOUTS[name];
  return {
    name,
    json_schema: STREAM_SCHEMAS[name],
    supported_sync_modes: ['full_refresh', 'incremental'],
    source_defined_cursor: true,
    default_cursor_field: [layout.cursorField],
    source_defined_primary_key: [[layout.idField]],
    is_resumable: true,
  };
}

export function sampleCatalog(): AirbyteCatalog {
  return { streams: SAMPLE_STREAMS.map(sampleStream) };
}
