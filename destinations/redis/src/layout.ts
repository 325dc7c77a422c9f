/**
 * The Redis layout of the feature store, shared by the writer and the lookup API.
 *
 * One hash per entity: `<prefix>:<tenant>:<entity type>:<entity id>` (each part with `%` and
 * `:` percent-encoded, so a part never spills into the next). Its fields, per feature group G:
 * - `v:G`  the group's feature values, one JSON object (feature name → value);
 * - `t:G`  the event time of those values, epoch milliseconds;
 * - `x:G`  when the group expires, epoch milliseconds (absent: never);
 * and `_ttl` while the key itself has a TTL (bookkeeping of the write script).
 * A group's values are one field, not one field per feature, because a group is always
 * written and replaced as a whole: one field makes the write script's replace O(1) and a
 * lookup one JSON parse per group (see bench/redis.bench.mjs for what it buys).
 */

export function encodeKeyPart(part: string): string {
  return part.replace(/%/g, '%25').replace(/:/g, '%3A');
}

export function entityKey(prefix: string, tenant: string, entityType: string, entityId: string): string {
  return `${prefix}:${encodeKeyPart(tenant)}:${encodeKeyPart(entityType)}:${encodeKeyPart(entityId)}`;
}

/** Pattern for SCAN over every entity of one type of one tenant. */
export function entityKeyPattern(prefix: string, tenant: string, entityType: string): string {
  const glob = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&');
  return `${glob(prefix)}:${glob(encodeKeyPart(tenant))}:${glob(encodeKeyPart(entityType))}:*`;
}

/** A hash as Redis returns it, decoded per group. Groups missing their event time are skipped. */
export interface DecodedGroup {
  eventTimeMs: number;
  expiresAtMs: number | undefined;
  features: Record<string, unknown>;
}

export function decodeEntityHash(hash: Record<string, string>): Map<string, DecodedGroup> {
  const flat: string[] = [];
  for (const field in hash) flat.push(field, hash[field]!);
  return decodeEntityFields(flat);
}

/** As `decodeEntityHash`, from HGETALL's raw reply: field, value, field, value, … */
export function decodeEntityFields(flat: readonly string[]): Map<string, DecodedGroup> {
  const groups = new Map<string, DecodedGroup>();
  const group = (name: string): DecodedGroup => {
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { eventTimeMs: Number.NaN, expiresAtMs: undefined, features: {} }));
    return g;
  };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = flat[i]!;
    const value = flat[i + 1]!;
    if (field.charCodeAt(1) !== 58 /* ':' */) continue;
    const kind = field.charCodeAt(0);
    if (kind === 118 /* v */) {
      group(field.slice(2)).features = JSON.parse(value) as Record<string, unknown>;
    } else if (kind === 116 /* t */) {
      group(field.slice(2)).eventTimeMs = Number(value);
    } else if (kind === 120 /* x */) {
      group(field.slice(2)).expiresAtMs = Number(value);
    }
  }
  for (const [name, g] of groups) if (Number.isNaN(g.eventTimeMs)) groups.delete(name);
  return groups;
}
