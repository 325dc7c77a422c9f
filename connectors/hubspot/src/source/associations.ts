/**
 * An associations stream (e.g. contacts -> companies), full refresh: list the ids of the
 * "from" objects a page at a time, then one associations v4 batch read per page. A checkpoint
 * after every page holds the list cursor, so an interrupted refresh resumes where it stopped.
 */
import { checkpoint, recordPage, streamStatus, type RecordData, type SourceMessage, type StateBlob } from '@tributary/core';
import type { HubspotApi } from '../api/client.js';
import { LIST_PAGE_SIZE } from './objects.js';

export interface AssociationPair {
  from: string;
  to: string;
}

export function associationStreamName(pair: AssociationPair): string {
  return `${pair.from}_${pair.to}_associations`;
}

export const associationJsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  required: ['from_type', 'from_id', 'to_type', 'to_id'],
  properties: {
    from_type: { type: 'string' },
    from_id: { type: 'string' },
    to_type: { type: 'string' },
    to_id: { type: 'string' },
  },
} as const;

export async function* readAssociations(api: HubspotApi, pair: AssociationPair, saved: StateBlob | undefined): AsyncGenerator<SourceMessage> {
  const stream = associationStreamName(pair);
  let after = saved?.full_refresh === true && typeof saved.after === 'string' ? saved.after : undefined;
  yield streamStatus(stream, 'RUNNING');
  for (;;) {
    const page = await api.listPage(pair.from, { limit: LIST_PAGE_SIZE, ...(after ? { after } : {}), properties: ['hs_object_id'], archived: false });
    after = page.next;
    if (page.results.length > 0) {
      const rows = await api.associations(
        pair.from,
        pair.to,
        page.results.map((o) => o.id),
      );
      const records: RecordData[] = [];
      for (const row of rows) for (const to of row.toIds) records.push({ from_type: pair.from, from_id: row.fromId, to_type: pair.to, to_id: to });
      yield recordPage(stream, records);
    }
    if (after === undefined) {
      yield checkpoint(stream, { full_refresh: true, done: true });
      return;
    }
    yield checkpoint(stream, { full_refresh: true, after });
  }
}
