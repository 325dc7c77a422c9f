import { createHash } from 'node:crypto';
import type { EncodedOps } from './encoded-ops.js';
import { encodeTimeSlot, groupField, ORDER_MARK, TIME_SLOT_WIDTH } from './layout.js';
import { copyBytes } from './value-codec.js';
import { RedisReplyError, writeBulk, writeHeader, type RespConnection, type RespReply } from './resp-connection.js';

/**
 * Applies records of one feature group to their entity hashes (layout in layout.ts),
 * atomically: a Lua script runs alone on the server, so no other write interleaves between
 * compare and set.
 *
 * KEYS[1]: the entity type's TTL registry (`ttlRegistryKey` in layout.ts); then one entity
 * hash per record. ARGV[1] = now (epoch ms), ARGV[2] = the group's field, ARGV[3] = the
 * group's TTL (ms, 0 = none), ARGV[4] = '1' to try creating the group first (below), then
 * one field value per record (event time slot, expiry slot, order segment if any, body — see
 * layout.ts). Returns {records applied, of which groups that were absent}.
 *
 * Per record:
 * - If the group's stored value is newer than this one, nothing changes: an older event
 *   arriving late never replaces a newer value. "Newer" is the order of `ORDER_MARK` in
 *   layout.ts: the CDC log position when both values have one, else the event time to the
 *   nanosecond (`newer` below). A group whose expiry passed counts as absent.
 * - If it is as new (the same place in that order: `sameTimeReplaces` in layout.ts):
 *   with the same CDC position as the stored value, it is the same change again and
 *   changes nothing; when only one of the two has a position, that one is kept (the lake
 *   orders rows with a position first). Without positions, the record is the same version
 *   again (a replay: its order segment and body equal the stored ones; a TTL'd group's
 *   expiry aside), a version the stored one replaced (a replay of an older record:
 *   `superseded` below), or a later version, which replaces the group. This is the event
 *   lake's order for rows it cannot tell apart otherwise (`NEWEST_FIRST`: the
 *   later-ingested row wins), with Redis's apply order as the ingest order: the writer
 *   applies a stream's records in the stream's order (`applyOps`, and the re-sends in
 *   index.ts). Replays change nothing, in any order; a later different version wins.
 * - Otherwise the group's field is replaced. Other groups of the entity are untouched.
 * - A tombstone (a CDC delete, layout.ts) is a value like any other here: a tombstone wins,
 *   loses, replays and expires exactly as a value would.
 *
 * Same-time versions (`superseded` below): the versions a group's stored value replaced at
 * its own place in the order are remembered in the hash field `s:<group>` (next to
 * `g:<group>`; readers skip it): 16 hex digits (the first of the SHA-1 of the order segment
 * and body, `redis.sha1hex`) of the stored version, then those of up to 16 versions it
 * replaced, newest first. The field belongs to the stored version whose digest leads it; any
 * other leading digest is a record left from an earlier place, and counts as none. It is
 * read and written only when a record is as new as the stored value and differs from it:
 * the common paths (newer, older, the same value again) cost what they cost before, plus
 * one `newer` comparison for a record that loses (an older one, or a TTL'd replay).
 *
 * Expiry: Redis 7.0 has no per-field TTL, so each group carries its own expiry (which the
 * lookup API enforces) and the key's TTL is raised to the latest expiry of its groups. A
 * group without TTL makes the key persistent, and a persistent key stays so (a TTL'd write
 * never adds a TTL to it): the key disappears once its last group expired, and never while
 * a group without TTL lives in it. Making a key persistent costs a PERSIST, needed only when
 * the key may carry a TTL:
 * - the group's stored value had an expiry (its TTL was configured away): PERSIST;
 * - a TTL'd group of this entity type was ever written: PERSIST on every write of the
 *   group, and on a write that finds its exact value stored (a re-sent batch, a replay).
 *   A stored value without expiry does not prove its key persistent then: `createGroups`
 *   creates groups with plain HSETNX and persists their keys in a second call, which a
 *   dropped connection or a crash in between never sends. Each TTL'd call adds its group
 *   to the registry set KEYS[1] before it sets any key's TTL, and the check runs inside the
 *   same atomic script, so an empty registry proves no key of the entity type has a TTL;
 * - otherwise the key is persistent already.
 * So without TTLs a write costs one HGET and one HSET per record.
 *
 * Create-first (ARGV[4] = '1'): when most records of a call create their group (a first
 * sync, a backfill), one HSETNX both checks and writes — one command per record instead of
 * two. A group that exists falls back to the general path (HSETNX, HGET, HSET: one more
 * command than without create-first), so the writer asks for it only while most groups are
 * new (see `applyOps`). Groups with a TTL always take the general path: it must read the
 * key's TTL before writing. Records of one call are applied in order, so a later record of
 * the same entity and group wins only if it is newer, or as new and a later version (above).
 * (While the TTL registry is absent the writer creates groups without the script at all:
 * `createGroups` below.)
 *
 * Repair (ARGV[4] = '2'), for groups `createGroups` created while the registry existed: a
 * record whose exact value is stored makes its key persistent (what the create path would
 * have done); a record whose group is absent (its key expired meanwhile) is written again;
 * a newer stored value is left alone.
 */
