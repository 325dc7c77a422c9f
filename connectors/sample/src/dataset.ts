/**
 * The sample CRM dataset. Record `i` of a stream is a pure function of the resolved config
 * (seed, tenants, counts, start_date) and `i`: nothing is carried from record to record,
 * so a read can start at any offset and two reads with the same config agree byte for byte.
 *
 * Ordering contract (what incremental resume relies on):
 * - the cursor (`updated_at`, activities: `event_time`) is non-decreasing in `i`; records
 *   come in tie groups of TIE_GROUP_SIZE that share one cursor value, and every group is
 *   strictly later than the previous one;
 * - ids are zero-padded, so string order of ids equals `i` order.
 * Hence `(cursor, id)` order equals `i` order, and "strictly after (cursor, id)" is a suffix.
 *
 * Speed: the hot path is a few Math.imul hashes, array look-ups into pools built once at
 * module load, and one small object literal of a fixed shape per record. Cursor strings
 * are formatted by the caller once per tie group (see `groupCursorMs`).
 */
import type { RecordData } from '@tributary/core';
import type { ResolvedConfig, SampleStream } from './config.js';

/** Consecutive records sharing one cursor value. */
export const TIE_GROUP_SIZE = 7;

const MIN_ISO_MS = Date.parse('0000-01-01T00:00:00.000Z');
const MAX_ISO_MS = Date.parse('9999-12-31T23:59:59.999Z');
const DAY_MS = 86_400_000;

