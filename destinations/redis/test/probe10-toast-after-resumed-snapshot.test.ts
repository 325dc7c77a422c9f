/**
 * A PostgreSQL snapshot interrupted and resumed outside the slot's snapshot reads a row that
 * moved meanwhile (`UPDATE t SET id = 100 WHERE id = 15`, its TOASTed column `big` left as
 * it was) under its NEW key: the source sends an `r` row of 100 with `big`, then replays the
 * update (before-image: key 15; `_tributary_unchanged: ["big"]`). Key 15 was never
 * delivered. The fill of a key-moving update took unchanged fields only from the old key's
 * version before the move, found none, and Redis stored 100 without `big` although the table
 * holds it there. The new key's own earlier live version now fills what the old key cannot,
 * as the event lake's reads walk the key's own earlier rows; a tombstone fills nothing, and
 * the old key's version still comes first. Real redis-server, real writer, real lookup; the
 * last test goes end to end from embedded PostgreSQL through the source and the runtime.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, runSync, type Destination, type RecordData, type Source } from '@tributary/core';
import { postgresSource } from '../../../connectors/postgres/src/index.js';
import { catalogFor, cdcConfigFor, memoryStateStore, readFirstChunk, usePostgres, type EmbeddedPostgresServer } from '../../../connectors/postgres/test/support.js';
import { createFeatureLookup, redisDestination } from '../src/index.js';
import { at, keyedStream, useRedisPeer } from './fixtures.js';

const peer = useRedisPeer();
let postgres: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((server, client) => {
  postgres = server;
  sql = client;
});
const BIG = 'x'.repeat(10_000);
/** How assertions show `big`: its length, so that a failure does not print 10 kB. */
const BIG_SHOWN = '10000 chars';

let prefixes = 0;
/** A sync into `prefix` (a fresh one by default): each `write` is one batch, committed; `features` is the lookup API's answer. */
async function openSync(prefix = `rsz${++prefixes}`) {
  const stream = keyedStream('t');
  const config = parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix });
  const session = await redisDestination.open(createConnectorContext({}), config, [stream]);
  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  return {
    prefix,
    async write(...records: RecordData[]) {
      const result = await session.write({ stream: stream.key, records, emittedAt: Date.now() });
      await session.commit();
      expect(result?.rejected ?? []).toEqual([]);
    },
    async features(id: number) {
      const found = await lookup.get({ tenant: 'acme', entityType: 't', entityId: String(id) });
      const features = found.found ? found.groups.t?.features : undefined;
      if (typeof features?.big === 'string' && features.big.length > 100) return { ...features, big: `${features.big.length} chars` };
      return features;
    },
    async close() {
      await session.close({ completed: true });
      await lookup.close();
    },
  };
}

/** A record as the Postgres CDC source sends it at `position`; `big` left out and listed as unchanged when undefined. */
function row(op: 'r' | 'u' | 'd', id: number, position: string, minute: number, v: number, big?: string, before?: number): RecordData {
  return {
    id,
    tenant_id: 'acme',
    updated_at: at(minute),
    v,
    ...(big === undefined ? (op === 'u' ? { _tributary_unchanged: ['big'] } : {}) : { big }),
    _tributary_op: op,
    _tributary_position: position,
    _tributary_commit_time: at(minute),
    ...(before === undefined ? {} : { _tributary_before: { id: before } }),
  };
}

/** The resumed snapshot's row of the moved row, under its new key, at the committed position (before the replayed move). */
const snapshotRow = row('r', 100, '0/10', 1, 2900, BIG);
/** The replayed move 15 → 100, `big` left out. */
const move = row('u', 100, '0/20', 2, 2900, undefined, 15);

