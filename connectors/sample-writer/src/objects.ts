import type { WritableObject, WriteMode } from '@tributary/core';

/** The objects the sample CRM stores. */
export type CrmObjectName = 'contacts' | 'companies';

/** Lifecycle stages the CRM accepts (HubSpot's internal values). */
export const LIFECYCLE_STAGES = ['subscriber', 'lead', 'marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer', 'evangelist', 'other'] as const;

/** Returns why `value` is not acceptable for a field, or undefined when it is. `null` clears a field. */
type FieldCheck = (value: unknown) => string | undefined;

interface FieldRule {
  readonly name: string;
  readonly schema: Record<string, unknown>;
  readonly check: FieldCheck;
}

export interface CrmObject {
  readonly name: CrmObjectName;
  /** The match key; also the one required field. */
  readonly idProperty: string;
  /** Why a key is not acceptable, or undefined. */
  readonly checkKey: (key: string) => string | undefined;
  /** Writable fields other than the id property. */
  readonly fields: ReadonlyMap<string, FieldRule>;
}

const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/i;

const text = (max: number): FieldRule['check'] => (value) =>
  value === null || (typeof value === 'string' && value.length <= max) ? undefined : `must be a string of at most ${max} characters`;

function rule(name: string, schema: Record<string, unknown>, check: FieldCheck): [string, FieldRule] {
  return [name, { name, schema, check }];
}

export const CRM_OBJECTS: Readonly<Record<CrmObjectName, CrmObject>> = {
  contacts: {
    name: 'contacts',
    idProperty: 'email',
    checkKey: (key) => (key.length <= 254 && EMAIL.test(key) ? undefined : 'invalid email address'),
    fields: new Map([
      rule('firstname', { type: ['string', 'null'], maxLength: 200 }, text(200)),
      rule('lastname', { type: ['string', 'null'], maxLength: 200 }, text(200)),
      rule('company', { type: ['string', 'null'], maxLength: 200 }, text(200)),
      rule('score', { type: ['number', 'null'] }, (value) =>
        value === null || (typeof value === 'number' && Number.isFinite(value)) ? undefined : 'must be a finite number',
      ),
      rule('lifecycle_stage', { type: ['string', 'null'], enum: [...LIFECYCLE_STAGES, null] }, (value) =>
        value === null || (typeof value === 'string' && (LIFECYCLE_STAGES as readonly string[]).includes(value))
          ? undefined
          : `must be one of ${LIFECYCLE_STAGES.join(', ')}`,
      ),
    ]),
  },
  companies: {
    name: 'companies',
    idProperty: 'domain',
    checkKey: (key) => (DOMAIN.test(key) ? undefined : 'invalid domain name'),
    fields: new Map([
      rule('name', { type: ['string', 'null'], maxLength: 200 }, text(200)),
      rule('industry', { type: ['string', 'null'], maxLength: 100 }, text(100)),
      rule('employees', { type: ['integer', 'null'], minimum: 0 }, (value) =>
        value === null || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) ? undefined : 'must be a non-negative integer',
      ),
    ]),
  },
};

export function isCrmObject(name: string): name is CrmObjectName {
  return Object.prototype.hasOwnProperty.call(CRM_OBJECTS, name);
}

const MODES: WriteMode[] = ['insert', 'update', 'upsert', 'delete', 'mirror'];

/** What `discover` returns: the id, the key, the writable fields and the computed timestamp. */
export function writableObjects(): WritableObject[] {
  return Object.values(CRM_OBJECTS).map((object) => ({
    name: object.name,
    idProperties: [object.idProperty],
    modes: [...MODES],
    fields: [
      { name: 'id', schema: { type: 'string' }, writable: false, unique: true },
      {
        name: object.idProperty,
        schema: object.idProperty === 'email' ? { type: 'string', format: 'email' } : { type: 'string', format: 'hostname' },
        required: true,
        unique: true,
      },
      ...[...object.fields.values()].map((field) => ({ name: field.name, schema: field.schema })),
      { name: 'updated_at', schema: { type: 'string', format: 'date-time' }, writable: false },
    ],
  }));
}
