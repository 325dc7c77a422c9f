/**
 * What a dry run would have changed so far, so that it reports what a real run would.
 *
 * A real run sends two records of one key in two requests, and the target judges the second
 * against the row the first created or changed. In a dry run the target changes nothing, so
 * a writer judges every record against the row as it was before the run: the second record
 * of a new key would come back `created` again, and one setting a row back to its old value
 * `unchanged`. The ledger keeps, per row (key identity), the fields the run's earlier records
 * gave it, and judges the later records of the row against them instead.
 *
 * A row is its key identity (`keyIdentity`, by which the runtime groups requests), and its
 * `idProperty` field is not one of the compared fields: a real run matches a record to its
 * row by that field and compares the others (the Salesforce, HubSpot, sample and http-crm
 * writers all leave the match field out of their compare-before-write). So `abc-1` after
 * `ABC-1`, or `"1.0"` after `1` of a number id, with the same other values is `unchanged`,
 * whatever text the id field holds.
 *
 * Fields are compared as the writer's compare-before-write compares them when its results
 * say so (`WriteResult.comparedValues`: per field, by the target's name of it, a text equal
 * for values the writer finds equal), so `"1000.0"` after `1000` of a number field is
 * `unchanged` as in the real run; otherwise as canonical JSON by the names the records use.
 *
 * Applies to `upsert` and `update` requests (the upserts of a `mirror` run included). A
 * repeated key of an `insert` or `delete` run is reported as the writer judged it: what the
 * target answers to inserting an existing row or deleting a missing one is the writer's own.
 * Memory: one entry per row the dry run created or changed, holding its fields as compared
 * texts; nothing is kept outside dry runs.
 */
import type { WriteRecord, WriteRequest, WriteResult } from '../connector/writer.js';
// A cycle with reverse-etl.ts, which is harmless: canonicalJson is only called, never read at load time.
import { canonicalJson } from './reverse-etl.js';

export interface DryRunLedger {
  /**
   * The result a real run would report for `record` (of `request`: its mode and idProperty
   * are read), given the writer's dry-run `result` for it. `identity` is the row it names
   * (`keyIdentity`). Must be called in input order for the records of one row, which
   * `runWriter` guarantees.
   */
  judge(identity: string, request: Pick<WriteRequest, 'mode' | 'idProperty'>, record: WriteRecord, result: WriteResult): WriteResult;
}

interface VirtualRow {
  /** The row existed before the run (the writer did not answer `created` for its first record). */
  existed: boolean;
  /** Field → the compared text (`fieldsOf`) of the value the run's records last gave it. */
  fields: Map<string, string>;
}

const APPLIED = new Set<WriteResult['status']>(['created', 'updated', 'unchanged']);

export function createDryRunLedger(): DryRunLedger {
  const rows = new Map<string, VirtualRow>();
  return {
    judge(identity, request, record, result) {
      if ((request.mode !== 'upsert' && request.mode !== 'update') || !APPLIED.has(result.status)) return result;
      const row = rows.get(identity);
      if (row === undefined) {
        rows.set(identity, { existed: result.status !== 'created', fields: fieldsOf(record, request.idProperty, result) });
        return result;
      }
      let differs = false;
      let unknown = false;
      const fields = fieldsOf(record, request.idProperty, result);
      for (const [name, value] of fields) {
        const known = row.fields.get(name);
        if (known === undefined) unknown = true;
        else if (known !== value) differs = true;
        row.fields.set(name, value);
      }
      // A field the run has not set yet: a row the run created holds the target's default
      // there (unknown here), so the record counts as a change; a row that existed holds its
      // old value, which the writer compared with.
      const status = differs || (unknown && !row.existed) ? 'updated' : !unknown ? 'unchanged' : result.status === 'created' ? 'updated' : result.status;
      return status === result.status ? result : { ...result, status };
    },
  };
}

/**
 * The record's fields but `idProperty` (the row's match, not a value of it), each as the text
 * it is compared by: the writer's `comparedValues` when it gave them, else canonical JSON.
 */
function fieldsOf(record: WriteRecord, idProperty: string, result: WriteResult): Map<string, string> {
  if (result.comparedValues !== undefined) return new Map(Object.entries(result.comparedValues));
  const fields = new Map<string, string>();
  for (const [name, value] of Object.entries(record.fields)) if (name !== idProperty) fields.set(name, canonicalJson(value));
  return fields;
}