describe('a replayed key move whose old key was never delivered, on top of a resumed snapshot that read the new key', () => {
  it('fills the unchanged column from the new key\'s snapshot row in the same batch', async () => {
    const sync = await openSync();
    try {
      await sync.write(snapshotRow, move);
      expect(await sync.features(100)).toMatchObject({ id: 100, v: 2900, big: BIG_SHOWN });
      expect(await sync.features(15)).toBeUndefined();
    } finally {
      await sync.close();
    }
  });

  it('fills it from the new key\'s version stored by an earlier batch', async () => {
    const sync = await openSync();
    try {
      await sync.write(snapshotRow);
      await sync.write(move);
      expect(await sync.features(100)).toMatchObject({ id: 100, v: 2900, big: BIG_SHOWN });
    } finally {
      await sync.close();
    }
  });

  it('fills it from the new key\'s version stored by an earlier sync', async () => {
    const first = await openSync();
    await first.write(snapshotRow);
    await first.close();
    const second = await openSync(first.prefix);
    try {
      await second.write(move);
      expect(await second.features(100)).toMatchObject({ id: 100, v: 2900, big: BIG_SHOWN });
    } finally {
      await second.close();
    }
  });

  it('takes nothing from a new key whose version before the move is a tombstone, in one batch or across batches', async () => {
    const deleted = row('d', 100, '0/15', 1, 0);
    for (const batches of [[[snapshotRow, deleted, move]], [[snapshotRow], [deleted], [move]]]) {
      const sync = await openSync();
      try {
        for (const batch of batches) await sync.write(...batch);
        const moved = await sync.features(100);
        expect(moved).toMatchObject({ id: 100, v: 2900 });
        expect(moved?.big).toBeUndefined();
      } finally {
        await sync.close();
      }
    }
  });

  it('takes the old key\'s version before the move first, and the new key\'s only for what that lacks', async () => {
    const sync = await openSync();
    try {
      // Old key 15 stored with `big`; new key 100 holding another (live, older) value.
      await sync.write(row('r', 15, '0/10', 1, 15, 'big of 15'), row('r', 100, '0/12', 1, 2900, 'big of 100'));
      await sync.write(move);
      expect(await sync.features(100)).toMatchObject({ id: 100, big: 'big of 15' });
      expect(await sync.features(15)).toBeUndefined();
    } finally {
      await sync.close();
    }
  });

  it('takes from the new key\'s version what the old key\'s version before the move lacks', async () => {
    const sync = await openSync();
    try {
      // Old key 15 first seen as an update that left `big` out (nothing to fill it from): stored without it.
      await sync.write(row('u', 15, '0/10', 1, 15), row('r', 100, '0/12', 1, 2900, BIG));
      expect((await sync.features(15))?.big).toBeUndefined();
      await sync.write(move);
      expect(await sync.features(100)).toMatchObject({ id: 100, v: 2900, big: BIG_SHOWN });
    } finally {
      await sync.close();
    }
  });

  it('takes nothing from a new key whose version is newer than the move (the move is not applied)', async () => {
    const sync = await openSync();
    try {
      await sync.write(row('r', 100, '0/30', 3, 3000, BIG));
      await sync.write(move);
      expect(await sync.features(100)).toMatchObject({ id: 100, v: 3000, big: BIG_SHOWN });
    } finally {
      await sync.close();
    }
  });
});

it('end to end: a PostgreSQL snapshot resumed after a row moved to a new key keeps its TOASTed column in Redis', async () => {
  // 20 rows, each with a 10 kB column stored out of line; read in chunks of 10.
  await sql.query("CREATE TABLE rs_toast (id int PRIMARY KEY, v int NOT NULL, big text, tenant_id text NOT NULL DEFAULT 'acme', updated_at timestamptz NOT NULL)");
  await sql.query('ALTER TABLE rs_toast ALTER COLUMN big SET STORAGE EXTERNAL');
  for (let id = 1; id <= 20; id++) {
    await sql.query('INSERT INTO rs_toast (id, v, big, updated_at) VALUES ($1, $2, $3, $4)', [id, id * 10, randomBytes(5_000).toString('hex'), '2026-01-01T00:00:00Z']);
  }
  const config = cdcConfigFor(postgres, 'rstoast', { chunk_size: 10 });
  const catalog = await catalogFor(config, ['rs_toast']);
  const prefix = 'rstoast';

  // The first sync stores the snapshot's first chunk (ids 1–10) in Redis, commits, and dies.
  const first = await readFirstChunk(config, catalog);
  expect(first.records.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const session = await redisDestination.open(
    createConnectorContext({}),
    parseConfig(redisDestination.spec.connectionSpecification, { port: peer.server.port, key_prefix: prefix }),
    [{ key: 'public.rs_toast', name: 'rs_toast', namespace: 'public', syncMode: 'incremental', destinationSyncMode: 'append_dedup', primaryKey: [['id']], cursorField: ['updated_at'], jsonSchema: catalog.streams[0]!.stream.json_schema, resuming: false }],
  );
  const written = await session.write({ stream: 'public.rs_toast', records: first.records, emittedAt: Date.now() });
  await session.commit();
  expect(written?.rejected ?? []).toEqual([]);
  await session.close({ completed: false });
  const store = memoryStateStore();
  await store.save('pg-redis-rstoast', first.state);

  // Meanwhile row 15, not read yet, moves to key 100 without its TOASTed column changing.
  await sql.query('UPDATE rs_toast SET id = 100, v = 2900 WHERE id = 15');

  // The next sync resumes the snapshot in a fresh one (reads 100, never 15), then replays the move.
  const result = await runSync({ connection: 'pg-redis-rstoast', source: postgresSource as unknown as Source, sourceConfig: config, destination: redisDestination as unknown as Destination, destinationConfig: { port: peer.server.port, key_prefix: prefix }, catalog, stateStore: store });
  expect(result.outcome, result.error?.userMessage).toBe('completed');
  expect(result.streams.reduce((n, s) => n + s.rejected, 0)).toBe(0);

  const lookup = createFeatureLookup({ port: peer.server.port, keyPrefix: prefix });
  try {
    const rows = (await sql.query<{ id: number; v: number; big: string }>('SELECT id, v, big FROM rs_toast ORDER BY id')).rows;
    const expected = Object.fromEntries(rows.map((r) => [r.id, { id: r.id, v: r.v, big: `${r.big.length} chars` }]));
    const actual: Record<string, unknown> = {};
    for (const id of [...rows.map((r) => r.id), 15]) {
      const found = await lookup.get({ tenant: 'acme', entityType: 'rs_toast', entityId: String(id) });
      const features = found.found ? found.groups.rs_toast?.features : undefined;
      if (features) actual[id] = { id: features.id, v: features.v, big: typeof features.big === 'string' ? `${features.big.length} chars` : features.big };
    }
    expect(actual).toEqual(expected);
  } finally {
    await lookup.close();
  }
});
