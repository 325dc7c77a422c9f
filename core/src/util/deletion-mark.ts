/**
 * Whether a record's deletion field (a destination's `deleted_field` option) marks it as
 * deleted: `true` (Salesforce `IsDeleted`, HubSpot `archived`), or a non-empty string (a
 * deletion time: Airbyte's `_ab_cdc_deleted_at`, HubSpot's `archivedAt`). Anything else —
 * `false`, null, absent, an empty string — is a live record. Shared by the destinations so
 * that the event lake and the online store agree on which records are deletes.
 */
export function marksDeleted(value: unknown): boolean {
  return value === true || (typeof value === 'string' && value.length > 0);
}