/** 1-based index of the order segment's mark in a field value (Lua's string.byte). */
const ORDER_AT = 2 * TIME_SLOT_WIDTH + 1;
/**
 * Same-time versions a group remembers having replaced (see above): a replay of one replaced
 * longer ago than this — a row changed more than 16 times within one event time — is taken
 * for a later version again.
 */
const MAX_SUPERSEDED = 16;

export const WRITE_SCRIPT = `
-- True when value a is newer than value b (layout.ts, ORDER_MARK): both with a log position,
-- the higher position; else the later event time, then the later nanoseconds.
local function newer(a, b)
  local ao = string.byte(a, ${ORDER_AT}) == ${ORDER_MARK}
  local bo = string.byte(b, ${ORDER_AT}) == ${ORDER_MARK}
  if ao and bo and string.byte(a, ${ORDER_AT + 1}) ~= 32 and string.byte(b, ${ORDER_AT + 1}) ~= 32 then
    -- Two 8-digit halves: exact as Lua numbers, unlike one 64-bit number.
    local x, y = tonumber(string.sub(a, ${ORDER_AT + 1}, ${ORDER_AT + 8}), 16), tonumber(string.sub(b, ${ORDER_AT + 1}, ${ORDER_AT + 8}), 16)
    if x ~= y then return x > y end
    x, y = tonumber(string.sub(a, ${ORDER_AT + 9}, ${ORDER_AT + 16}), 16), tonumber(string.sub(b, ${ORDER_AT + 9}, ${ORDER_AT + 16}), 16)
    if x ~= y then return x > y end
  end
  local x, y = tonumber(string.sub(a, 1, ${TIME_SLOT_WIDTH})), tonumber(string.sub(b, 1, ${TIME_SLOT_WIDTH}))
  if x ~= y then return x > y end
  x = ao and tonumber(string.sub(a, ${ORDER_AT + 17}, ${ORDER_AT + 22})) or 0
  y = bo and tonumber(string.sub(b, ${ORDER_AT + 17}, ${ORDER_AT + 22})) or 0
  return x > y
end
local now = tonumber(ARGV[1])
local field = ARGV[2]
-- The group's record of same-time versions: \`s:<group>\` for \`g:<group>\`.
local supersededField = 's' .. string.sub(field, 2)
-- A version's digest: its order segment and body (never the expiry, which a replay renews).
local function digest(v)
  return string.sub(redis.sha1hex(string.sub(v, ${ORDER_AT})), 1, 16)
end
-- True when value, as new as stored (the same place in the order) but not stored itself,
-- replaces it. With a CDC position on both (the same one): the same change again, no. On one
-- only: the one with it wins (the lake orders rows with a position first). On neither: yes,
-- unless it is the stored version again or one the stored version replaced (a replay).
-- Records the replaced version in the group's \`s:\` field.
local function superseded(key, stored, value)
  local vp = string.byte(value, ${ORDER_AT}) == ${ORDER_MARK} and string.byte(value, ${ORDER_AT + 1}) ~= 32
  local sp = string.byte(stored, ${ORDER_AT}) == ${ORDER_MARK} and string.byte(stored, ${ORDER_AT + 1}) ~= 32
  if vp or sp then return vp and not sp end
  if string.sub(stored, ${ORDER_AT}) == string.sub(value, ${ORDER_AT}) then return false end
  local mine, theirs = digest(value), digest(stored)
  local seen = redis.call('HGET', key, supersededField)
  if not seen or string.sub(seen, 1, 16) ~= theirs then seen = theirs end
  for i = 17, #seen, 16 do
    if string.sub(seen, i, i + 15) == mine then return false end
  end
  redis.call('HSET', key, supersededField, mine .. string.sub(seen, 1, ${16 * MAX_SUPERSEDED}))
  return true
end
local ttl = tonumber(ARGV[3])
local createFirst = ARGV[4] == '1' and ttl == 0
local repair = ARGV[4] == '2' and ttl == 0
local ttlSeen = true
if ttl > 0 then
  redis.call('SADD', KEYS[1], field)
else
  ttlSeen = redis.call('EXISTS', KEYS[1]) == 1
end
local applied, created = 0, 0
for i = 2, #KEYS do
  local key = KEYS[i]
  local value = ARGV[i + 3]
  local stored
  if createFirst and redis.call('HSETNX', key, field, value) == 1 then
    -- The group was absent: written. (Same outcome as the general path below.)
    if ttlSeen then redis.call('PERSIST', key) end
    applied, created = applied + 1, created + 1
  else
    stored = redis.call('HGET', key, field)
    -- This exact value is stored: it may have been created by a plain HSETNX whose PERSIST
    -- (the repair call) never ran, the connection or the writer lost after it; a repair,
    -- a re-sent batch or a replay makes its key persistent now.
    if stored == value and (repair or (ttl == 0 and ttlSeen)) then redis.call('PERSIST', key) end
    local live = stored
    if stored and string.byte(stored, ${TIME_SLOT_WIDTH + 1}) ~= 32 and tonumber(string.sub(stored, ${TIME_SLOT_WIDTH + 1}, ${2 * TIME_SLOT_WIDTH})) <= now then
      live = nil
    end
    local wins = not live or newer(value, stored)
    -- As new as the stored value, and another value (a TTL'd replay differs in its expiry only).
    if not wins and stored ~= value and not newer(stored, value) then wins = superseded(key, stored, value) end
    if wins then
      if ttl > 0 then
        local pttl = redis.call('PTTL', key)
        redis.call('HSET', key, field, value)
        -- -1: persistent, because a group without TTL lives here; -2: a new key.
        if pttl ~= -1 and pttl < ttl then redis.call('PEXPIRE', key, ttl) end
      else
        redis.call('HSET', key, field, value)
        -- A stored value without expiry does not prove the key persistent while TTL'd groups
        -- exist (see above): with the registry present, persist on every write.
        if ttlSeen or (stored and string.byte(stored, ${TIME_SLOT_WIDTH + 1}) ~= 32) then redis.call('PERSIST', key) end
      end
      applied = applied + 1
      if not stored then created = created + 1 end
    end
  end
end
return {applied, created}
`;

