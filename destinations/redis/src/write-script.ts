import { createHash } from 'node:crypto';
import type { Redis } from './redis-client.js';
import { isNoScript } from './redis-client.js';

/**
 * Applies records to their entity hashes (layout in layout.ts), atomically: a Lua script
 * runs alone on the server, so no other write interleaves between compare and set.
 *
 * KEYS: one entity hash per record. ARGV[1] = now (epoch ms), then per record four values:
 * feature group, event time (ms), TTL (ms, 0 = none), feature values (one JSON object).
 * Returns how many records were applied.
 *
 * Per record:
 * - If the group's stored event time is newer than or equal to this one, nothing changes:
 *   an older event arriving late never replaces a newer value, and a replay (same event
 *   time) is a no-op — so every write is idempotent and safe to repeat, in any order. A
 *   group whose TTL passed counts as absent.
 * - Otherwise the group's values, event time and expiry are replaced. Other groups of the
 *   entity are untouched.
 * - Expiry: Redis 7.0 has no per-field TTL, so each group records its own expiry (`x:G`,
 *   which the lookup API enforces) and the key's TTL is raised to the latest expiry of its
 *   groups; a group without TTL makes the key persistent. The key thus disappears once its
 *   last group expired. The hash field `_ttl` is present exactly when the key has a TTL
 *   (set with every PEXPIRE, removed with PERSIST), so writes without TTL need no PERSIST.
 * Records of one call are applied in order, so a later record of the same entity and group
 * wins only if it is newer.
 */
export const WRITE_SCRIPT = `
local now = tonumber(ARGV[1])
local applied = 0
for i = 1, #KEYS do
  local key = KEYS[i]
  local base = (i - 1) * 4 + 1
  local group = ARGV[base + 1]
  local eventTime = tonumber(ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 3])
  local tField = 't:' .. group
  local xField = 'x:' .. group
  local meta = redis.call('HMGET', key, tField, xField, '_ttl')
  local stored = tonumber(meta[1])
  local expiry = tonumber(meta[2])
  if not (stored and (not expiry or expiry > now) and stored >= eventTime) then
    if ttl > 0 then
      local pttl = redis.call('PTTL', key)
      if pttl == -1 then
        -- Persistent: a group without TTL lives here and keeps the key.
        redis.call('HSET', key, 'v:' .. group, ARGV[base + 4], tField, ARGV[base + 2], xField, string.format('%d', now + ttl))
      else
        redis.call('HSET', key, 'v:' .. group, ARGV[base + 4], tField, ARGV[base + 2], xField, string.format('%d', now + ttl), '_ttl', '1')
        if pttl < ttl then redis.call('PEXPIRE', key, ttl) end
      end
    else
      redis.call('HSET', key, 'v:' .. group, ARGV[base + 4], tField, ARGV[base + 2])
      if expiry then redis.call('HDEL', key, xField) end
      -- '_ttl' marks a key that has a TTL, so the common case (no TTL anywhere) skips PERSIST.
      if meta[3] then
        redis.call('PERSIST', key)
        redis.call('HDEL', key, '_ttl')
      end
    end
    applied = applied + 1
  end
end
return applied
`;

export const WRITE_SCRIPT_SHA = createHash('sha1').update(WRITE_SCRIPT).digest('hex');

/** One record's write: the entity key and its group, event time, TTL and values (as ARGV strings). */
export interface WriteOp {
  readonly key: string;
  readonly group: string;
  readonly eventTime: string;
  readonly ttl: string;
  readonly values: string;
}

export interface ApplyResult {
  /** Records that changed their group. */
  applied: number;
  /** Records ignored because the stored group was as new or newer (replays, late events). */
  ignored: number;
}

/**
 * Records per script call. More amortise the call's cost; fewer keep each atomic call short,
 * since Redis serves no other client while a script runs (~50 records ≈ 0.1 ms).
 */
const RECORDS_PER_CALL = 50;

/** Loads the script into Redis's script cache (the cache is empty after a restart). */
export async function loadWriteScript(client: Redis): Promise<void> {
  await client.script('LOAD', WRITE_SCRIPT);
}

/**
 * Sends the ops as EVALSHA calls of up to RECORDS_PER_CALL records, all in one pipeline, and
 * waits for every reply. Calls answered NOSCRIPT (Redis restarted or its script cache was
 * flushed) are sent again once after reloading the script. Throws the first other error;
 * ops are idempotent, so the caller may send the whole list again.
 */
export async function applyOps(client: Redis, ops: readonly WriteOp[], nowMs: number): Promise<ApplyResult> {
  const result: ApplyResult = { applied: 0, ignored: 0 };
  let calls: WriteOp[][] = [];
  for (let i = 0; i < ops.length; i += RECORDS_PER_CALL) calls.push(ops.slice(i, i + RECORDS_PER_CALL));
  const now = String(nowMs);
  for (let round = 0; calls.length > 0; round++) {
    const pipeline = client.pipeline();
    for (const call of calls) {
      const args: string[] = new Array<string>(call.length * 5 + 1);
      let k = 0;
      for (const op of call) args[k++] = op.key;
      args[k++] = now;
      for (const op of call) {
        args[k++] = op.group;
        args[k++] = op.eventTime;
        args[k++] = op.ttl;
        args[k++] = op.values;
      }
      pipeline.evalsha(WRITE_SCRIPT_SHA, call.length, ...args);
    }
    const replies = (await pipeline.exec()) ?? [];
    const missing: WriteOp[][] = [];
    for (let i = 0; i < calls.length; i++) {
      const [error, reply] = replies[i] ?? [new Error('Connection is closed. (no reply)'), undefined];
      if (error) {
        if (isNoScript(error) && round === 0) missing.push(calls[i]!);
        else throw error;
      } else {
        result.applied += Number(reply);
        result.ignored += calls[i]!.length - Number(reply);
      }
    }
    if (missing.length > 0) await loadWriteScript(client);
    calls = missing;
  }
  return result;
}
