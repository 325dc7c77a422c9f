import { createHash } from 'node:crypto';
import { TributaryError, type RecordData } from '@tributary/core';
import { SHAPE_ID_LENGTH, shapeIdInValue } from './layout.js';
import { encodeCommands, RedisReplyError, type RespConnection } from './resp-connection.js';
import { copyBytes, createValueWriter, finishValues, writeValue } from './value-codec.js';

/**
 * Feature shapes: the ordered list of feature names of a group's values, stored once in the
 * registry hash `<prefix>:feature-shapes` (shape id → JSON array of the names) instead of in
 * every value. A group's body (the part of its field value after the time slots, see
 * layout.ts) is then `#<shape id>` followed by the values in the shape's order, each
 * tagged and binary (value-codec.ts). For a record {id: "c1", tenant_id: "acme",
 * updated_at: "2025-01-01T00:00:00.000Z", plan: "pro", seats: 5}:
 *
 *   #yiPrsm_p-F1bFhik 05 02000000 05 04000000 05 18000000 05 03000000 03 05000000
 *                     "c1acme2025-01-01T00:00:00.000Zpro"
 *
 * with `["id","tenant_id","updated_at","plan","seats"]` under `yiPrsm_p-F1bFhik` in the registry.
 *
 * Why: lookups of many entities spend most of their client time decoding values, and the
 * names are about half of an object's JSON. Measured on 100 entities × 50 features (the
 * lookup benchmark's values): `JSON.parse` of the objects 0.51–0.57 ms; of the values as
 * JSON arrays, with the object then built by the shape's compiled constructor, 0.27–0.30
 * ms — and half the bytes cross the network and sit in Redis. Binary values skip the
 * decimal parsing of numbers as well (see value-codec.ts for the writer's side). A
 * MessagePack body (msgpackr) measured no faster than JSON (0.68–0.96 ms).
 *
 * Contracts:
 * - The id is the first 16 base64url characters (96 bits) of the SHA-256 of the names'
 *   JSON, so every writer gives one list the same id and the registry is append-only
 *   (HSETNX). A writer checks once per session that the stored names are its own, so even a
 *   collision would fail loudly rather than mislabel values.
 * - A shape is stored before any value that names it: the writer registers it (and waits)
 *   before the first batch using it, and repeats the HSETNX ahead of every batch on the
 *   same connection — so values written after Redis lost its data (a restart without
 *   persistence) still find their shape.
 * - The registry has no TTL. Like the TTL registry, it must not be evicted: use a
 *   `maxmemory-policy` of `noeviction` or a `volatile-*` one (see the README).
 * - A stream whose records come in more than MAX_SHAPES_PER_STREAM different field sets
 *   (sparse records) stores further bodies as JSON objects, which readers decode too.
 */

/** Shapes one stream's writer creates before it writes further bodies as objects. */
export const MAX_SHAPES_PER_STREAM = 1_000;

export function featureShapesKey(prefix: string): string {
  // One part after the prefix: never an entity key (three parts) nor a TTL registry (two).
  return `${prefix}:feature-shapes`;
}

export function shapeIdOf(namesJson: string): string {
  return createHash('sha256').update(namesJson).digest('base64url').slice(0, SHAPE_ID_LENGTH);
}

/** A shape as readers use it: its names, and a constructor of the features object from the values array. */
export interface FeatureShape {
  readonly id: string;
  readonly names: readonly string[];
  build(values: readonly unknown[]): Record<string, unknown>;
}

/**
 * Compiles the constructor of a shape's objects: one object literal, which V8 builds from a
 * boilerplate with a fixed hidden class. Measured per 100 entities × 50 features: as fast
 * and allocating as little as `JSON.parse` of the values alone; computed keys (`[name]: …`)
 * instead allocated 4.5× more (513 against 116 young-generation collections over 2,000
 * lookups) and ran ~30% slower; assigning in a loop was ~0.2 ms slower. `__proto__` alone
 * is written as a computed key, so it becomes an own property (as `JSON.parse` makes it)
 * rather than the prototype. The names enter the code only as JSON string literals.
 */