export const WRITE_SCRIPT_SHA = createHash('sha1').update(WRITE_SCRIPT).digest('hex');

/** One record's write: its entity key, event time (epoch ms, within the layout's range) and body (layout.ts). */
export interface WriteOp {
  readonly key: string;
  readonly eventTimeMs: number;
  readonly body: string;
}

/** The feature group a list of ops writes, its TTL and its entity type's TTL registry. */
export interface GroupTarget {
  readonly group: string;
  /** `ttlRegistryKey(prefix, entity type)`. */
  readonly ttlRegistry: string;
  /** 0 = never expires. */
  readonly ttlMs: number;
}

/**
 * What the writer learned from earlier calls for one group: whether most of its records
 * created their group, so create-first pays (starts true: a sync usually starts on entities
 * it has not written yet, and one batch corrects a wrong guess), and whether the entity
 * type's TTL registry exists (then groups are created through the script; the registry is
 * never removed, so this stays true).
 */
export interface WriteHint {
  createFirst: boolean;
  ttlRegistrySeen?: boolean;
}

export interface ApplyResult {
  /** Records that changed their group. */
  applied: number;
  /** Of those, records whose group was absent. */
  created: number;
  /** Records ignored because the stored group was as new or newer (replays, late events). */
  ignored: number;
}