/** murmur3's 32-bit finalizer: a bijection on uint32 with good avalanche. */
export function mix32(value: number): number {
  let x = value | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

const SECOND_HASH = 0x68e31da4;

interface StreamLayout {
  readonly idPrefix: string;
  readonly idField: 'id' | 'event_id';
  readonly cursorField: 'updated_at' | 'event_time';
  readonly salt: number;
  /** Cursor distance between two tie groups (plus a jitter below one step). */
  readonly stepMs: number;
}

export const LAYOUTS: Readonly<Record<SampleStream, StreamLayout>> = {
  companies: { idPrefix: 'co_', idField: 'id', cursorField: 'updated_at', salt: 0x1b873593, stepMs: 3_600_000 },
  contacts: { idPrefix: 'ct_', idField: 'id', cursorField: 'updated_at', salt: 0xcc9e2d51, stepMs: 600_000 },
  deals: { idPrefix: 'dl_', idField: 'id', cursorField: 'updated_at', salt: 0x27d4eb2f, stepMs: 1_800_000 },
  activities: { idPrefix: 'ev_', idField: 'event_id', cursorField: 'event_time', salt: 0x165667b1, stepMs: 1_000 },
};

// ---------------------------------------------------------------------------------------
// Value pools (seed-independent; the seed only chooses among them).

const FIRST_NAMES = [
  'Ada', 'Alan', 'Alice', 'Amara', 'Ana', 'Ben', 'Bianca', 'Carlos', 'Chen', 'Chloe', 'Daniel', 'Diego', 'Elena', 'Emeka', 'Emma', 'Farah',
  'Felix', 'Grace', 'Hana', 'Hugo', 'Ines', 'Ivan', 'Jade', 'James', 'Jonas', 'Julia', 'Kai', 'Kenji', 'Lara', 'Leo', 'Lina', 'Lucas',
  'Maya', 'Mateo', 'Mei', 'Mia', 'Nadia', 'Nina', 'Noah', 'Omar', 'Olga', 'Oscar', 'Paula', 'Pedro', 'Priya', 'Quinn', 'Rafael', 'Rosa',
  'Sam', 'Sara', 'Sofia', 'Tariq', 'Tess', 'Theo', 'Uma', 'Victor', 'Vera', 'Wei', 'Xavier', 'Yara', 'Yusuf', 'Zane', 'Zoe', 'Aiko',
];
const LAST_NAMES = [
  'Adams', 'Ali', 'Andersen', 'Bauer', 'Becker', 'Brown', 'Castro', 'Chen', 'Costa', 'Dubois', 'Evans', 'Fischer', 'Garcia', 'Gomez', 'Hansen', 'Hughes',
  'Ivanova', 'Jensen', 'Johnson', 'Kaur', 'Kim', 'Kowalski', 'Lambert', 'Lee', 'Lopez', 'Martin', 'Meyer', 'Moreau', 'Murphy', 'Nakamura', 'Nguyen', 'Novak',
  "O'Brien", 'Okafor', 'Olsen', 'Patel', 'Perez', 'Petrov', 'Quinn', 'Rossi', 'Santos', 'Sato', 'Schmidt', 'Silva', 'Singh', 'Smith', 'Sousa', 'Suzuki',
  'Tanaka', 'Taylor', 'Torres', 'Ueda', 'Vargas', 'Walker', 'Wang', 'Weber', 'Williams', 'Wilson', 'Xu', 'Yamamoto', 'Young', 'Zhang', 'Zimmer', 'Ziegler',
];
const COMPANY_ADJECTIVES = [
  'Blue', 'Bright', 'Clear', 'Silver', 'North', 'Rapid', 'Quiet', 'Bold', 'Green', 'Iron', 'Lunar', 'Solar', 'Prime', 'True', 'Urban', 'Vivid',
  'Amber', 'Cobalt', 'Crimson', 'Golden', 'Hidden', 'Little', 'Mighty', 'Nimble', 'Open', 'Polar', 'Red', 'Stellar', 'Swift', 'Tidal', 'Wild', 'Young',
];
const COMPANY_NOUNS = [
  'Anchor', 'Arrow', 'Beacon', 'Bridge', 'Canyon', 'Cedar', 'Circuit', 'Cloud', 'Comet', 'Crest', 'Delta', 'Falcon', 'Field', 'Forge', 'Harbor', 'Hive',
  'Lantern', 'Leaf', 'Meadow', 'Mesa', 'Orbit', 'Peak', 'Pine', 'Pixel', 'Quarry', 'River', 'Rock', 'Sail', 'Signal', 'Spark', 'Stone', 'Wave',
];
const COMPANY_SUFFIXES = ['Inc', 'LLC', 'Labs', 'Group', 'Systems', 'Partners', 'Co', 'Ltd'];
const INDUSTRIES = [
  'software', 'fintech', 'healthcare', 'retail', 'logistics', 'manufacturing', 'education', 'media',
  'energy', 'insurance', 'real_estate', 'hospitality', 'telecom', 'agriculture', 'consulting', 'nonprofit',
];
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'ES', 'IT', 'NL', 'SE', 'PL', 'BR', 'MX', 'CA', 'IN', 'JP', 'AU', 'ZA'];
const JOB_TITLES = [
  'CEO', 'CTO', 'CFO', 'VP Sales', 'VP Marketing', 'Head of Data', 'Engineering Manager', 'Software Engineer',
  'Account Executive', 'Sales Manager', 'Marketing Manager', 'Product Manager', 'Data Analyst', 'Operations Lead', 'Designer', 'Consultant',
];
/** HubSpot's lifecycle stages, weighted by repetition (8 slots). */
export const LIFECYCLE_STAGES = ['subscriber', 'lead', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer', 'customer'];
const DEAL_STAGES = ['appointmentscheduled', 'qualifiedtobuy', 'presentationscheduled', 'decisionmakerboughtin', 'contractsent', 'closedwon', 'closedlost', 'qualifiedtobuy'];
const DEAL_PRODUCTS = ['Platform', 'Analytics', 'Support', 'Onboarding', 'Enterprise', 'Starter', 'Growth', 'Data'];
const DEAL_KINDS = ['license', 'renewal', 'upsell', 'pilot', 'expansion', 'subscription', 'services', 'add-on'];
const CURRENCIES = ['USD', 'EUR', 'GBP', 'USD'];
const ACTIVITY_TYPES = ['page_view', 'email_open', 'email_click', 'form_submit', 'call', 'meeting', 'page_view', 'email_open'];
const CHANNELS = ['web', 'email', 'paid_search', 'social', 'referral', 'direct', 'events', 'partner'];
const FREE_MAIL_AT_DOMAINS = ['@mail.example', '@inbox.example', '@post.example', '@webmail.example', '@home.example', '@me.example', '@net.example', '@box.example'];

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '');
}

/** 'first.last' for every (first, last) pair, indexed by first * 64 + last. */
const EMAIL_LOCAL_PARTS: string[] = [];
for (const first of FIRST_NAMES) for (const last of LAST_NAMES) EMAIL_LOCAL_PARTS.push(`${slug(first)}.${slug(last)}`);
/** 1024 company names and their domain slugs, indexed by the same 10 hash bits. */
const COMPANY_NAMES: string[] = [];
const COMPANY_SLUGS: string[] = [];
for (let a = 0; a < COMPANY_ADJECTIVES.length; a++) {
  for (let n = 0; n < COMPANY_NOUNS.length; n++) {
    const adjective = COMPANY_ADJECTIVES[a] as string;
    const noun = COMPANY_NOUNS[n] as string;
    COMPANY_NAMES.push(`${adjective} ${noun} ${COMPANY_SUFFIXES[(a * 3 + n) & 7] as string}`);
    COMPANY_SLUGS.push(slug(adjective + noun));
  }
}
const DEAL_NAMES: string[] = [];
for (const product of DEAL_PRODUCTS) for (const kind of DEAL_KINDS) DEAL_NAMES.push(`${product} ${kind}`);

