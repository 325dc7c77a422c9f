import { afterEach, describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, runWriter } from '@tributary/core';
import { startSimulator, type CrmSimulator } from '../src/simulator.js';
import { httpCrmWriter } from '../src/writer.js';

const running: CrmSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function crmWithRequestLog(): Promise<{ crm: CrmSimulator; upserts: number[] }> {
  const crm = await startSimulator();
  running.push(crm);
  const upserts: number[] = [];
  crm.onServed((r) => {
    if (r.path === '/v1/contacts/batch_upsert') upserts.push(r.status);
  });
  return { crm, upserts };
}

function upsert(crm: CrmSimulator, records: Record<string, unknown>[], token = crm.token) {
  return runWriter({
    writer: httpCrmWriter,
    config: parseConfig(httpCrmWriter.spec.connectionSpecification, { base_url: crm.url, api_token: token }),
    object: 'contacts',
    mode: 'upsert',
    idProperty: 'email',
    records,
  });
}

describe('http-crm writer', () => {
  it('upserts in batches of at most 50, one result per record', async () => {
    const { crm, upserts } = await crmWithRequestLog();
    const records = Array.from({ length: 120 }, (_, i) => ({ email: `p${i}@example.com`, first_name: `P${i}` }));
    const summary = await upsert(crm, [...records, { email: 'broken', first_name: 'X' }]);
    expect(summary.counts).toMatchObject({ created: 120, failed: 1 });
    expect(summary.results?.find((r) => r.key === 'broken')).toMatchObject({ status: 'failed', retryable: false, reason: 'email must be a valid address' });
    expect(upserts).toEqual([200, 200, 200]);
    expect(crm.contacts()).toHaveLength(120);
  });

  it('a replayed change answers unchanged and does not undo a later edit', async () => {
    const { crm } = await crmWithRequestLog();
    const change = { email: 'ada@example.com', first_name: 'Ada' };
    expect((await upsert(crm, [change])).counts.created).toBe(1);
    crm.upsert([{ email: 'ada@example.com', properties: { first_name: 'Countess' } }]);
    // The same change again (a retried request, a sync resumed from an older checkpoint).
    expect((await upsert(crm, [change])).counts.unchanged).toBe(1);
    expect(crm.contacts()[0]?.first_name).toBe('Countess');
  });

  it('a batch whose answer was lost to a dropped connection is retried, and applied once', async () => {
    const { crm, upserts } = await crmWithRequestLog();
    // The API applies the first batch_upsert but the connection closes before its answer: a
    // POST, which the client retries only because the writer marks it idempotent.
    crm.dropAnswers(1);
    const summary = await upsert(crm, [{ email: 'ada@example.com', first_name: 'Ada' }, { email: 'alan@example.com', first_name: 'Alan' }]);
    expect(summary.halted).toBeUndefined();
    expect(summary.counts.failed).toBe(0);
    // The retry carried the same idempotency keys: the API recognised both inputs as applied.
    expect(summary.counts.unchanged).toBe(2);
    expect(crm.stats.dropped).toBe(1);
    expect(upserts).toEqual([200]);
    expect(crm.contacts().map((c) => c.email).sort()).toEqual(['ada@example.com', 'alan@example.com']);
  });

  it('a bad token halts the run with an auth error after one request', async () => {
    const { crm, upserts } = await crmWithRequestLog();
    const summary = await upsert(crm, [{ email: 'a@example.com' }, { email: 'b@example.com' }], 'wrong-token-0123');
    expect(summary.halted?.kind).toBe('auth');
    expect(summary.counts.failed).toBe(2);
    expect(upserts).toEqual([401]);
  });
});

describe('http-crm writer: listKeys', () => {
  it('lists every contact’s email, across pages (the same contacts the simulator holds)', async () => {
    const crm = await startSimulator({ contacts: 230, sameUpdatedAt: 7 });
    running.push(crm);
    const config = parseConfig(httpCrmWriter.spec.connectionSpecification, { base_url: crm.url, api_token: crm.token });
    const session = await httpCrmWriter.open(createConnectorContext(), config);
    const listed: string[] = [];
    try {
      for await (const key of session.listKeys!('contacts', 'email')) listed.push(key);
    } finally {
      await session.close();
    }
    expect(listed.length).toBe(230);
    expect(listed.sort()).toEqual(crm.contacts().map((c) => c.email).sort());
  });
});