/**
 * Records per script call. More amortise the call's cost; fewer keep each atomic call short,
 * since Redis serves no other client (a lookup) while a script runs: ~3.3 µs per record, so
 * 100 records block it ~0.3 ms. Measured on 200,000 records: 50 → ~205k records/s, 100 →
 * ~233k, 200 → ~246k (but ~0.7 ms blocks, more than the lookup budget of 0.5 ms).
 */
const RECORDS_PER_CALL = 100;

/**
 * The EVALSHA calls as RESP, in one Buffer: per call, the keys and values of its ops copied
 * out of the encoded batch (`expirySlot`, when given, replaces each value's blank expiry).
 */
function encodeScriptCalls(encoded: EncodedOps, calls: readonly (readonly number[])[], registry: string, head: readonly string[], expirySlot: Buffer | undefined): Buffer {
  const { createPayload: src, spans } = encoded;
  // Per call: headers and the constant arguments (command, sha, key count, registry, head).
  let perCall = 128 + Buffer.byteLength(registry);
  for (const h of head) perCall += 16 + Buffer.byteLength(h);
  let size = 0;
  for (const call of calls) {
    size += perCall;
    for (const i of call) size += spans[4 * i + 1]! + spans[4 * i + 3]! + 32;
  }
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const call of calls) {
    offset = writeHeader(out, offset, 42, call.length * 2 + head.length + 4);
    offset = writeBulk(out, offset, 'EVALSHA');
    offset = writeBulk(out, offset, WRITE_SCRIPT_SHA);
    offset = writeBulk(out, offset, String(call.length + 1)); // key count: the registry and one key per record
    offset = writeBulk(out, offset, registry);
    for (const i of call) {
      const start = spans[4 * i]!;
      const length = spans[4 * i + 1]!;
      offset = writeHeader(out, offset, 36, length);
      offset += copyBytes(src, start, start + length, out, offset);
      out[offset++] = 13;
      out[offset++] = 10;
    }
    for (const h of head) offset = writeBulk(out, offset, h);
    for (const i of call) {
      const start = spans[4 * i + 2]!;
      const length = spans[4 * i + 3]!;
      offset = writeHeader(out, offset, 36, length);
      if (expirySlot === undefined) {
        offset += copyBytes(src, start, start + length, out, offset);
      } else {
        offset += copyBytes(src, start, start + TIME_SLOT_WIDTH, out, offset);
        offset += copyBytes(expirySlot, 0, expirySlot.length, out, offset);
        offset += copyBytes(src, start + 2 * TIME_SLOT_WIDTH, start + length, out, offset);
      }
      out[offset++] = 13;
      out[offset++] = 10;
    }
  }
  return out.subarray(0, offset);
}

/** Something that can run one command: the writer's connection, or an ioredis client (`check`). */
export interface CommandRunner {
  call(command: string, ...args: string[]): Promise<unknown>;
}

/** Loads the script into Redis's script cache (the cache is empty after a restart). */
export async function loadWriteScript(runner: CommandRunner): Promise<void> {
  await runner.call('SCRIPT', 'LOAD', WRITE_SCRIPT);
}

/**
 * The batches' commands are ordered sends (resp-connection.ts): once one was lost with its
 * connection or refused with an error reply, later ones fail without reaching Redis until
 * the caller re-sends (after `resumeOrdered()`) every batch not acknowledged, in order — else
 * a later batch could be applied ahead of the re-send of an earlier one that Redis never ran.
 */
