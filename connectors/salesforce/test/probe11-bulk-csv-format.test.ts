/**
 * Bulk API 2.0 query results, written as Salesforce documents them, read by the real jsforce
 * over HTTP and by the source:
 *
 * - Get Results for a Query Job
 *   (developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm):
 *   a header row, then one row per record, the header and every value in double quotes
 *   (`"Id","Name"` / `"005R0000000UyrWIAS","Jane Dunn"`); columns in the order of the query
 *   from API 50.0. Null is an empty cell (the page shows none; clients report empty cells).
 * - Create a Query Job
 *   (developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm):
 *   `columnDelimiter` BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON or TAB (default COMMA) and
 *   `lineEnding` LF or CRLF (default LF) shape the results; the job info reports both.
 */
import { describe, expect, it } from 'vitest';
import { Connection, OAuth2 } from 'jsforce';
import type { RecordData } from '@tributary/core';
import { catalogOf, credentials, readAll, useOrgs } from './helpers.js';
import type { SalesforceSimulator } from '../src/index.js';

const org = useOrgs();

const FIELDS = [
  { name: 'Text__c', type: 'string' },
  { name: 'Area__c', type: 'textarea' },
  { name: 'Flag__c', type: 'boolean' },
  { name: 'Count__c', type: 'int' },
  { name: 'Amount__c', type: 'currency' },
  { name: 'Day__c', type: 'date' },
];

/** Text that needs quoting under some delimiter or line ending, or that looks like something else. */
const TEXTS = ['plain', 'a,b', 'say "hi"', '"', 'line\nbreak', 'crlf\r\nline', 'bare\rcr', ' lead', 'trail ', 'Gold;Silver', 'a|b', 'a^b', 'a`b', 'tab\there', 'ünï 漢 😀 e\u0301', 'null', '#N/A', '0042'];

const ROWS = TEXTS.map((text, i) => ({
  Name: `row ${String(i).padStart(2, '0')}`,
  Text__c: text,
  Area__c: i % 3 === 0 ? null : `${text}\n${text}`,
  Flag__c: i % 2 === 0,
  Count__c: i % 4 === 0 ? null : i * 7 - 20,
  Amount__c: i % 5 === 0 ? null : i * 1000.25,
  Day__c: i % 6 === 0 ? null : `2024-0${1 + (i % 9)}-1${i % 10}`,
}));

async function connect(sim: SalesforceSimulator): Promise<Connection> {
  const conn = new Connection({ loginUrl: sim.url, version: sim.version, oauth2: new OAuth2({ loginUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret }) });
  await conn.login(sim.username, sim.password);
  return conn;
}

interface JobInfo {
  id: string;
  state: string;
  columnDelimiter: string;
  lineEnding: string;
}

