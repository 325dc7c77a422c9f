/**
 * The simulated org's schema: a few standard objects with the field types and describe flags
 * the connector must handle (compound address and location fields, picklists, currency,
 * percent, date, time, base64, references, external ids) — and one object (Opportunity)
 * whose SystemModstamp is not filterable, so the source must fall back to LastModifiedDate.
 */

/** One field as `GET /sobjects/{obj}/describe` reports it (the subset the connector reads). */
export interface SimField {
  name: string;
  type: string;
  label: string;
  length: number;
  precision: number;
  scale: number;
  nillable: boolean;
  createable: boolean;
  updateable: boolean;
  filterable: boolean;
  externalId: boolean;
  unique: boolean;
  /** Text comparisons on the field are case-sensitive (describe's `caseSensitive`; true only for unique case-sensitive text fields). */
  caseSensitive: boolean;
  idLookup: boolean;
  custom: boolean;
  defaultedOnCreate: boolean;
  compoundFieldName: string | null;
  referenceTo: string[];
  picklistValues: Array<{ value: string; label: string; active: boolean; defaultValue: boolean }>;
  restrictedPicklist: boolean;
}

export interface SimObject {
  name: string;
  label: string;
  /** The 3-character key prefix of record ids. */
  keyPrefix: string;
  custom: boolean;
  fields: SimField[];
}

type FieldSpec = Partial<SimField> & { name: string; type: string };