const ORDERED = { ordered: true } as const;

/**
 * Applies the encoded ops: through the script (`runScript`), or — for a group without TTL
 * while create-first pays and the entity type's TTL registry was never seen — with plain
 * HSETNX first (`createGroups`). `hint` (kept per group by the caller) is updated from the
 * replies. Throws the first error reply (`NOSCRIPT` included: the caller loads the script
 * and sends the batch again); ops are idempotent, so the caller may send them all again. Any
 * failure — no connection, or an error reply — holds back the later batches on `connection`
 * (`ORDERED`): the caller calls `connection.resumeOrdered()`, then sends again every batch
 * not acknowledged, in their order.
 */
export async function applyOps(connection: RespConnection, target: GroupTarget, ops: EncodedOps, nowMs: number, hint: WriteHint = { createFirst: false }): Promise<ApplyResult> {
  let result: ApplyResult;
  const turn = takeSendTurn(connection);
  try {
    if (hint.createFirst && target.ttlMs === 0 && hint.ttlRegistrySeen !== true) {
      await turn.earlierFirstSent;
      const replies = createGroups(connection, ops);
      turn.firstSent();
      const { created, existing, registryExists } = await replies;
      if (registryExists) hint.ttlRegistrySeen = true;
      await turn.earlierAllSent;
      const calls = Promise.all([
        registryExists && created.length > 0 ? runScript(connection, target, ops, created, nowMs, '2') : undefined,
        existing.length > 0 ? runScript(connection, target, ops, existing, nowMs, '0') : undefined,
      ]);
      turn.allSent();
      const [, general] = await calls;
      result = { applied: created.length + (general?.applied ?? 0), created: created.length + (general?.created ?? 0), ignored: general?.ignored ?? 0 };
    } else {
      await turn.earlierAllSent;
      const call = runScript(connection, target, ops, undefined, nowMs, hint.createFirst ? '1' : '0');
      turn.allSent();
      result = await call;
    }
  } finally {
    turn.allSent();
  }
  hint.createFirst = result.created * 2 >= ops.count;
  return result;
}

/**
 * Order of the batches on one connection. Redis applies commands in the order they arrive,
 * and for two versions at the same place in the order of versions the one applied later
 * wins (see the script), so a batch's commands must reach Redis after those of every batch
 * passed to `applyOps` before it — but a create-first batch sends its script calls only
 * once its HSETNX replies are back. So:
 * - a batch through the script waits until every earlier batch sent all its commands;
 * - a create-first batch sends its HSETNXes once every earlier batch sent its first
 *   commands (they may pass an earlier create-first batch's script calls: an HSETNX writes
 *   only a group that is absent, and those calls are for groups that existed), and its
 *   script calls once every earlier batch sent all its commands.
 * Batches of one kind in a row thus stay pipelined; a wait happens only where a batch
 * through the script follows a create-first one. (A batch that failed — a call answered
 * NOSCRIPT too — is sent again by the caller, ahead of any later batch: `ORDERED`.)
 */
interface SendTurn {
  readonly earlierFirstSent: Promise<void>;
  readonly earlierAllSent: Promise<void>;
  firstSent(): void;
  /** Also marks the first commands sent. */
  allSent(): void;
}

const lastTurns = new WeakMap<RespConnection, { firstSent: Promise<void>; allSent: Promise<void> }>();

/** This batch's place behind the batches sent before it on `connection` (see SendTurn). */
function takeSendTurn(connection: RespConnection): SendTurn {
  const earlier = lastTurns.get(connection);
  let markFirst!: () => void;
  let markAll!: () => void;
  const firstSent = new Promise<void>((resolve) => (markFirst = resolve));
  const allSent = new Promise<void>((resolve) => (markAll = resolve));
  lastTurns.set(connection, { firstSent, allSent });
  return {
    earlierFirstSent: earlier?.firstSent ?? Promise.resolve(),
    earlierAllSent: earlier?.allSent ?? Promise.resolve(),
    firstSent: markFirst,
    allSent: () => {
      markFirst();
      markAll();
    },
  };
}