/** Creates a query job through jsforce, polls it to JobComplete, and returns its info and raw first results page. */
async function runJob(conn: Connection, body: Record<string, unknown>): Promise<{ info: JobInfo; csv: string }> {
  const created = await conn.request<JobInfo>({ method: 'POST', url: '/jobs/query', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  let info = created;
  while (info.state !== 'JobComplete') info = await conn.request<JobInfo>(`/jobs/query/${created.id}`);
  // text/plain: jsforce hands the body over as it came, instead of parsing the CSV.
  const csv = await conn.request<string>({ method: 'GET', url: `/jobs/query/${created.id}/results` }, { responseType: 'text/plain' });
  return { info, csv };
}

const SOQL = `SELECT Id, Name, ${FIELDS.map((f) => f.name).join(', ')} FROM Account ORDER BY Name`;

describe('Bulk API 2.0 query results are the CSV Salesforce documents', () => {
  it('quote the header and every value, leave null cells empty, and read as REST reads them', async () => {
    const sim = await org({ extraFields: { Account: FIELDS }, bulkPollsToComplete: 1 });
    const ids = sim.insert('Account', ROWS);
    const conn = await connect(sim);

    const { info, csv } = await runJob(conn, { operation: 'query', query: SOQL });
    expect(info).toMatchObject({ columnDelimiter: 'COMMA', lineEnding: 'LF' });
    const quoted = (v: unknown) => (v === null ? '' : `"${String(v).replace(/"/g, '""')}"`);
    const expected = [
      ['Id', 'Name', ...FIELDS.map((f) => f.name)].map(quoted).join(','),
      ...ROWS.map((row, i) => [ids[i], row.Name, row.Text__c, row.Area__c, row.Flag__c, row.Count__c, row.Amount__c, row.Day__c].map(quoted).join(',')),
    ];
    expect(csv).toBe(expected.join('\n') + '\n');

    // The source reads that CSV into the records the REST path reads, text kept exactly.
    const read = async (bulk: 'never' | 'always') => {
      const config = { ...credentials(sim), bulk, bulk_page_size: 5, bulk_poll_interval_ms: 0, hard_deletes: false };
      const { records } = await readAll(config, await catalogOf(config, ['Account'], 'full_refresh'));
      return new Map(records.map((r: RecordData) => [String(r.Id), Object.fromEntries(['Name', ...FIELDS.map((f) => f.name)].map((n) => [n, r[n]]))]));
    };
    const rest = await read('never');
    const bulk = await read('always');
    expect(bulk.size).toBe(ROWS.length);
    for (const [i, id] of ids.entries()) {
      expect(bulk.get(id), JSON.stringify(ROWS[i])).toStrictEqual(rest.get(id));
      expect(bulk.get(id)).toStrictEqual(ROWS[i]);
    }
  });

  it("honour the job's columnDelimiter and lineEnding, which the job info reports, and refuse others", async () => {
    const sim = await org({ extraFields: { Account: FIELDS }, bulkPollsToComplete: 1 });
    const ids = sim.insert('Account', ROWS);
    const conn = await connect(sim);

    const quoted = (v: string) => `"${v.replace(/"/g, '""')}"`;
    const delimiters = { BACKQUOTE: '`', CARET: '^', COMMA: ',', PIPE: '|', SEMICOLON: ';', TAB: '\t' };
    for (const [n, [columnDelimiter, delimiter]] of Object.entries(delimiters).entries()) {
      const lineEnding = n % 2 === 0 ? 'CRLF' : 'LF';
      const eol = lineEnding === 'CRLF' ? '\r\n' : '\n';
      const { info, csv } = await runJob(conn, { operation: 'query', query: 'SELECT Id, Text__c FROM Account ORDER BY Name', columnDelimiter, lineEnding });
      expect(info).toMatchObject({ columnDelimiter, lineEnding });
      const lines = [['Id', 'Text__c'].map(quoted).join(delimiter), ...ROWS.map((row, i) => [ids[i]!, row.Text__c].map(quoted).join(delimiter))];
      expect(csv, `${columnDelimiter} ${lineEnding}`).toBe(lines.join(eol) + eol);
    }

    // jsforce's own bulk2.query asks for the options and parses the results (one page here);
    // its parser splits on commas whatever the job's delimiter, so only COMMA is read so.
    const rest = (await conn.query<{ Id: string; Text__c: string | null }>('SELECT Id, Text__c FROM Account ORDER BY Name')).records.map((r) => ({ Id: r.Id, Text__c: r.Text__c ?? '' }));
    for (const lineEnding of ['LF', 'CRLF'] as const) {
      const stream = await conn.bulk2.query('SELECT Id, Text__c FROM Account ORDER BY Name', { columnDelimiter: 'COMMA', lineEnding, pollInterval: 1, pollTimeout: 10_000 });
      const records: Array<Record<string, string>> = [];
      await new Promise<void>((resolve, reject) => {
        stream.on('record', (record: Record<string, string>) => records.push(record));
        stream.on('end', () => resolve());
        stream.on('error', reject);
      });
      expect(records, lineEnding).toStrictEqual(rest);
    }

    const refused = (option: Record<string, string>) => conn.request({ method: 'POST', url: '/jobs/query', body: JSON.stringify({ operation: 'query', query: 'SELECT Id FROM Account', ...option }), headers: { 'content-type': 'application/json' } });
    await expect(refused({ columnDelimiter: 'COLON' })).rejects.toMatchObject({ errorCode: 'INVALIDJOB' });
    await expect(refused({ lineEnding: 'CR' })).rejects.toMatchObject({ errorCode: 'INVALIDJOB' });
  });
});