function field(spec: FieldSpec): SimField {
  const system = ['Id', 'IsDeleted', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp'].includes(spec.name);
  const compound = spec.type === 'address' || spec.type === 'location';
  return {
    label: spec.name.replace(/__c$/, '').replace(/_/g, ' '),
    length: spec.type === 'string' || spec.type === 'email' || spec.type === 'phone' || spec.type === 'url' || spec.type === 'picklist' ? 255 : spec.type === 'textarea' ? 32_000 : spec.type === 'id' || spec.type === 'reference' ? 18 : 0,
    precision: ['currency', 'double', 'percent'].includes(spec.type) ? 18 : spec.type === 'int' ? 9 : 0,
    scale: spec.type === 'currency' || spec.type === 'percent' ? 2 : spec.type === 'double' ? 6 : 0,
    nillable: !system && spec.type !== 'boolean',
    createable: !system && !compound,
    updateable: !system && !compound,
    filterable: !compound && spec.type !== 'textarea' && spec.type !== 'base64',
    externalId: false,
    unique: false,
    caseSensitive: false,
    idLookup: spec.name === 'Id',
    custom: spec.name.endsWith('__c') || spec.name.endsWith('__s'),
    defaultedOnCreate: system || spec.type === 'boolean',
    compoundFieldName: null,
    referenceTo: [],
    picklistValues: [],
    restrictedPicklist: false,
    ...spec,
  };
}

function picklist(name: string, values: string[], extra: Partial<SimField> = {}): SimField {
  return field({ name, type: 'picklist', picklistValues: values.map((value) => ({ value, label: value, active: true, defaultValue: false })), ...extra });
}

function systemFields(options: { systemModstampFilterable?: boolean } = {}): SimField[] {
  return [
    field({ name: 'Id', type: 'id' }),
    field({ name: 'IsDeleted', type: 'boolean' }),
    field({ name: 'CreatedDate', type: 'datetime' }),
    field({ name: 'LastModifiedDate', type: 'datetime' }),
    field({ name: 'SystemModstamp', type: 'datetime', filterable: options.systemModstampFilterable ?? true }),
  ];
}

function address(prefix: string): SimField[] {
  const compound = `${prefix}Address`;
  const part = (name: string, type: string): SimField => field({ name: `${prefix}${name}`, type, compoundFieldName: compound });
  return [
    part('Street', 'textarea'),
    part('City', 'string'),
    part('State', 'string'),
    part('PostalCode', 'string'),
    part('Country', 'string'),
    part('Latitude', 'double'),
    part('Longitude', 'double'),
    picklist(`${prefix}GeocodeAccuracy`, ['Address', 'Street', 'City', 'Zip'], { compoundFieldName: compound }),
    field({ name: compound, type: 'address' }),
  ];
}

/** A unique external id, case-insensitive: the default when "Unique" is ticked in Setup. */
function externalId(): SimField {
  return field({ name: 'External_Id__c', type: 'string', externalId: true, unique: true, caseSensitive: false, idLookup: true });
}

/** `count` custom text fields (`Custom_Text_Field_0001__c`, …), as a wide object of an org has. */
function customTextFields(count: number): SimField[] {
  return Array.from({ length: count }, (_, i) => field({ name: `Custom_Text_Field_${String(i + 1).padStart(4, '0')}__c`, type: 'string' }));
}

/** A field to add to an object: its name and type, and any describe attribute to set (`precision`, `scale`, `externalId`…). */
export type ExtraFieldSpec = FieldSpec;

/**
 * The org's objects; `customFields` adds that many custom text fields to the objects it
 * names, `extraFields` the fields it describes (e.g. a Number(18,0) field:
 * `{ name: 'Big__c', type: 'double', precision: 18, scale: 0 }`).
 */
export function defaultObjects(customFields: Partial<Record<string, number>> = {}, extraFields: Partial<Record<string, ExtraFieldSpec[]>> = {}): SimObject[] {
  const objects = baseObjects();
  for (const object of objects) {
    object.fields.push(...customTextFields(customFields[object.name] ?? 0));
    object.fields.push(...(extraFields[object.name] ?? []).map(field));
  }
  return objects;
}

function baseObjects(): SimObject[] {
  return [
    {
      name: 'Account',
      label: 'Account',
      keyPrefix: '001',
      custom: false,
      fields: [
        ...systemFields(),
        field({ name: 'Name', type: 'string', nillable: false, idLookup: true }),
        picklist('Type', ['Prospect', 'Customer - Direct', 'Customer - Channel', 'Partner']),
        picklist('Industry', ['Agriculture', 'Banking', 'Energy', 'Technology', 'Retail']),
        field({ name: 'AnnualRevenue', type: 'currency' }),
        field({ name: 'NumberOfEmployees', type: 'int' }),
        picklist('Rating', ['Hot', 'Warm', 'Cold'], { restrictedPicklist: true }),
        field({ name: 'Phone', type: 'phone' }),
        field({ name: 'Website', type: 'url' }),
        field({ name: 'Description', type: 'textarea' }),
        ...address('Billing'),
        field({ name: 'OwnerId', type: 'reference', referenceTo: ['User'] }),
        externalId(),
        field({ name: 'Tier__c', type: 'multipicklist', picklistValues: ['Gold', 'Silver', 'Bronze'].map((value) => ({ value, label: value, active: true, defaultValue: false })) }),
        field({ name: 'Active__c', type: 'boolean' }),
        field({ name: 'Renewal_Date__c', type: 'date' }),
        field({ name: 'Health_Score__c', type: 'percent' }),
        field({ name: 'Opening_Time__c', type: 'time' }),
        field({ name: 'Logo__c', type: 'base64' }),
        field({ name: 'HQ__Latitude__s', type: 'double', compoundFieldName: 'HQ__c' }),
        field({ name: 'HQ__Longitude__s', type: 'double', compoundFieldName: 'HQ__c' }),
        field({ name: 'HQ__c', type: 'location' }),
      ],
    },
    {
      name: 'Contact',
      label: 'Contact',
      keyPrefix: '003',
      custom: false,
      fields: [
        ...systemFields(),
        field({ name: 'AccountId', type: 'reference', referenceTo: ['Account'] }),
        field({ name: 'FirstName', type: 'string' }),
        field({ name: 'LastName', type: 'string', nillable: false }),
        field({ name: 'Email', type: 'email', idLookup: true }),
        field({ name: 'Birthdate', type: 'date' }),
        ...address('Mailing'),
        externalId(),
      ],
    },
    {
      name: 'Opportunity',
      label: 'Opportunity',
      keyPrefix: '006',
      custom: false,
      fields: [
        ...systemFields({ systemModstampFilterable: false }),
        field({ name: 'Name', type: 'string', nillable: false }),
        field({ name: 'AccountId', type: 'reference', referenceTo: ['Account'] }),
        field({ name: 'Amount', type: 'currency' }),
        picklist('StageName', ['Prospecting', 'Qualification', 'Closed Won', 'Closed Lost'], { nillable: false }),
        field({ name: 'CloseDate', type: 'date', nillable: false }),
        field({ name: 'Probability', type: 'percent' }),
      ],
    },
  ];
}


const WORDS = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark', 'Wayne', 'Tyrell', 'Cyberdyne', 'Soylent'];
const CITIES = ['Paris', 'Lyon', 'Berlin', 'Madrid', 'Oslo', 'Austin', 'Denver'];

/** A plausible value of a writable field, for seeding (ids and system fields are set elsewhere). */
export function generateValue(f: SimField, index: number, random: () => number): unknown {
  if (random() < 0.08 && f.nillable) return null;
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  switch (f.type) {
    case 'string':
    case 'textarea':
      return f.name.includes('City') ? pick(CITIES) : `${pick(WORDS)} ${f.name === 'Name' || f.name === 'LastName' ? '' : f.name + ' '}${index}`.replace('  ', ' ');
    case 'email':
      return `person${index}@example.com`;
    case 'phone':
      return `+1 555 ${String(1000 + (index % 9000))}`;
    case 'url':
      return `https://www.example${index}.com`;
    case 'picklist':
      return pick(f.picklistValues).value;
    case 'multipicklist':
      return f.picklistValues.filter(() => random() < 0.5).map((p) => p.value).join(';') || null;
    case 'boolean':
      return random() < 0.5;
    case 'int':
      return Math.floor(random() * 10_000);
    case 'double':
      // A Number(p,0) field holds integers (up to 18 digits).
      if (f.scale === 0) return Math.floor(random() * 1e9);
      return Math.round((random() * 180 - 90) * 1e6) / 1e6;
    case 'currency':
      return Math.round(random() * 1e8) / 100;
    case 'percent':
      return Math.round(random() * 10_000) / 100;
    case 'date':
      return new Date(Date.UTC(2020, 0, 1) + Math.floor(random() * 2000) * 86_400_000).toISOString().slice(0, 10);
    case 'time':
      return `${String(Math.floor(random() * 24)).padStart(2, '0')}:${String(Math.floor(random() * 60)).padStart(2, '0')}:00.000Z`;
    case 'base64':
      return Buffer.from(`logo-${index}`).toString('base64');
    case 'reference':
      return null;
    default:
      return null;
  }
}
