import { afterEach, describe, expect, it } from 'vitest';
import { Connection, OAuth2 } from 'jsforce';
import { countCsvRecords, csvRecords } from '../src/client/csv.js';
import { csvValue } from '../src/simulator/format.js';
import { parseSoql, evaluate } from '../src/simulator/soql.js';
import { startSalesforceSimulator, type SalesforceSimulator } from '../src/index.js';

const running: SalesforceSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

/** A jsforce Connection logged in through the simulator's token endpoint (password flow). */
async function connect(options: Parameters<typeof startSalesforceSimulator>[0] = {}): Promise<{ sim: SalesforceSimulator; conn: Connection }> {
  const sim = await startSalesforceSimulator(options);
  running.push(sim);
  const conn = new Connection({ loginUrl: sim.url, version: sim.version, oauth2: new OAuth2({ loginUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret }) });
  await conn.login(sim.username, sim.password);
  return { sim, conn };
}

describe('salesforce simulator, driven by jsforce itself', () => {
  it('pages queries by nextRecordsUrl (2,000 rows by default, batchSize honoured) and reports usage', async () => {
    const { conn } = await connect({ records: { Account: 4500 } });
    const first = await conn.query<{ Id: string }>('SELECT Id, Name FROM Account ORDER BY Id');
    expect(first.records).toHaveLength(2000);
    expect(first.done).toBe(false);
    expect(first.nextRecordsUrl).toMatch(/\/services\/data\/v60\.0\/query\/01g\w+-2000$/);
    const all = await conn.query('SELECT Id FROM Account').run({ autoFetch: true, maxFetch: 10_000 });
    expect(all.totalSize).toBe(4500);
    expect(conn.limitInfo.apiUsage?.limit).toBe(100_000);
    const small = await conn.request<{ records: unknown[] }>({ method: 'GET', url: `/query?q=${encodeURIComponent('SELECT Id FROM Account')}`, headers: { 'Sforce-Query-Options': 'batchSize=300' } });
    expect(small.records).toHaveLength(300);
  });

  it('shows IsDeleted rows only through queryAll, and refuses filters on non-filterable fields', async () => {
    const { sim, conn } = await connect({ records: { Account: 5, Opportunity: 2 } });
    const [id] = sim.records('Account').map((r) => String(r.Id));
    sim.softDelete('Account', [id!]);
    expect((await conn.query('SELECT Id FROM Account')).totalSize).toBe(4);
    const all = await conn.query<{ Id: string; IsDeleted: boolean }>('SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true', { scanAll: true });
    expect(all.records.map((r) => r.Id)).toEqual([id]);
    await expect(conn.query('SELECT Id FROM Opportunity WHERE SystemModstamp > 2020-01-01T00:00:00Z')).rejects.toMatchObject({ errorCode: 'INVALID_FIELD' });
    await expect(conn.query('SELECT Id FROM Account WHERE')).rejects.toMatchObject({ errorCode: 'MALFORMED_QUERY' });
  });

  it('answers the replication endpoints (updated, deleted) as jsforce reads them', async () => {
    const { sim, conn } = await connect({ records: { Account: 4 }, replicationGranularityMs: 1 });
    const start = new Date(Date.now() - 60_000);
    const [changed, removed] = sim.records('Account').map((r) => String(r.Id));
    sim.update('Account', changed!, { Name: 'Changed' });
    sim.softDelete('Account', [removed!]);
    const end = new Date(Date.now() + 60_000);
    const updated = await conn.sobject('Account').updated(start, end);
    expect(updated.ids).toEqual([changed]);
    const deleted = await conn.sobject('Account').deleted(start, end);
    expect(deleted.deletedRecords.map((d) => d.id)).toEqual([removed]);
    expect(Date.parse(deleted.latestDateCovered)).toBeGreaterThan(start.getTime());
  });

  it('upserts collections by external id through jsforce, one result per record, 200 at most', async () => {
    const { sim, conn } = await connect();
    const records = Array.from({ length: 3 }, (_, i) => ({ External_Id__c: `x-${i}`, Name: `N${i}` }));
    const created = await conn.upsert('Account', records, 'External_Id__c');
    expect(created.map((r) => r.success && r.created)).toEqual([true, true, true]);
    const again = await conn.upsert('Account', [{ External_Id__c: 'x-0', Name: 'Renamed' }, { External_Id__c: 'x-9' }], 'External_Id__c');
    expect(again[0]).toMatchObject({ success: true, created: false });
    expect(again[1]).toMatchObject({ success: false, errors: [{ statusCode: 'REQUIRED_FIELD_MISSING' }] });
    expect(sim.records('Account').find((r) => r.External_Id__c === 'x-0')?.Name).toBe('Renamed');
    const tooMany = Array.from({ length: 201 }, (_, i) => ({ External_Id__c: `y-${i}`, Name: 'n' }));
    await expect(conn.upsert('Account', tooMany, 'External_Id__c')).rejects.toMatchObject({ errorCode: 'EXCEEDED_ID_LIMIT' });
  });

  it('answers 401 INVALID_SESSION_ID with an error array, and 403 REQUEST_LIMIT_EXCEEDED past the daily limit', async () => {
    const { sim } = await connect();
    const stale = new Connection({ instanceUrl: sim.url, accessToken: 'expired', version: sim.version });
    await expect(stale.query('SELECT Id FROM Account')).rejects.toMatchObject({ errorCode: 'INVALID_SESSION_ID' });
    const { conn } = await connect({ dailyApiLimit: 3 });
    await conn.query('SELECT Id FROM Account');
    await conn.query('SELECT Id FROM Account');
    await conn.query('SELECT Id FROM Account');
    expect(conn.limitInfo.apiUsage).toEqual({ used: 3, limit: 3 });
    await expect(conn.query('SELECT Id FROM Account')).rejects.toMatchObject({ errorCode: 'REQUEST_LIMIT_EXCEEDED' });
  });

  it('serves Bulk API 2.0 results in pages linked by Sforce-Locator, null on the last', async () => {
    const { conn } = await connect({ records: { Account: 7 }, bulkPollsToComplete: 1 });
    const job = await conn.request<{ id: string; state: string }>({ method: 'POST', url: '/jobs/query', body: JSON.stringify({ operation: 'query', query: 'SELECT Id, Tier__c FROM Account' }), headers: { 'content-type': 'application/json' } });
    expect(job.state).toBe('UploadComplete');
    expect((await conn.request<{ state: string }>(`/jobs/query/${job.id}`)).state).toBe('JobComplete');
    const locators: string[] = [];
    let locator = '';
    let rows = 0;
    do {
      const answer = await new Promise<{ headers: Record<string, string>; body: string }>((resolve, reject) => {
        fetch(`${conn.instanceUrl}/services/data/v60.0/jobs/query/${job.id}/results?maxRecords=3${locator ? `&locator=${locator}` : ''}`, { headers: { authorization: `Bearer ${conn.accessToken}` } })
          .then(async (r) => resolve({ headers: Object.fromEntries(r.headers), body: await r.text() }))
          .catch(reject);
      });
      rows += countCsvRecords(answer.body);
      locator = answer.headers['sforce-locator']!;
      locators.push(locator);
    } while (locator !== 'null');
    expect(rows).toBe(7);
    expect(locators).toHaveLength(3);
    expect(locators.at(-1)).toBe('null');
    await expect(conn.request({ method: 'POST', url: '/jobs/query', body: JSON.stringify({ operation: 'query', query: 'SELECT Id, BillingAddress FROM Account' }), headers: { 'content-type': 'application/json' } })).rejects.toMatchObject({ errorCode: 'API_ERROR' });
  });
});