function compileBuilder(names: readonly string[]): (values: readonly unknown[]) => Record<string, unknown> {
  const fields = names.map((name, i) => `${name === '__proto__' ? '["__proto__"]' : JSON.stringify(name)}: v[${i}]`).join(',\n');
  return new Function('v', `return {\n${fields}\n};`) as (values: readonly unknown[]) => Record<string, unknown>;
}

/** The shapes a reader knows, by id. Shapes never change, so a table is kept for the life of a client. */
export interface ShapeTable {
  get(id: string): FeatureShape | undefined;
  /** Adds a shape read from the registry; returns undefined when the stored names are not a JSON array of strings or do not hash to `id`. */
  add(id: string, namesJson: string): FeatureShape | undefined;
}

export function createShapeTable(): ShapeTable {
  const shapes = new Map<string, FeatureShape>();
  return {
    get: (id) => shapes.get(id),
    add(id, namesJson) {
      const known = shapes.get(id);
      if (known) return known;
      let names: unknown;
      try {
        names = JSON.parse(namesJson);
      } catch {
        return undefined;
      }
      if (!Array.isArray(names) || !names.every((n): n is string => typeof n === 'string') || shapeIdOf(namesJson) !== id) return undefined;
      const shape: FeatureShape = { id, names, build: compileBuilder(names) };
      shapes.set(id, shape);
      return shape;
    },
  };
}

/** Something that can read hash fields: an ioredis client, or an adapter over the RESP connection (lookup.ts). */
export interface HashReader {
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
}

/**
 * Makes sure `table` knows every shape the HGETALL replies name, reading the unknown ones
 * from the registry with one HMGET. A shape the registry lacks (it was deleted or evicted)
 * is a `fatal` error naming it: the values that use it cannot be read.
 */
export async function loadShapesFor(reader: HashReader, registry: string, table: ShapeTable, replies: readonly (readonly (string | Buffer)[])[]): Promise<void> {
  let missing: Set<string> | undefined;
  for (const flat of replies) {
    for (let i = 1; i < flat.length; i += 2) {
      const id = shapeIdInValue(flat[i]!);
      if (id !== undefined && table.get(id) === undefined) (missing ??= new Set()).add(id);
    }
  }
  if (missing === undefined) return;
  const ids = [...missing];
  const stored = await reader.hmget(registry, ...ids);
  ids.forEach((id, i) => {
    const namesJson = stored[i];
    if (namesJson == null || table.add(id, namesJson) === undefined) {
      throw new TributaryError('fatal', {
        userMessage: `Feature shape ${id} is ${namesJson == null ? 'missing from' : 'corrupt in'} ${registry}: values written with it cannot be read. Was the key deleted or evicted? Rewrite the features with a sync.`,
      });
    }
  });
}

/** Every shape in the registry (for tools and tests; lookups load only what they meet). */
export async function readAllShapes(reader: { hgetall(key: string): Promise<Record<string, string>> }, registry: string): Promise<ShapeTable> {
  const table = createShapeTable();
  for (const [id, namesJson] of Object.entries(await reader.hgetall(registry))) table.add(id, namesJson);
  return table;
}

/** A shape as the writer uses it. */
export interface WriterShape {
  readonly id: string;
  readonly names: readonly string[];
  readonly namesJson: string;
  /** `#` + id, as bytes: what precedes the values in a body. */
  readonly mark: Buffer;
}

/**
 * Encodes records' features as bodies. Per record it walks the fields once, writing each
 * value (value-codec.ts) and checking the names against the previous record's shape
 * (records of a stream nearly always share one); only a change of fields computes and
 * looks up the new shape. The shape's mark goes in front last: it has a fixed length.
 */
export interface BodyEncoder {
  /**
   * The body of one record's features: every field, or only `features` (in that order) when
   * given; undefined values are left out, as `JSON.stringify` does. A view of a buffer the
   * next call reuses: copy it before then.
   */
  encode(record: RecordData): Buffer;
  /** The shapes bodies named since the last call (the batch's), oldest first. */
  takeUsed(): WriterShape[];
}

/** Bytes of a shaped body before its values: `#` and the shape id. */
const MARK_LENGTH = 1 + SHAPE_ID_LENGTH;

