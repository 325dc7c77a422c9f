/**
 * Differential fuzz of the source's two read paths: the same org read once through REST query
 * pages (`bulk: never`) and once through Bulk API 2.0 CSV results paged by `Sforce-Locator`
 * (`bulk: always`) must give identical records, field for field, and both must be the
 * documented conversion of what the org holds (README, Types): text as stored — Salesforce
 * keeps no empty string, it stores null, so `''` reads as null on both paths —, booleans,
 * numbers (Number(18,0) past 2^53 as exact decimal strings), dates as `YYYY-MM-DD`,
 * date-times as UTC `…Z`.
 *
 * Rows are drawn from `seededRandom` with text from a hostile alphabet (CSV delimiters and
 * quotes, CR, LF, CRLF, tabs, edge spaces, astral characters, combining marks, texts that look
 * like numbers, dates, `null` or `#N/A`). Small pages on both paths put many rows on page
 * boundaries. Default seeds 1–3; `PROBE10_SEEDS=1-40` (or `7,9`) for a sweep.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom, type RecordData } from '@tributary/core';
import { catalogOf, credentials, readAll, upsertAccounts, useOrgs } from './helpers.js';
import { seedList } from '@tributary/conformance';

const org = useOrgs();

const FIELDS = [
  { name: 'Text__c', type: 'string' },
  { name: 'Area__c', type: 'textarea' },
  { name: 'Mail__c', type: 'email' },
  { name: 'Pick__c', type: 'picklist' },
  { name: 'Flag__c', type: 'boolean' },
  { name: 'Count__c', type: 'int' },
  { name: 'Ratio__c', type: 'double' },
  { name: 'Amount__c', type: 'currency' },
  { name: 'Share__c', type: 'percent' },
  { name: 'Day__c', type: 'date' },
  { name: 'Moment__c', type: 'datetime' },
  { name: 'Big__c', type: 'double', precision: 18, scale: 0 },
];

/** Pieces of hostile text: CSV specials, line ends, edge spaces, astral and combining characters. */
const PIECES = [',', '"', '""', '\r', '\n', '\r\n', '\t', ' ', 'a', 'Z', '0', ';', 'é', 'e\u0301', '\u{1F600}', '\u{1D518}', '漢', '\u200B', '\\', "'", '#N/A'];
/** Whole values that look like something else. */
const LOOKALIKES = ['', ' ', 'null', 'NULL', '#N/A', '0042', '42', '-0', '1e5', '1.50', 'true', 'false', '2024-01-02', '2024-01-02T03:04:05.000+0000', '"', '""', '\n', '\r\n', ',', '"quoted"', ' lead', 'trail '];

type Random = () => number;
const pick = <T>(random: Random, values: readonly T[]): T => values[Math.floor(random() * values.length)]!;

function hostileText(random: Random): string {
  if (random() < 0.3) return pick(random, LOOKALIKES);
  let text = '';
  const length = Math.floor(random() * 12);
  for (let i = 0; i < length; i++) text += pick(random, PIECES);
  return text;
}

/** A value of the field's type, or null (one in six); never -0, which Salesforce does not store. */
function valueOf(random: Random, field: (typeof FIELDS)[number]): unknown {
  const value = anyValueOf(random, field);
  return typeof value === 'number' ? value + 0 : value;
}

function anyValueOf(random: Random, field: (typeof FIELDS)[number]): unknown {
  if (field.type !== 'boolean' && random() < 1 / 6) return null;
  switch (field.name) {
    case 'Text__c':
    case 'Area__c':
      return hostileText(random);
    case 'Mail__c':
      return `${pick(random, ['a', 'o.brien', 'x+y', 'q_'])}${Math.floor(random() * 1000)}@${pick(random, ['example.com', 'exämple.org'])}`;
    case 'Pick__c':
      return pick(random, ['Prospect', 'Customer - Direct', 'A, B', 'Say "hi"', 'Ünïcödé', '0042']);
    case 'Flag__c':
      return random() < 0.5;
    case 'Count__c':
      return Math.floor(random() * 4_000_000_000) - 2_000_000_000;
    case 'Ratio__c': {
      // Scale 6, magnitudes from 10^-6 to 10^11; now and then a value in exponent notation.
      if (random() < 0.1) return pick(random, [1e21, -2.5e-7, 1.7976931348623157e308, 5e-324, 0]);
      return Math.round((random() - 0.5) * 10 ** Math.floor(random() * 17)) / 1e6;
    }
    case 'Amount__c':
      return Math.round((random() - 0.3) * 10 ** Math.floor(random() * 14)) / 100;
    case 'Share__c':
      return Math.round((random() - 0.5) * 40_000) / 100;
    case 'Day__c':
      return new Date(Date.UTC(1700, 0, 1) + Math.floor(random() * 146_000) * 86_400_000).toISOString().slice(0, 10);
    case 'Moment__c':
      return Date.UTC(1970, 0, 1) + Math.floor(random() * 4_000_000_000) * 1000 + Math.floor(random() * 1000);
    case 'Big__c': {
      const digits = 1 + Math.floor(random() * 18);
      let text = String(1 + Math.floor(random() * 9));
      for (let i = 1; i < digits; i++) text += String(Math.floor(random() * 10));
      return BigInt(random() < 0.3 ? `-${text}` : text);
    }
    default:
      throw new Error(`no generator for ${field.name}`);
  }
}