describe('CSV and SOQL', () => {
  it('parses quoted commas, quotes, line breaks and semicolons, and counts records the same way', () => {
    const values = ['plain', 'a,b', 'say "hi"', 'line\nbreak', 'Gold;Silver', '', 'crlf\r\nline'];
    const text = `${values.map((_, i) => `c${i}`).join(',')}\r\n${values.map(csvValue).join(',')}\n${values.map(csvValue).join(',')}`;
    const records = [...csvRecords(text)];
    expect(records).toHaveLength(2);
    expect(records[0]).toEqual(Object.fromEntries(values.map((v, i) => [`c${i}`, v])));
    expect(countCsvRecords(text)).toBe(2);
    expect(countCsvRecords('Id\n')).toBe(0);
    expect(countCsvRecords('Id\na\nb')).toBe(2);
  });

  it('evaluates the tie-breaking resume filter of the source', () => {
    const query = parseSoql("SELECT Id FROM Account WHERE (SystemModstamp > 2024-01-01T00:00:01.000Z OR (SystemModstamp = 2024-01-01T00:00:01.000Z AND Id > '0015')) ORDER BY SystemModstamp, Id");
    const at = (s: number, id: string) => (name: string) => (name === 'SystemModstamp' ? Date.parse('2024-01-01T00:00:00Z') + s * 1000 : id);
    expect(evaluate(query.where, at(1, '0015'))).toBe(false);
    expect(evaluate(query.where, at(1, '0016'))).toBe(true);
    expect(evaluate(query.where, at(0, '0099'))).toBe(false);
    expect(evaluate(query.where, at(2, '0001'))).toBe(true);
    expect(query.orderBy).toEqual([{ field: 'SystemModstamp', descending: false }, { field: 'Id', descending: false }]);
    const list = parseSoql("SELECT Id FROM Contact WHERE Email IN ('a@x.io', 'b@x.io') AND NOT Name = null LIMIT 5");
    expect(list.limit).toBe(5);
    expect(evaluate(list.where, (f) => (f === 'Email' ? 'b@x.io' : 'Bob'))).toBe(true);
    expect(evaluate(list.where, (f) => (f === 'Email' ? 'c@x.io' : 'Bob'))).toBe(false);
  });
});