// ---------------------------------------------------------------------------------------

/**
 * `prefix` (three characters) + `n` zero-padded to ten digits (n < 10^10, enough for
 * MAX_RECORDS_PER_STREAM), built as one flat string from character codes. Concatenating a
 * head and the digits gave the same text as a V8 rope (a concatenation of 13 or more
 * characters is one), which the first regular expression or native call reading it had to
 * copy flat (staging sample activities in the lake: 0.2–0.3 µs per record more), while a
 * source that parses JSON, as real ones do, delivers flat strings. The digits are small
 * integers passed as separate arguments: no array, no boxed number per id.
 */
function idFormatter(prefix: string): (n: number) => string {
  if (prefix.length !== 3) throw new Error(`sample id prefixes have 3 characters, not ${JSON.stringify(prefix)}`);
  const [p0, p1, p2] = [prefix.charCodeAt(0), prefix.charCodeAt(1), prefix.charCodeAt(2)] as [number, number, number];
  const ZERO = 48;
  return (n) => {
    // Two halves of five digits, each small enough for integer arithmetic.
    let high = Math.floor(n / 100_000);
    let low = n - high * 100_000;
    const h0 = high % 10; high = (high / 10) | 0;
    const h1 = high % 10; high = (high / 10) | 0;
    const h2 = high % 10; high = (high / 10) | 0;
    const h3 = high % 10; high = (high / 10) | 0;
    const h4 = high % 10;
    const l0 = low % 10; low = (low / 10) | 0;
    const l1 = low % 10; low = (low / 10) | 0;
    const l2 = low % 10; low = (low / 10) | 0;
    const l3 = low % 10; low = (low / 10) | 0;
    const l4 = low % 10;
    return String.fromCharCode(p0, p1, p2, ZERO + h4, ZERO + h3, ZERO + h2, ZERO + h1, ZERO + h0, ZERO + l4, ZERO + l3, ZERO + l2, ZERO + l1, ZERO + l0);
  };
}

/** Caches a pure `index → string` function for the first 2^20 indexes (bounded memory). */
function memoize(count: number, compute: (index: number) => string): (index: number) => string {
  const limit = Math.min(count, 1 << 20);
  let cache: string[] | undefined;
  return (index) => {
    if (index >= limit) return compute(index);
    cache ??= new Array<string>(limit).fill('');
    const cached = cache[index] as string;
    if (cached !== '') return cached;
    const value = compute(index);
    cache[index] = value;
    return value;
  };
}

export interface StreamGenerator {
  readonly stream: SampleStream;
  readonly count: number;
  readonly idField: 'id' | 'event_id';
  readonly cursorField: 'updated_at' | 'event_time';
  /** Cursor of every record of tie group `group` (= floor(i / TIE_GROUP_SIZE)), epoch ms. */
  groupCursorMs(group: number): number;
  cursorMsAt(index: number): number;
  idAt(index: number): string;
  /**
   * Record `index`. `cursor` must be `new Date(cursorMsAt(index)).toISOString()`; it is
   * passed in so a reader formats it once per tie group instead of once per record.
   */
  recordAt(index: number, cursor: string): RecordData;
}

export type Dataset = Readonly<Record<SampleStream, StreamGenerator>>;

export function isoOf(ms: number): string {
  return new Date(ms).toISOString();
}

const PAD2 = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'));
/** 'HH:MM:' for every minute of a day. */
const MINUTE_OF_DAY = Array.from({ length: 1440 }, (_, m) => `${PAD2[Math.floor(m / 60)] as string}:${PAD2[m % 60] as string}:`);
/** 'mmmZ' for every millisecond of a second. */
const MILLIS_Z = Array.from({ length: 1000 }, (_, n) => `${String(n).padStart(3, '0')}Z`);
const SECOND_DOT = Array.from({ length: 60 }, (_, n) => `${PAD2[n] as string}.`);

/**
 * A formatter equal to `new Date(ms).toISOString()` for years 0000-9999, several times
 * faster: the 'YYYY-MM-DDT' part is computed once per day (cached for the last day seen,
 * which suits monotone cursors) and the time of day comes from lookup tables.
 */