/** What the README says a record carries for an inserted value. */
function expectedOf(field: (typeof FIELDS)[number], value: unknown): unknown {
  if (value === null || value === '') return null;
  if (field.type === 'datetime') return new Date(value as number).toISOString();
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}

/** The fuzzed fields of each record, by Id. */
function byId(records: RecordData[]): Map<string, Record<string, unknown>> {
  return new Map(records.map((r) => [String(r.Id), Object.fromEntries(FIELDS.map((f) => [f.name, r[f.name]]))]));
}

describe('REST and Bulk API 2.0 read the same records (seeded differential fuzz)', () => {
  for (const seed of seedList(process.env.PROBE10_SEEDS, [1, 2, 3])) {
    it(`seed ${seed}`, async () => {
      const random = seededRandom(seed);
      const sim = await org({ extraFields: { Account: FIELDS } });
      const rows = Array.from({ length: 230 + Math.floor(random() * 40) }, (_, i) => ({
        Name: `row ${i}`,
        ...Object.fromEntries(FIELDS.map((f) => [f.name, valueOf(random, f)])),
      }));
      const ids = sim.insert('Account', rows);
      const expected = new Map(ids.map((id, i) => [id, Object.fromEntries(FIELDS.map((f) => [f.name, expectedOf(f, rows[i]![f.name as keyof (typeof rows)[number]])]))]));

      const read = async (bulk: 'never' | 'always') => {
        // Small pages: REST pages of 200 and Bulk results pages of 1–23 rows.
        const config = { ...credentials(sim), bulk, page_size: 200, bulk_page_size: 1 + Math.floor(random() * 23), bulk_poll_interval_ms: 0, hard_deletes: false };
        const catalog = await catalogOf(config, ['Account'], 'full_refresh');
        return byId((await readAll(config, catalog)).records);
      };
      const rest = await read('never');
      const bulk = await read('always');

      expect(rest.size).toBe(ids.length);
      expect(bulk.size).toBe(ids.length);
      for (const id of ids) {
        const row = rows[ids.indexOf(id)];
        // Parity first (the message names the inserted row), then the documented contract.
        expect(bulk.get(id), `seed ${seed} ${id} ${JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`).toStrictEqual(rest.get(id));
        expect(rest.get(id), `seed ${seed} ${id}`).toStrictEqual(expected.get(id));
      }
    });
  }
});

describe('Number(18,0) values a double prints back digit for digit', () => {
  // 97315873439065650 parses to the double 97315873439065648: its shortest form is the text
  // Salesforce sent, its exact binary value is not. The REST path printed the binary value.
  it('are read as the decimal Salesforce sent, through REST as through Bulk API 2.0', async () => {
    const sim = await org({ extraFields: { Account: [{ name: 'Big__c', type: 'double', precision: 18, scale: 0 }] } });
    const values = ['97315873439065650', '-19283194702226150', '123456789012345680'];
    sim.insert(
      'Account',
      values.map((value) => ({ Name: value, Big__c: BigInt(value) })),
    );
    for (const bulk of ['never', 'always']) {
      const config = { ...credentials(sim), bulk, bulk_poll_interval_ms: 0, hard_deletes: false };
      const { records } = await readAll(config, await catalogOf(config, ['Account'], 'full_refresh'));
      expect({ bulk, values: records.map((r) => [r.Name, r.Big__c]) }).toEqual({ bulk, values: values.map((v) => [v, v]) });
    }
  });

  // The writer's compare-before-write had the same root cause: the wanted "97315873439065650"
  // (sent as the double whose JSON is that text) was compared by its binary value …648.
  it('are compared by that decimal when writing: a change to one is sent, not judged unchanged', async () => {
    const sim = await org({ extraFields: { Account: [{ name: 'Big__c', type: 'double', precision: 18, scale: 0 }] } });
    sim.insert('Account', [{ Name: 'stored', External_Id__c: 'k-1', Big__c: 97315873439065648n }]);
    const records = [{ External_Id__c: 'k-1', Big__c: '97315873439065650' }];
    const first = await upsertAccounts(sim, records);
    expect(first.results?.map((r) => [r.key, r.status])).toEqual([['k-1', 'updated']]);
    expect(sim.records('Account').map((r) => String(r.Big__c))).toEqual(['97315873439065650']);
    const replay = await upsertAccounts(sim, records);
    expect(replay.results?.map((r) => [r.key, r.status])).toEqual([['k-1', 'unchanged']]);
  });
});