/**
 * Create-first without the script: one plain HSETNX per record, pipelined, then EXISTS on
 * the entity type's TTL registry (the encoded batch's `createPayload`, after its preamble). Returns the indexes
 * of the ops that created their group, of those whose group existed (the caller sends them
 * through the script's general path), and whether the registry exists.
 *
 * Why this is the script's outcome: HSETNX writes a group only where it is absent — and an
 * absent group is always written — and never touches a present one. What the script adds to
 * a new group without TTL is PERSIST on its key, needed only if the key may carry a TTL.
 * Keys get TTLs only from script calls that first add their group to the registry, the
 * registry is never removed, and Redis runs a connection's commands in order: so EXISTS
 * answering 0 after the HSETNXs proves no key of the entity type had a TTL when they ran.
 * Answering 1 (another stream writes TTL'd groups of this entity type), the created groups
 * go through the script's repair mode before the batch is acknowledged, and the caller's
 * hint keeps later batches on the script.
 */
async function createGroups(connection: RespConnection, ops: EncodedOps): Promise<{ created: number[]; existing: number[]; registryExists: boolean }> {
  const replies = withPreamble(ops, await connection.send([ops.preamble, ops.createPayload], ops.preambleCount + ops.count + 1, ORDERED));
  const created: number[] = [];
  const existing: number[] = [];
  for (let i = 0; i <= ops.count; i++) {
    const reply = replies[i];
    if (reply instanceof RedisReplyError) throw reply;
    if (i < ops.count) (reply === 1 ? created : existing).push(i);
  }
  return { created, existing, registryExists: replies[ops.count] === 1 };
}

/** The replies after the batch's preamble (shape registrations); throws the preamble's first error reply. */
function withPreamble(ops: EncodedOps, replies: RespReply[]): RespReply[] {
  for (let i = 0; i < ops.preambleCount; i++) {
    const reply = replies[i];
    if (reply instanceof RedisReplyError) throw reply;
  }
  return ops.preambleCount === 0 ? replies : replies.slice(ops.preambleCount);
}

/**
 * Sends the ops (those at `indexes`, or all) as EVALSHA calls of up to RECORDS_PER_CALL
 * records, in one write, and waits for every reply. `mode` is the script's ARGV[4]: '0'
 * general, '1' create-first, '2' repair. The expiry of a TTL'd group is `nowMs` + its TTL.
 * Throws the first error reply — NOSCRIPT too (Redis restarted, or its script cache was
 * flushed): re-sending the calls here, once the script is loaded again, would put them behind
 * later batches; the connection holds those back instead (`ORDERED`) until the caller has
 * loaded the script and sent this batch again.
 */
async function runScript(connection: RespConnection, target: GroupTarget, ops: EncodedOps, indexes: readonly number[] | undefined, nowMs: number, mode: '0' | '1' | '2'): Promise<ApplyResult> {
  const result: ApplyResult = { applied: 0, created: 0, ignored: 0 };
  const head = [String(nowMs), groupField(target.group), String(target.ttlMs), mode];
  const expirySlot = target.ttlMs > 0 ? Buffer.from(encodeTimeSlot(nowMs + target.ttlMs), 'latin1') : undefined;
  const all = indexes ?? Array.from({ length: ops.count }, (_, i) => i);
  const calls: (readonly number[])[] = [];
  for (let i = 0; i < all.length; i += RECORDS_PER_CALL) calls.push(all.slice(i, i + RECORDS_PER_CALL));
  const replies = withPreamble(ops, await connection.send([ops.preamble, encodeScriptCalls(ops, calls, target.ttlRegistry, head, expirySlot)], ops.preambleCount + calls.length, ORDERED));
  for (let i = 0; i < calls.length; i++) {
    const reply = replies[i];
    if (reply instanceof RedisReplyError) throw reply;
    const [applied, created] = reply as [number, number];
    result.applied += applied;
    result.created += created;
    result.ignored += calls[i]!.length - applied;
  }
  return result;
}