export function createIsoFormatter(): (ms: number) => string {
  let cachedDay = Number.NaN;
  let dayPrefix = '';
  return (ms) => {
    const day = Math.floor(ms / DAY_MS);
    if (day !== cachedDay) {
      cachedDay = day;
      dayPrefix = isoOf(day * DAY_MS).slice(0, 11);
    }
    const inDay = ms - day * DAY_MS;
    const seconds = Math.floor(inDay / 1000);
    return dayPrefix + (MINUTE_OF_DAY[Math.floor(seconds / 60)] as string) + (SECOND_DOT[seconds % 60] as string) + (MILLIS_Z[inDay - seconds * 1000] as string);
  };
}

/** Builds the four stream generators of a config. Cheap: pools are shared, caches lazy. */
export function createDataset(config: ResolvedConfig): Dataset {
  const seedLow = config.seed | 0;
  const seedHigh = Math.floor(config.seed / 4294967296) | 0;
  const salt = (value: number): number => mix32(seedLow ^ mix32(seedHigh ^ value));
  const tenantCount = config.tenants;
  const { companies: companyCount, contacts: contactCount } = config.counts;

  const tenantWidth = Math.max(3, String(tenantCount).length);
  const tenantIds = Array.from({ length: tenantCount }, (_, k) => 'tenant_' + String(k + 1).padStart(tenantWidth, '0'));
  const tenantSalt = salt(0x2545f491);
  const orphanSalt = salt(0x9e3779b1);

  // created_at values: 1024 instants in the year before start_date (so created_at <= updated_at).
  const createdAt = Array.from({ length: 1024 }, (_, k) => isoOf(Math.max(MIN_ISO_MS, config.startMs - Math.floor(((k + 1) * 365 * DAY_MS) / 1024))));
  // close_date values: 512 dates from 90 days before to ~420 days after start_date.
  const closeDates = Array.from({ length: 512 }, (_, k) => isoOf(Math.max(MIN_ISO_MS, Math.min(MAX_ISO_MS, config.startMs + (k - 90) * DAY_MS))).slice(0, 10));

  const companySalt = salt(LAYOUTS.companies.salt);
  const companyIdOf = idFormatter(LAYOUTS.companies.idPrefix);
  const contactIdOf = idFormatter(LAYOUTS.contacts.idPrefix);
  const companyId = memoize(companyCount, (c) => companyIdOf(c + 1));
  const contactId = memoize(contactCount, (k) => contactIdOf(k + 1));
  const companyTenant = (c: number): string => tenantIds[mix32(c ^ tenantSalt) % tenantCount] as string;
  const companyDomain = memoize(companyCount, (c) => `${COMPANY_SLUGS[mix32(c ^ companySalt) & 1023] as string}${c + 1}.example`);
  const companyAtDomain = memoize(companyCount, (c) => '@' + companyDomain(c));
  /** Tenant of a contact when there are no companies to inherit it from. */
  const orphanTenant = (k: number): string => tenantIds[mix32(k ^ orphanSalt) % tenantCount] as string;
  /** Contacts are assigned to companies round-robin: contact k belongs to company k % C. */
  const contactTenant = (k: number): string => (companyCount > 0 ? companyTenant(k % companyCount) : orphanTenant(k));

  function base(stream: SampleStream): Omit<StreamGenerator, 'recordAt'> & { hashSalt: number } {
    const layout = LAYOUTS[stream];
    const hashSalt = salt(layout.salt);
    const timeSalt = salt(layout.salt ^ 0x5bd1e995);
    const { stepMs } = layout;
    const startMs = config.startMs;
    const formatId = idFormatter(layout.idPrefix);
    // Each group is at least one step after the previous one, so cursors strictly increase between groups.
    const groupCursorMs = (group: number): number => startMs + group * stepMs + (mix32(group ^ timeSalt) % stepMs);
    return {
      stream,
      count: config.counts[stream],
      idField: layout.idField,
      cursorField: layout.cursorField,
      hashSalt,
      groupCursorMs,
      cursorMsAt: (index) => groupCursorMs(Math.floor(index / TIE_GROUP_SIZE)),
      idAt: (index) => formatId(index + 1),
    };
  }

  const companiesBase = base('companies');
  const companies: StreamGenerator = {
    ...companiesBase,
    recordAt(index, cursor) {
      const h = mix32(index ^ companiesBase.hashSalt);
      const h2 = mix32(h ^ SECOND_HASH);
      return {
        id: companiesBase.idAt(index),
        tenant_id: companyTenant(index),
        name: COMPANY_NAMES[h & 1023],
        domain: companyDomain(index),
        industry: INDUSTRIES[(h >>> 10) & 15],
        country: COUNTRIES[(h >>> 14) & 15],
        employees: 1 + ((h2 >>> 10) % 5000),
        created_at: createdAt[h2 & 1023],
        updated_at: cursor,
      };
    },
  };

  const contactsBase = base('contacts');
  const contactsSalt = contactsBase.hashSalt;
  const contacts: StreamGenerator = {
    ...contactsBase,
    recordAt(index, cursor) {
      const h = mix32(index ^ contactsSalt);
      const h2 = mix32(h ^ SECOND_HASH);
      const first = h & 63;
      const last = (h >>> 6) & 63;
      const company = companyCount > 0 ? index % companyCount : -1;
      const atDomain = company >= 0 ? companyAtDomain(company) : (FREE_MAIL_AT_DOMAINS[(h >>> 12) & 7] as string);
      // The email's number is the id's number: unique emails.
      const digits = '' + (index + 1);
      return {
        id: contactsBase.idAt(index),
        tenant_id: company >= 0 ? companyTenant(company) : orphanTenant(index),
        company_id: company >= 0 ? companyId(company) : null,
        email: (EMAIL_LOCAL_PARTS[(first << 6) | last] as string) + digits + atDomain,
        first_name: FIRST_NAMES[first],
        last_name: LAST_NAMES[last],
        job_title: JOB_TITLES[(h >>> 15) & 15],
        lifecycle_stage: LIFECYCLE_STAGES[(h >>> 19) & 7],
        score: h2 % 101,
        created_at: createdAt[(h2 >>> 12) & 1023],
        updated_at: cursor,
      };
    },
  };

  const dealsBase = base('deals');
  const deals: StreamGenerator = {
    ...dealsBase,
    recordAt(index, cursor) {
      const h = mix32(index ^ dealsBase.hashSalt);
      const h2 = mix32(h ^ SECOND_HASH);
      let company = -1;
      let contact = -1;
      if (companyCount > 0) {
        company = h % companyCount;
        // A contact of that company: contacts company, company + C, company + 2C, ...
        if (company < contactCount) {
          const perCompany = Math.floor((contactCount - 1 - company) / companyCount) + 1;
          contact = company + companyCount * (h2 % perCompany);
        }
      } else if (contactCount > 0) {
        contact = h2 % contactCount;
      }
      return {
        id: dealsBase.idAt(index),
        tenant_id: company >= 0 ? companyTenant(company) : contact >= 0 ? orphanTenant(contact) : tenantIds[h2 % tenantCount],
        company_id: company >= 0 ? companyId(company) : null,
        contact_id: contact >= 0 ? contactId(contact) : null,
        name: DEAL_NAMES[(h >>> 4) & 63],
        stage: DEAL_STAGES[(h >>> 10) & 7],
        amount: ((h2 >>> 3) % 10_000_000) / 100,
        currency: CURRENCIES[(h >>> 13) & 3],
        close_date: closeDates[(h >>> 15) & 511],
        created_at: createdAt[(h >>> 22) & 1023],
        updated_at: cursor,
      };
    },
  };

  const activitiesBase = base('activities');
  const activities: StreamGenerator = {
    ...activitiesBase,
    recordAt(index, cursor) {
      const h = mix32(index ^ activitiesBase.hashSalt);
      const h2 = mix32(h ^ SECOND_HASH);
      const customer = contactCount > 0 ? h % contactCount : -1;
      return {
        event_id: activitiesBase.idAt(index),
        customer_id: customer >= 0 ? contactId(customer) : null,
        tenant_id: customer >= 0 ? contactTenant(customer) : tenantIds[h2 % tenantCount],
        event_time: cursor,
        type: ACTIVITY_TYPES[h2 & 7],
        properties: { channel: CHANNELS[(h2 >>> 3) & 7], value: (h2 >>> 6) % 1000 },
      };
    },
  };

  return { companies, contacts, deals, activities };
}

/** The last cursor of a stream must stay a four-digit-year ISO string (string order = time order). */
export function cursorRangeProblem(generator: StreamGenerator, startMs: number): string | undefined {
  if (startMs < MIN_ISO_MS) return 'config.start_date must not be before year 0000';
  if (generator.count > 0 && generator.cursorMsAt(generator.count - 1) > MAX_ISO_MS) {
    return `config.start_date is too late for ${generator.count} ${generator.stream}: cursors would pass year 9999`;
  }
  return undefined;
}