export function createBodyEncoder(features: readonly string[] | undefined): BodyEncoder {
  const shapes = new Map<string, WriterShape>(); // names JSON → shape
  let last: WriterShape | undefined;
  let lastUsed: WriterShape | undefined;
  let used: WriterShape[] = [];
  const writer = createValueWriter();

  const shapeFor = (names: string[]): WriterShape | undefined => {
    const namesJson = JSON.stringify(names);
    let shape = shapes.get(namesJson);
    if (shape === undefined) {
      if (shapes.size >= MAX_SHAPES_PER_STREAM) return undefined;
      const id = shapeIdOf(namesJson);
      shape = { id, names, namesJson, mark: Buffer.from(`#${id}`, 'latin1') };
      shapes.set(namesJson, shape);
    }
    return shape;
  };

  return {
    encode(record) {
      const names = last?.names;
      let same = names !== undefined;
      let n = 0;
      writer.entries.length = MARK_LENGTH; // the mark goes in front once the shape is known
      writer.strings.length = 0;
      // Two copies of one walk: `for…in` straight over the record, rather than first
      // collecting its names into an array to share one loop, which measured slower.
      if (features === undefined) {
        for (const name in record) {
          const value = record[name];
          if (value === undefined) continue;
          if (same && names![n] !== name) same = false;
          writeValue(writer, value);
          n++;
        }
      } else {
        for (const name of features) {
          const value = record[name];
          if (value === undefined) continue;
          if (same && names![n] !== name) same = false;
          writeValue(writer, value);
          n++;
        }
      }
      if (!same || n !== names!.length) {
        // The same walk as above, so names and values line up.
        const fieldNames: string[] = [];
        if (features === undefined) {
          for (const name in record) if (record[name] !== undefined) fieldNames.push(name);
        } else {
          for (const name of features) if (record[name] !== undefined) fieldNames.push(name);
        }
        const shape = shapeFor(fieldNames);
        if (shape === undefined) {
          // Too many shapes: this record's body is a JSON object.
          return Buffer.from(JSON.stringify(Object.fromEntries(fieldNames.map((name) => [name, record[name]]))), 'utf8');
        }
        last = shape;
      }
      if (last !== lastUsed) {
        lastUsed = last;
        if (!used.includes(last!)) used.push(last!);
      }
      finishValues(writer);
      copyBytes(last!.mark, 0, MARK_LENGTH, writer.entries.bytes, 0);
      return writer.entries.bytes.subarray(0, writer.entries.length);
    },

    takeUsed() {
      const taken = used;
      used = [];
      lastUsed = undefined;
      return taken;
    },
  };
}

/** The HSETNX of each shape into the registry, as RESP: the preamble of a batch that names them (`EncodedOps`). */
export function shapePreamble(registry: string, shapes: readonly WriterShape[]): { payload: Buffer; count: number } {
  return { payload: encodeCommands(shapes.map((s) => ['HSETNX', registry, s.id, s.namesJson])), count: shapes.length };
}

/**
 * Registers shapes not yet checked in this session (`checked`) and waits: HSETNX, then HGET
 * to see that the registry holds these names under the id. Called before the first batch
 * naming a shape is sent. A registry holding other names under the id (a hash collision, or
 * a key written by something else) is a `fatal` error, before any value names the shape.
 */
export async function registerShapes(connection: RespConnection, registry: string, shapes: readonly WriterShape[], checked: Set<string>): Promise<void> {
  const fresh = shapes.filter((s) => !checked.has(s.id));
  if (fresh.length === 0) return;
  const replies = await connection.send(encodeCommands(fresh.flatMap((s) => [['HSETNX', registry, s.id, s.namesJson], ['HGET', registry, s.id]])), fresh.length * 2);
  fresh.forEach((shape, i) => {
    const error = [replies[2 * i], replies[2 * i + 1]].find((r) => r instanceof RedisReplyError);
    if (error) throw error;
    if (replies[2 * i + 1] !== shape.namesJson) {
      throw new TributaryError('fatal', {
        userMessage: `The feature-shape registry ${registry} holds other feature names under id ${shape.id} than this writer's ${shape.namesJson.slice(0, 200)}: was the key written by something else?`,
      });
    }
    checked.add(shape.id);
  });
}
