/**
 * Which records a reverse-ETL sync reports as rejected, when one change appears twice in a
 * batch (same key, same fields: one idempotency key) and the target refuses the first but
 * applies the second. Salesforce does that: a Contact upsert without the required LastName
 * fails while no row has the external id, and the same record applied after another one
 * created the row is an update. Before, the writer destination matched failures by
 * idempotency key alone and reported both records rejected (rejectedRecordCount 2), one of
 * them written. Checked against the Salesforce simulator through its real writer (jsforce).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runSync, writerDestination, type SourceMessage, type WriteAuditEntry } from '@tributary/core';
import { salesforceWriter, startSalesforceSimulator, type SalesforceSimulator } from '@tributary/connector-salesforce';
import { itemsSource, useTempStateStore } from './support/sync-fixtures.js';

const temp = useTempStateStore('tributary-probe3-writer-rejected-');
const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const INPUT = [
  // No row has this external id yet, and a Contact needs a LastName: refused.
  { External_Id__c: 'ada-1', FirstName: 'Ada' },
  // Creates the row.
  { External_Id__c: 'ada-1', LastName: 'Lovelace' },
  // The first record again: now an update of the row the second one created.
  { External_Id__c: 'ada-1', FirstName: 'Ada' },
];

describe('reverse ETL sync: rejected records when one change appears twice in a batch', () => {
  it('reports only the refused record rejected, not the identical one the target applied', async () => {
    const sim = await startSalesforceSimulator();
    running.push(sim);
    const audit: WriteAuditEntry[] = [];
    const rejectedIndexes: number[] = [];
    const source = itemsSource('contacts', async function* (): AsyncGenerator<SourceMessage> {
      for (const data of INPUT) yield { kind: 'record', stream: 'items', data };
      yield { kind: 'checkpoint', stream: 'items', state: { done: true } };
    });
    const destination = writerDestination(salesforceWriter, { object: 'Contact', mode: 'upsert', idProperty: 'External_Id__c', audit: (e) => audit.push(e) });
    const result = await runSync({
      connection: 'contacts-to-salesforce',
      source,
      sourceConfig: {},
      destination: {
        ...destination,
        // Records which input records the destination reported rejected.
        async open(ctx, config, streams) {
          const opened = await destination.open(ctx, config, streams);
          return {
            ...opened,
            async write(batch) {
              const outcome = await opened.write(batch);
              for (const r of outcome?.rejected ?? []) rejectedIndexes.push(r.index);
              return outcome;
            },
          };
        },
      },
      destinationConfig: { login_url: sim.url, client_id: sim.clientId, client_secret: sim.clientSecret, refresh_token: sim.refreshToken },
      catalog: { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental'] }, sync_mode: 'incremental', destination_sync_mode: 'append' }] },
      stateStore: temp.store,
    });
    expect(result.outcome).toBe('completed');
    expect(audit.map((e) => e.status)).toEqual(['failed', 'created', 'updated']);
    expect(rejectedIndexes).toEqual([0]);
    expect(result.streams[0]!.rejected).toBe(1);
    const rows = sim.records('Contact').filter((r) => r.External_Id__c === 'ada-1');
    expect(rows.map((r) => [r.FirstName, r.LastName])).toEqual([['Ada', 'Lovelace']]);
  });
});
